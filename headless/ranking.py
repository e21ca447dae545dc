"""Best-of-N: rank generated meshes with a reward ensemble (the server's ``--rank-rewards`` and
``ar3d generate --best-of N``).

Sampling is cheap next to a person's time: several candidates scored by the same checks the
trainer rewards with, and the best one kept, is the usual way to trade compute for quality at
inference. Rewards that read renders need Blender (bpy); without it they are dropped with a
warning rather than failing every request.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import replace
from pathlib import Path

log = logging.getLogger("ar3d.ranking")

# Shipped beside the demo model: the procedural family judge's references (1,500 fresh shapes,
# seed 10000), so ranking does not build them (11 s on a 2-core CPU) on every call.
REFERENCES_FILE = "judge_references.npz"


def bpy_available() -> bool:
    return importlib.util.find_spec("bpy") is not None


class Ranker:
    """Scores every sample's final mesh (step 2 in two-step mode, else step 1) with a reward
    ensemble: a preset name or a TOML file. ``references``: the ``.npz`` the procedural family
    judge uses where a term names none (``model_dir / REFERENCES_FILE`` for the demo model).
    ``read_prompts``: give the rewards the family and counts the prompt names (the demo model's
    prompts; see ``prompt_metadata``) where the caller passes no metadata. ``workers``: reward
    worker processes where the config sets none (``RewardConfig.workers``; a one-shot command
    scores a handful of candidates faster in its own process than it starts workers)."""

    def __init__(self, spec: str, views: bool | None = None, references: str | Path | None = None,
                 read_prompts: bool = False, workers: int | None = None):  # fmt: skip
        from ..core.rewards import RewardConfig, RewardConfigError, RewardEnsemble
        from ..core.rewards.ensemble import PRESETS

        if spec in PRESETS:
            config = RewardConfig.preset(spec)
        elif Path(spec).is_file():
            config = RewardConfig.from_toml(spec)
        else:
            raise RewardConfigError(
                f"--rank-rewards '{spec}' is neither a preset ({', '.join(sorted(PRESETS))}) nor a TOML file"
            )
        if references is not None:
            for term in (*config.step1, *config.step2):
                if term.reward == "procedural.family" and "references" not in term.options:
                    term.options = dict(term.options, references=str(references))
        if config.workers is None:
            config.workers = workers
        self.spec, self.read_prompts = spec, read_prompts
        self.ensemble = RewardEnsemble(config)
        views = bpy_available() if views is None else views
        kept: dict[str, list] = {}
        dropped = set()
        for step in (1, 2):
            kept[f"step{step}"] = []
            for term in self.ensemble.terms(step):
                if "views" in self._needs(term) and not views:
                    dropped.add(term.name)
                else:
                    kept[f"step{step}"].append(term)
            if not kept[f"step{step}"]:
                raise RewardConfigError(
                    f"every ranking reward of step {step} in '{spec}' reads rendered views, and Blender (bpy) is "
                    "not available: install bpy (pip install 'ar3d[render]') or rank with rewards that read "
                    "meshes/occupancy (e.g. a TOML with geometry.fill, geometry.watertight)"
                )
        if dropped:
            log.warning("ranking without the rewards that need renders (no bpy): %s", ", ".join(sorted(dropped)))
        self.ensemble.config = replace(config, step1=kept["step1"], step2=kept["step2"])
        self.needs = {n for s in (1, 2) for t in self.ensemble.terms(s) for n in self._needs(t)}
        self.pool = None
        if "views" in self.needs:
            from .pool import PoolConfig, RenderPool
            from .render_config import RenderConfig

            self.pool = RenderPool(PoolConfig(workers=1), RenderConfig())

    @classmethod
    def for_model(cls, spec: str, model_dir: str | Path, views: bool | None = None,
                  workers: int | None = None) -> "Ranker":  # fmt: skip
        """A ranker for the policy in ``model_dir``: its shipped judge references where it has them,
        and, for the bundled demo model, the family and counts its prompts name."""
        from ..core.hub import is_demo_model

        refs = Path(model_dir) / REFERENCES_FILE
        return cls(spec, views, references=refs if refs.is_file() else None, read_prompts=is_demo_model(Path(model_dir)),
                   workers=workers)  # fmt: skip

    def _needs(self, term) -> set[str]:
        return set(getattr(self.ensemble.reward(term), "needs", {"views"}))

    def score(self, prompt: str, step: int, results: list,
              metadata: dict | None = None) -> list[tuple[float | None, dict[str, float | None]]]:  # fmt: skip
        """Per MeshResult: (total, {term: weighted contribution}); None where a term is missing.
        ``metadata``: the prompt's ground truth for rewards that read it (the demo's family and
        attributes, e.g. from ``ar3d.procedural.read_caption``), the same for every result."""
        from ..core.rewards import RewardBatch

        if metadata is None and self.read_prompts:
            metadata = prompt_metadata(prompt)
        meshes = [r.mesh for r in results]
        views = None
        if self.pool is not None:
            views = [None] * len(results)
            todo = [i for i, m in enumerate(meshes) if m is not None]
            for i, res in zip(todo, self.pool.map([meshes[i] for i in todo], self.pool.render_config)):
                if res.ok:
                    views[i] = res.result.images
        batch = RewardBatch(
            [prompt] * len(results),
            plans=[r.sample.steps[-1].plan for r in results],
            views=views,
            meshes=meshes,
            occupancy=[r.occupancy for r in results],
            step=step,
            step1_plans=[r.sample.steps[0].plan for r in results],
            metadata=None if metadata is None else [metadata] * len(results),
        )
        s = self.ensemble.score(batch)
        return [(s.total[i], {name: c[i] for name, c in s.contributions.items()}) for i in range(len(results))]

    def close(self) -> None:
        self.ensemble.close()
        if self.pool is not None:
            self.pool.close()


def rank_order(score: float | None, index: int) -> tuple:
    """Sort key, best first: unscored ones (a missing term, no mesh) last; ties keep sample order,
    so a fixed seed gives a fixed choice."""
    return score is None, -(score or 0.0), index


def best_index(scores: list[float | None]) -> int:
    """The best-scoring candidate (``rank_order``)."""
    return min(range(len(scores)), key=lambda i: rank_order(scores[i], i))


def prompt_metadata(prompt: str) -> dict | None:
    """The demo's ground truth read off the prompt (family and counts), so that the quality
    reward knows the family's expected topology; None when it names no demo family."""
    from ..procedural.read_caption import read_caption

    family, attributes = read_caption(prompt)
    return {"family": family, "attributes": dict(attributes)} if family else None


def best_of(ranker: Ranker, prompt: str, step: int, results: list, n: int,
            metadata: dict | None = None) -> tuple[list, list[dict]]:  # fmt: skip
    """Results in groups of ``n`` candidates (as ``generate(prompt, samples * n)`` orders them) →
    the best of each group, and per group what was ranked (scores, terms, the choice)."""
    t = time.perf_counter()
    scored = ranker.score(prompt, step, results, metadata)
    seconds = round(time.perf_counter() - t, 2)
    kept, notes = [], []
    for k in range(0, len(results), n):
        group = scored[k : k + n]
        j = best_index([total for total, _ in group])
        kept.append(results[k + j])
        notes.append({"n": n, "rank_rewards": ranker.spec, "chosen": j, "seconds": seconds,
                      "candidates": [{"score": total, "terms": terms} for total, terms in group]})  # fmt: skip
    return kept, notes
