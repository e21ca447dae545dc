"""The Hi-GRPO training loop: rollouts → rewards → per-step advantages → DAPO-style loss → updates.

One training step (see ``trainer/config.py`` for the units):

1. **Rollouts with dynamic sampling.** ``prompts_per_step × grad_accum`` prompts per process,
   G samples each, through ``RolloutRunner`` (step 1 plan → coarse mesh, step 2 visual plan →
   refined mesh, six views, reward ensemble). Groups whose rewards have zero spread in every
   step are dropped and more prompts are rolled out, up to ``max_extra_batches`` extra batches.
2. **Advantages per step** within each group: A1 from R̃_high = R_high + λ·R_low, A2 from
   R_low, A = (R − mean)/(std + 1e-4). A sample whose reward is missing (judge down, render
   failed) is left out of its group and of the loss, and counted.
3. **Old and reference log-probs** of every kept row, once, before the first update
   (``completion_logprobs``: the constrained, temperature-scaled distribution it was sampled
   from). The reference is the frozen start policy: the LoRA adapter switched off, or a frozen
   copy for full fine-tuning; β = 0 skips it. When the training forward has no dropout, π_old is
   read off the first update's own forward instead (the weights are the same until its optimizer
   step), which saves one forward pass over the batch.
4. **μ updates** (``updates_per_batch``): each walks the ``grad_accum`` micro-batches,
   L = L1 + L2 with each step's loss normalised by that step's token count over the whole
   global batch (all micro-batches, all processes), then one optimizer step.

Distributed runs go through accelerate (DDP and FSDP configs in ``trainer/configs/accelerate``):
``accelerate launch -m ar3d.cli train --config …``. Every choice that changes how many forward
passes or collectives a process runs (another rollout batch, a skipped step, how many chunks)
is agreed on by all processes (``distributed.py``): a process that skipped one collective its
peers entered once hung the run (README, "Training").
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.errors import Ar3dError
from .advantages import DynamicSampling
from .checkpoint import CheckpointManager, GracefulStop, export_policy
from .config import TrainConfig
from .data import PromptSource
from .distributed import (
    any_process,
    check_sharding,
    full_weights,
    is_sharded,
    make_accelerator,
    mean_across_processes,
    same_count,
)
from .lora_merge import MergedLora
from .loss import LossConfig, completion_logprobs, pack, policy_loss
from .metrics import MetricsLogger, render_grid
from .resume import check_resume_config, no_checkpoint_message
from .rollout import Rollout, RolloutRunner, reward_needs
from .rollout_weights import QuantizedRollout
from .rows import Row, attach_behavior_logprobs, loss_rows, stack


class TrainingError(Ar3dError, RuntimeError):
    """The run cannot go on (no rewards at all, a diverged loss); the message says why."""


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name in ("bf16", "bfloat16"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name in ("fp16", "float16"):
        return torch.float16
    return torch.float32


class HiGRPOTrainer:
    """Builds everything a run needs from a ``TrainConfig`` and runs it; resumable.

    ensemble / pool: ready-made reward ensemble or render pool (tests, notebooks); by default
    they are built from the config (a render pool only when some reward reads views).
    pipeline: a ready ``TextTo3D`` (benchmarks build random 7B-shaped weights in memory);
    by default ``model.policy`` / ``model.vqvae`` are loaded.
    """

    def __init__(self, config: TrainConfig, *, ensemble=None, pool=None, pipeline=None,
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        from accelerate.utils import set_seed

        from ..core.pipeline import TextTo3D
        from ..core.rewards import RewardEnsemble
        from ..core.threads import apply as apply_threads

        apply_threads()  # CPU threads and OpenMP's wait policy (core/threads.py); `ar3d train` chose them first
        self.cfg = cfg = config
        self.accelerator = acc = make_accelerator()
        check_sharding(acc)
        sharded = is_sharded(acc)
        self.log = log or (lambda msg: acc.print(f"[ar3d train] {msg}"))
        set_seed(cfg.train.seed, device_specific=True)  # different samples on every process
        # The prompt file first: a typo there should not wait for a 7B model to load.
        self.data = PromptSource.from_config(cfg.data, rank=acc.process_index, world_size=acc.num_processes)
        device = acc.device
        compute = _dtype(cfg.model.dtype, device)

        # -- policy (+ VQ-VAE): trainable weights in fp32, compute in bf16 via autocast ---------
        lora = cfg.model.lora.enabled
        # precision "default": rollouts sample from the weights being trained (never $AR3D_PRECISION's 8 bits)
        self.pipeline = pipeline or TextTo3D.load(cfg.model.policy, cfg.model.vqvae, device=str(device),
                                                  dtype=compute if lora else torch.float32, precision="default")  # fmt: skip
        policy = self.pipeline.policy
        self.base_path = policy.path
        model = policy.model
        self.ref_model = None
        if cfg.algorithm.beta > 0 and not lora:
            self.ref_model = copy.deepcopy(model).to(compute).eval().requires_grad_(False)
        # The vision tower never sees an image in text-to-3D: freeze it (DDP would otherwise wait
        # for gradients that never come).
        for name, p in model.named_parameters():
            if ".visual." in f".{name}":
                p.requires_grad_(False)
        if lora:
            from peft import get_peft_model

            model = get_peft_model(model, cfg.model.lora.peft_config())
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if lora:
                model.enable_input_require_grads()
        model.config.use_cache = True  # generation keeps its KV cache (model.eval() during rollouts)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise TrainingError("the model has no trainable parameters (check model.lora.target_modules)")
        self.autocast = compute if (device.type == "cuda" and compute != torch.float32) else None

        o = cfg.optim
        optimizer = torch.optim.AdamW(trainable, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        from transformers import get_scheduler

        scheduler = get_scheduler(o.scheduler, optimizer, num_warmup_steps=cfg.warmup_updates(),
                                  num_training_steps=cfg.optimizer_updates())  # fmt: skip
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        if self.ref_model is not None and sharded:  # FSDP shards the reference too: no second full copy
            # After the policy: save_state pairs optimizer i with prepared model i. And not
            # evaluation_mode=True: accelerate then skips the FSDP wrap (a full copy per process)
            # but still lists the model for save_state, which fails on it (KeyError: None).
            self.ref_model = acc.prepare_model(self.ref_model)
            # Frozen and rebuilt from the base model on every start (resume included): not in the
            # checkpoints (accelerate saves every model it lists: 14 GB more per checkpoint at 7B).
            acc._models.remove(self.ref_model)
        # Generation runs on the unwrapped module, with the policy's own engine (the graph engine
        # for Qwen2 stacks); under FSDP the rollout gathers the full weights first (_full_weights).
        policy.model = acc.unwrap_model(self.model)
        self.policy = policy
        # Rollout weights: 8-bit copies (rollout_weights.py), else LoRA folded into the weights
        # (lora_merge.py); both exactly undone after the rollout.
        self._rollout_weights = self._make_rollout_weights(policy.model, lora, sharded)
        # π_old from the first update's forward needs that forward to equal an eval-mode one.
        self._old_from_update = not _has_dropout(model)
        self.constraint = policy.constraint(cfg.rollout.sampling.to_sampling_config())
        self.loss_cfg = LossConfig(eps_low=cfg.algorithm.eps_low, eps_high=cfg.algorithm.eps_high,
                                   clip=cfg.algorithm.clip, beta=cfg.algorithm.beta,
                                   aggregation=cfg.algorithm.aggregation)  # fmt: skip
        self.trainable = trainable
        # Sharded wrappers forward attribute access to the inner model, but their own forward
        # must run (it gathers the shards): no shortcut through model.model + lm_head.
        self._use_forward = True if sharded else None
        self.pad_id = policy.pad_id

        # -- rewards, renders, data, logs, checkpoints ---------------------------------------
        self.ensemble = ensemble or RewardEnsemble(cfg.reward_config())
        self._own_pool = False
        if pool is None and "views" in reward_needs(self.ensemble):
            import importlib.util

            from ..headless.pool import renders_here_need_bpy

            if renders_here_need_bpy(cfg.render.to_pool_config(), cfg.render.backend) and importlib.util.find_spec("bpy") is None:
                readers = sorted({t.name for k in (1, 2) for t in self.ensemble.terms(k)
                                  if "views" in getattr(self.ensemble.reward(t), "needs", {"views"})})  # fmt: skip
                raise TrainingError(
                    f"the rewards {', '.join(readers)} read rendered views, but Blender (bpy) is not installed "
                    "here: pip install 'ar3d[render]' (Python 3.11), or leave those rewards out of [rewards]"
                )

            pool = cfg.render.open_pool()
            self._own_pool = True
        self.pool = pool
        self.runner = RolloutRunner(self.pipeline, self.ensemble, cfg.rollout.sampling.to_sampling_config(),
                                    cfg.rollout.group_size, cfg.rollout.two_step, pool,
                                    cfg.render.to_render_config() if pool is not None else None,
                                    generation_context=self._full_weights, mesh_workers=cfg.render.mesh_workers)  # fmt: skip
        self.metrics = MetricsLogger.from_config(cfg.logging, is_main=acc.is_main_process, config=cfg.to_dict())
        self.checkpoints = CheckpointManager.from_config(cfg.checkpoint, accelerator=acc)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._rollout_seed = np.random.default_rng([cfg.train.seed, acc.process_index])
        resume = self.checkpoints.resolve_resume(cfg.checkpoint.resume)
        if resume is None and cfg.checkpoint.resume == "auto":
            self.log(no_checkpoint_message(cfg.checkpoint.dir))
        if resume is not None:
            check_resume_config(resume, cfg, self.log)
            state = self.checkpoints.load(resume, stateful={"rollout_seed": _GeneratorState(self._rollout_seed)})
            self.step = state.step
            self.data.load_state_dict(state.data_state)
            self.history = list(state.metrics.get("history", []))
            self.log(f"resumed from {resume} at step {self.step}")

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> list[dict[str, float]]:
        cfg = self.cfg
        self.ensemble.health_check()
        stopped = False
        with GracefulStop() as stop:
            while self.step < cfg.train.steps:
                t0 = time.perf_counter()
                stats = self.train_step()
                self.step += 1
                stats["time/step_s"] = time.perf_counter() - t0
                stats = mean_across_processes(self.accelerator, stats)
                self.history.append(stats)
                if self.step % cfg.logging.log_every == 0 or self.step == cfg.train.steps:
                    self.metrics.scalars(stats, self.step)
                    self.log(_summary(self.step, cfg.train.steps, stats))
                stopping = stop.should_stop(self.accelerator)
                every = cfg.checkpoint.every  # 0: only at the end and on a graceful stop
                if stopping or (every and self.step % every == 0) or self.step == cfg.train.steps:
                    self.save()
                if stopping:
                    self.log(f"{stop.signal_name}: checkpoint written at step {self.step}; resume with --resume")
                    stopped = True
                    break
        if cfg.checkpoint.export_final and (self.step >= cfg.train.steps or stopped):
            self.export(cfg.checkpoint.export_dir)  # a stopped run exports where it stopped (resumable still)
        self.close()
        return self.history

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        timings: dict[str, float] = {}
        t = time.perf_counter()
        rollouts, sampler = self._collect()
        self._filler = rollouts[0].samples[0].steps[0]  # for passes that only keep processes in step
        timings["time/rollout_s"] = time.perf_counter() - t
        rows, rstats = loss_rows(rollouts, self._kept, cfg)
        if self._eight_bit:
            attach_behavior_logprobs(rows, self.accelerator.device)
        stats: dict[str, float] = {**rstats, "rollout/dropped_group_fraction": sampler.dropped_fraction,
                                   "rollout/groups": float(len(sampler.groups)),
                                   "rollout/batches": float(sampler.batches), "train/skipped_step": 0.0}  # fmt: skip
        for r in rollouts:
            for k, v in r.timings.items():
                stats[f"time/{k}"] = stats.get(f"time/{k}", 0.0) + v
        if same_count(self.accelerator, len(sampler.groups)) == 0:
            # No process has a group whose rewards spread: every advantage is 0, so an update
            # would only move the weights through the KL term and Adam's momentum. Skip it.
            self.log(f"step {self.step + 1}: no group with a reward spread in {sampler.batches} rollout batch(es) "
                     "(dynamic sampling); skipped, weights unchanged")  # fmt: skip
            stats["train/skipped_step"] = 1.0
            stats.update(timings)
            self._log_samples(rollouts)
            return stats
        t = time.perf_counter()
        self._old_and_ref(rows)
        timings["time/old_ref_logp_s"] = time.perf_counter() - t
        t = time.perf_counter()
        update_stats = [self._update(rows, first=u == 0) for u in range(cfg.algorithm.updates_per_batch)]
        timings["time/update_s"] = time.perf_counter() - t
        for key in update_stats[0] if update_stats else ():
            vals = [u[key] for u in update_stats if key in u and u[key] is not None]
            if vals:
                stats[key] = float(np.mean(vals))
        stats["train/lr"] = float(self.scheduler.get_last_lr()[0])
        stats.update(timings)
        self._log_samples(rollouts)
        return stats

    # -- 1. rollouts with dynamic sampling ---------------------------------------------------------
    def _collect(self) -> tuple[list[Rollout], DynamicSampling]:
        cfg = self.cfg
        per_batch = cfg.rollout.prompts_per_step * cfg.train.grad_accum
        a = cfg.algorithm
        sampler = DynamicSampling(per_batch, enabled=a.dynamic_sampling, tol=a.zero_spread_tol,
                                  drop_when=a.drop_when, max_extra_batches=a.max_extra_batches)  # fmt: skip
        rollouts: list[Rollout] = []
        acc = self.accelerator
        # Another round while ANY process still lacks groups (a collective, so all agree): every
        # process draws from the data source in lock-step (it is one sharded stream); one that
        # is already full skips the rollout (generation needs no collective) and its prompts.
        while any_process(acc, want := not sampler.full and not sampler.exhausted):
            items = self.data.next_batch(per_batch)
            reasons: list[str] | None = None
            if want:
                rollout = self.runner.run([it.prompt for it in items], [it.metadata for it in items],
                                          seed=int(self._rollout_seed.integers(2**31)))  # fmt: skip
                r1 = rollout.rewards[0]
                r2 = rollout.rewards[1] if rollout.two_step else None
                sampler.add([(len(rollouts), p) for p in range(len(items))], r1, r2)
                rollouts.append(rollout)
                if np.isnan(r1).all():
                    reasons = sorted(set(rollout.missing_reasons()))[:3]
            if any_process(acc, reasons is not None):  # all processes stop together, none waits forever
                raise TrainingError(
                    "every reward of a rollout batch is missing: " + "; ".join(reasons or ["on another process"])
                    + ". Check the judge servers (ar3d judges) or the render setup."
                )  # fmt: skip
        self._kept = sampler.groups
        return rollouts, sampler

    # -- 3. old / reference log-probs ----------------------------------------------------------------
    @torch.no_grad()
    def _old_and_ref(self, rows: list[Row]) -> None:
        """In eval mode, always: π_old is the policy that sampled (no dropout), whatever mode an
        earlier save or update left the model in (LoRA dropout once made resumed runs differ)."""
        # π_old: for the ratio of later updates, and for 8-bit rollouts' importance weights
        need_old = (self.cfg.algorithm.updates_per_batch > 1 or self._eight_bit) and not self._old_from_update
        need_ref = self.loss_cfg.beta > 0
        if not (need_old or need_ref):
            return
        # No early return on no rows: the chunk count is a collective every process must join.
        was_training = self.model.training
        self.model.eval()
        try:
            self._old_and_ref_chunks(rows, need_old, need_ref)
        finally:
            self.model.train(was_training)

    def _old_and_ref_chunks(self, rows: list[Row], need_old: bool, need_ref: bool) -> None:
        chunks = list(self._chunks(rows))
        for i in range(same_count(self.accelerator, len(chunks))):
            dummy = i >= len(chunks)  # sharded models: every process runs as many forwards
            chunk = [Row(self._filler, 0.0, 1, 0)] if dummy else chunks[i]
            packed = pack([r.output for r in chunk], self.pad_id, self.accelerator.device)
            if need_old:
                with self._autocast():
                    old, _ = completion_logprobs(self.model, packed, self.constraint, self._temperature,
                                                  use_forward=self._use_forward)
                for r, lp in zip(chunk, old):
                    r.old_logp = None if dummy else lp.detach()
            if need_ref:
                with self._autocast(), self._reference() as ref:
                    lp_ref, _ = completion_logprobs(ref, packed, self.constraint, self._temperature,
                                                    use_forward=self._use_forward)
                for r, lp in zip(chunk, lp_ref):
                    r.ref_logp = None if dummy else lp.detach()

    @contextlib.contextmanager
    def _full_weights(self):
        """Around generation: the full weights on every process (FSDP), read-only; LoRA merged or
        8-bit weights swapped in."""
        with full_weights(self.accelerator, self.model):
            with self._rollout_weights() if self._rollout_weights is not None else contextlib.nullcontext():
                yield

    def _make_rollout_weights(self, model, lora: bool, sharded: bool):
        precision = self.cfg.rollout.precision
        self._eight_bit = precision != "default"
        if self._eight_bit:
            from ..core.quantize import PrecisionError, check_precision

            if sharded:
                raise TrainingError(f"rollout.precision = {precision!r} is not supported with sharded weights "
                                    "(FSDP / ZeRO-3): set rollout.precision = \"default\" or train on one process / DDP")  # fmt: skip
            try:
                check_precision(precision, self.accelerator.device)
            except PrecisionError as e:
                raise TrainingError(f"rollout.precision: {e}") from e
            if getattr(self.policy.engine, "name", None) != "graph":  # before any rollout, not after one
                raise TrainingError(f"rollout.precision = {precision!r} needs the graph engine (it reports the log-probs "
                                    "the importance weights use); unset AR3D_ENGINE or set it to graph")  # fmt: skip
            return QuantizedRollout(model, precision)
        if lora and self.cfg.model.lora.merge_rollouts and not sharded:
            return MergedLora(model)
        return None

    @contextlib.contextmanager
    def _reference(self):
        if self.ref_model is not None:
            yield self.ref_model
            return
        unwrapped = self.accelerator.unwrap_model(self.model)
        with unwrapped.disable_adapter():  # LoRA: the frozen base is the start policy
            yield self.model

    # -- 4. one update over the rollout batch ---------------------------------------------------------
    def _update(self, rows: list[Row], first: bool) -> dict[str, float]:
        """One optimizer update over the batch; `first`: the weights are still those that sampled."""
        acc = self.accelerator
        self.model.train()
        # Σ_i T_i of each step over the global batch (every micro-batch, every process).
        local = torch.zeros(4, device=acc.device)
        for r in rows:
            n = sum(1 for a, b in zip(r.output.reasoning_mask, r.output.mesh_mask) if a or b)
            local[r.step - 1] += n
            local[r.step + 1] += 1
        world = acc.reduce(local, reduction="sum") if acc.num_processes > 1 else local
        # DDP averages gradients over processes; the normaliser is global, so undo the average.
        scale = float(acc.num_processes)
        stats: list[dict[str, float]] = []
        # One forward + backward per (micro-batch, step), or per `rows_per_forward` rows of it;
        # gradients are synchronised across processes only on the last one (DDP reduces on every
        # backward outside no_sync).
        parts = []
        for micro in range(self.cfg.train.grad_accum):
            for k in (1, 2):
                part = [r for r in rows if r.micro == micro and r.step == k]
                size = self.cfg.train.rows_per_forward or len(part) or 1
                parts += [(k, part[i : i + size]) for i in range(0, len(part), size)]
        n_parts = same_count(acc, len(parts))
        for i in range(n_parts):
            sync = contextlib.nullcontext() if i == n_parts - 1 else acc.no_sync(self.model)
            if i >= len(parts):  # this process has less work: a forward/backward that adds 0
                with sync:
                    packed = pack([self._filler], self.pad_id, acc.device)
                    with self._autocast():
                        logp, _ = completion_logprobs(self.model, packed, self.constraint, self._temperature,
                                                      use_forward=self._use_forward)
                    acc.backward(logp.sum() * 0.0)
                continue
            k, step_rows = parts[i]
            with sync:
                packed = pack([r.output for r in step_rows], self.pad_id, acc.device)
                with self._autocast():
                    logp, entropy = completion_logprobs(self.model, packed, self.constraint, self._temperature,
                                                  use_forward=self._use_forward)
                Tc = logp.shape[1]
                if first and self._old_from_update:  # the same weights as the rollout's: π_old = π_θ
                    for b, r in enumerate(step_rows):
                        r.old_logp = logp[b].detach()
                old = stack([r.old_logp for r in step_rows], Tc) if step_rows[0].old_logp is not None else None
                ref = stack([r.ref_logp for r in step_rows], Tc) if step_rows[0].ref_logp is not None else None
                behavior = None
                if self._eight_bit:
                    behavior = stack([r.behavior_logp for r in step_rows], Tc)
                adv = torch.tensor([r.advantage for r in step_rows], device=acc.device)
                loss, s = policy_loss(logp, old, ref, adv, packed.loss_mask, self.loss_cfg,
                                      num_tokens=float(world[k - 1]), num_sequences=float(world[k + 1]),
                                      entropy=entropy, behavior_logp=behavior, tis_cap=self.cfg.algorithm.tis_cap)  # fmt: skip
                stats.append({f"loss/step{k}_{key}": v for key, v in s.items()})
                acc.backward(loss * scale)  # L = L1 + L2: the gradients add up
        grad_norm = None
        if self.cfg.optim.grad_clip and self.cfg.optim.grad_clip > 0:
            grad_norm = acc.clip_grad_norm_(self.trainable, self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        # An engine that generates outside this process (a vLLM server) takes the new weights.
        sync = getattr(self.policy.engine, "sync_weights", None)
        if sync is not None:
            sync(self.accelerator.unwrap_model(self.model))
        out: dict[str, float] = {}
        for s in stats:
            for key, v in s.items():
                out.setdefault(key, []).append(v)  # type: ignore[arg-type]
        merged = {k: float(np.sum(v)) if k.endswith("_loss") or k.endswith("tokens") else float(np.mean(v))
                  for k, v in out.items()}  # fmt: skip
        if grad_norm is not None:
            merged["train/grad_norm"] = float(grad_norm)
            if not math.isfinite(merged["train/grad_norm"]):
                raise TrainingError(f"the gradient norm is {grad_norm} at step {self.step + 1}; lower optim.lr")
        return merged

    # -- helpers ---------------------------------------------------------------------------------------
    @property
    def _temperature(self) -> float:
        return self.cfg.rollout.sampling.temperature

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.accelerator.device.type, dtype=self.autocast)

    def _chunks(self, rows: list[Row]):
        size = max(1, self.cfg.rollout.group_size)
        for i in range(0, len(rows), size):
            yield rows[i : i + size]

    def _log_samples(self, rollouts: list[Rollout]) -> None:
        cfg = self.cfg.logging
        step = self.step + 1
        if not rollouts or not self.accelerator.is_main_process:
            return
        r = rollouts[0]
        if cfg.text_every and step % cfg.text_every == 0:
            lines = []
            for s in r.samples[: cfg.image_samples]:
                lines.append(f"**{s.prompt}** (sample {s.group_index})\n\n" + "\n\n".join(
                    f"step {i + 1} plan: {p}" for i, p in enumerate(s.plans)))  # fmt: skip
            self.metrics.text("samples/plans", "\n\n---\n\n".join(lines), step)
        if cfg.image_every and step % cfg.image_every == 0:
            final = r.steps[-1]
            views = [v for v in final.views[: cfg.image_samples]]
            if any(v is not None for v in views):
                captions = [f"{s.prompt} #{s.group_index}" for s in r.samples[: cfg.image_samples]]
                self.metrics.image("samples/renders", render_grid(views, captions), step)

    def save(self) -> Path:
        self.model.eval()
        path = self.checkpoints.save(
            self.step,
            data_state=self.data.state_dict(),
            config=self.cfg,
            metrics={"history": self.history},
            stateful={"rollout_seed": _GeneratorState(self._rollout_seed)},
        )
        self.log(f"checkpoint: {path}")
        return path

    def export(self, out_dir: str | os.PathLike) -> Path:
        path = export_policy(self.model, self.policy.tokenizer, out_dir, accelerator=self.accelerator,
                             base_model=self.base_path, source_dir=self.base_path,
                             info={"step": self.step, "config": self.cfg.to_dict()})  # fmt: skip
        self.log(f"policy exported to {path} (ar3d generate --model {path})")
        return path

    def close(self) -> None:
        self.metrics.close()
        self.runner.close()
        if self._own_pool and self.pool is not None:
            self.pool.close()
        self.ensemble.close()


class _GeneratorState:
    """Checkpointable wrapper of the numpy Generator that seeds each rollout batch."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def _summary(step: int, total: int, s: dict[str, float]) -> str:
    keys = [("reward/r_high_tilde", "R̃_high"), ("reward/r", "R"), ("reward/r_low", "R_low"),
            ("loss/step1_kl", "KL"), ("loss/step1_clip_frac_high", "clip↑"),
            ("rollout/dropped_group_fraction", "dropped"), ("time/step_s", "s")]  # fmt: skip
    parts = [f"{label} {s[k]:.4g}" for k, label in keys if k in s]
    return f"step {step}/{total}: " + ", ".join(parts)


def _has_dropout(model: torch.nn.Module) -> bool:
    """Whether a train-mode forward is random (LoRA dropout, attention dropout)."""
    return any((isinstance(m, torch.nn.Dropout) and m.p > 0) or float(getattr(m, "attention_dropout", 0) or 0) > 0
               for m in model.modules())  # fmt: skip
