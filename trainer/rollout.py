"""Hi-GRPO rollouts: prompt → G samples → (plan, coarse codes) [→ (visual plan, refined codes)]
→ occupancy → mesh → six views → rewards.

This is the whole data side of a training step, apart from the loss: the trainer hands it a
list of prompts and gets back, per prompt group, each step's token rows (for the log-probs)
and each step's reward (R̃_high for step 1, R_low for step 2; one-step GRPO scores its only mesh
with step 2's terms, as ``rollout.two_step`` documents: that mesh is the final, refined one).

Generation goes through ``Policy.generate`` and so through the policy's engine (issue #9's
faster engines plug in there). Rendering goes through a ``RenderPool`` (long-lived Blender
workers) only when some configured reward looks at the views; a sample whose mesh or render
failed keeps its row with the reason, and its rewards come back missing, never 0.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..core.engine import SamplingConfig
from ..core.mesh import mesh_or_reason
from ..core.pipeline import TextTo3D
from ..core.policy import Sample, StepOutput
from ..core.rewards import RewardBatch, RewardEnsemble
from ..core.threads import helper_pool, helper_processes


def reward_needs(ensemble: RewardEnsemble) -> set[str]:
    """What the configured rewards read: any of "views", "meshes", "occupancy".

    A reward says so with a ``needs`` attribute; one without it is assumed to need views."""
    needs: set[str] = set()
    for step in (1, 2):
        for term in ensemble.terms(step):
            needs |= set(getattr(ensemble.reward(term), "needs", {"views"}))
    return needs


@dataclass
class StepData:
    """One step of every sample of a rollout (sample order: grouped by prompt)."""

    outputs: list[StepOutput]
    occupancy: list[np.ndarray | None]
    meshes: list[Any | None]
    views: list[np.ndarray | None]
    errors: list[str | None]


@dataclass
class Rollout:
    """prompts: P prompt strings; metadata: their data rows; group_size G.
    samples: P·G samples, all samples of prompt 0 first.
    steps: one ``StepData`` per step (1 for one-step GRPO, 2 for Hi-GRPO).
    rewards: per step a float array [P, G], NaN where missing: step 1 holds R̃_high (R_high
        for one-step), step 2 R_low.
    scores: the ensemble's full result (``HiGRPORewards`` or ``StepScores``) for logging.
    """

    prompts: list[str]
    metadata: list[dict | None]
    group_size: int
    samples: list[Sample]
    steps: list[StepData]
    rewards: list[np.ndarray]
    scores: Any
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def two_step(self) -> bool:
        return len(self.steps) == 2

    def missing_reasons(self) -> list[str]:
        reasons = []
        s = self.scores
        for step in ([s.step1, s.step2] if hasattr(s, "step1") else [s]):
            reasons += [m for m in step.missing if m]
        return reasons


log = logging.getLogger(__name__)


class MeshWorkers:
    """Grids → meshes on several CPU cores: marching cubes + clean-up of 16 grids took ~1.7 s of
    a 7B step in the trainer process, serially (BENCHMARKS.md). Worker processes (forkserver: fresh
    interpreters, not forks of a trainer holding a GPU context) are started at the first batch
    and kept. ``workers`` None: min(8, CPUs − 1), shared out between the training processes of
    this machine (``LOCAL_WORLD_SIZE``); ≤ 1 meshes in this process. A broken pool falls back to
    that, with a warning, rather than failing the step."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = helper_processes() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, grids: list, config) -> list[tuple[Any | None, str | None]]:
        if self.workers > 1 and len(grids) > 1:
            try:
                if self._pool is None:
                    self._pool = helper_pool(self.workers)
                return list(self._pool.map(mesh_or_reason, grids, [config] * len(grids)))
            except (BrokenProcessPool, OSError, ValueError) as e:  # ValueError: no forkserver (Windows)
                log.warning("mesh worker processes failed (%s); meshing in the trainer process from now on", e)
                self.close()
                self.workers = 1
        return [mesh_or_reason(g, config) for g in grids]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class RolloutRunner:
    """Runs rollouts for the trainer; owns nothing it did not create (the pool is passed in)."""

    def __init__(
        self,
        pipeline: TextTo3D,
        ensemble: RewardEnsemble,
        sampling: SamplingConfig,
        group_size: int,
        two_step: bool = True,
        pool=None,
        render_config=None,
        generation_context=None,
        mesh_workers: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.ensemble = ensemble
        self.sampling = sampling
        self.group_size = group_size
        self.two_step = two_step
        self.pool = pool
        self.render_config = render_config
        # Sharded training (FSDP, ZeRO-3) must gather the full weights around generation.
        self.generation_context = generation_context or contextlib.nullcontext
        self.needs = reward_needs(ensemble)
        self.meshers = MeshWorkers(mesh_workers)
        if not two_step and not ensemble.terms(2):
            raise ValueError("one-step GRPO (rollout.two_step = false) is scored with [rewards].step2's terms, "
                             "and step2 is empty: list the rewards under step2")  # fmt: skip
        if "views" in self.needs and pool is None:
            raise ValueError("the configured rewards read rendered views: pass a RenderPool")

    def run(self, prompts: Sequence[str], metadata: Sequence[dict | None] | None, seed: int) -> Rollout:
        t0 = time.perf_counter()
        policy = self.pipeline.policy
        was_training = policy.model.training
        policy.model.eval()  # generation uses the KV cache; gradient checkpointing turns it off in train mode
        try:
            with torch.no_grad(), self.generation_context():
                gen = policy.generate(list(prompts), self.group_size, self.two_step, self.sampling, seed)
        finally:
            policy.model.train(was_training)
        t1 = time.perf_counter()
        n_steps = 2 if self.two_step else 1
        steps = [self._materialise([s.steps[k] for s in gen.samples]) for k in range(n_steps)]
        t2 = time.perf_counter()
        rows = [p for p in prompts for _ in range(self.group_size)]
        meta = [m for m in (metadata or [None] * len(prompts)) for _ in range(self.group_size)]
        batches = [
            RewardBatch(
                rows,
                plans=[o.plan for o in st.outputs],
                views=st.views if "views" in self.needs else None,
                meshes=st.meshes,
                occupancy=st.occupancy,
                step=k + 1 if self.two_step else 2,  # one-step: the final mesh, step 2's terms
                step1_plans=[o.plan for o in steps[0].outputs],
                metadata=meta,
            )
            for k, st in enumerate(steps)
        ]
        if self.two_step:
            scores = self.ensemble.hi_grpo(batches[0], batches[1])
            per_step = [scores.r_high_tilde, scores.r_low]
        else:
            scores = self.ensemble.score(batches[0])
            per_step = [scores.total]
        t3 = time.perf_counter()
        P, G = len(prompts), self.group_size
        rewards = [np.array([np.nan if v is None else v for v in r], dtype=np.float64).reshape(P, G) for r in per_step]
        timings = {"generate_s": t1 - t0, "decode_render_s": t2 - t1, "reward_s": t3 - t2}
        timings.update({f"generate_{k}": v for k, v in gen.timings.items()})
        timings.update(self.ensemble.pop_worker_stats())  # where the reward time went (workers busy or waiting)
        return Rollout(list(prompts), list(metadata or [None] * P), G, gen.samples, steps, rewards, scores, timings)

    def close(self) -> None:
        self.meshers.close()

    def _materialise(self, outputs: list[StepOutput]) -> StepData:
        """Codes → occupancy (VQ-VAE on the policy's device) → meshes → views (the pool), as far
        as the rewards read: occupancy-only rewards skip meshing (30 of 50 s a step in the demo run)."""
        occ = self.pipeline.decode(np.stack([o.codes for o in outputs]))
        occupancy = [occ[i] for i in range(len(outputs))]
        meshes: list[Any | None] = [None] * len(outputs)
        errors: list[str | None] = [None] * len(outputs)
        if self.needs & {"meshes", "views"}:  # meshing is the slow part (CPU): only when read
            results = self.meshers.map(occupancy, self.pipeline.mesh_config)
            for i, (mesh, error) in enumerate(results):
                meshes[i], errors[i] = mesh, error
        views: list[np.ndarray | None] = [None] * len(outputs)
        if "views" in self.needs:
            todo = [i for i, m in enumerate(meshes) if m is not None]
            results = self.pool.map([meshes[i] for i in todo], self.render_config)
            for i, res in zip(todo, results):
                if res.ok:
                    views[i] = res.result.images
                else:
                    errors[i] = f"render failed: {res.error}"
        return StepData(list(outputs), occupancy, meshes, views, errors)
