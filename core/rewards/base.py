"""What every reward takes and returns, so the trainer, the evaluation and best-of-N treat
HPS, the VLM judges and the geometry checks alike.

A reward scores one *step* of a batch of samples (step 1: the coarse mesh and its global plan;
step 2: the refined mesh and its visual plan) from the prompts, the plans, the six rendered
views and the meshes. It returns one ``SampleScore`` per sample:

* ``value`` — the raw score, the **sum of the reward's sub-scores** (UnifiedReward-2.0:
  Alignment + Coherence + Style, each 1–5, so 3–15). The ensemble divides by ``sub_scores``
  (the paper's "each dimension normalised by its number of sub-scores").
* ``missing`` — when the score could not be computed (judge down, unparseable answer, no
  render), ``value`` is None and ``missing`` says why. A missing score is never a silent 0.
* ``details`` — per-sample material for logging: raw judge text, sub-scores, per-view values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import Ar3dError

VIEW_NAMES = ("front", "right", "back", "left", "top", "bottom")


class RewardConfigError(Ar3dError):
    """A reward configuration names an unknown reward, a bad weight or a missing checkpoint."""


@dataclass
class RewardBatch:
    """One step of a batch of samples, all lists of the same length N.

    prompts: the user's captions.
    plans: the plan text of the step being scored (step 1: the global/semantic plan; step 2:
        the visual plan).
    views: per sample uint8 [V, H, W, 3 or 4] renders (RGBA with transparent background as the
        headless renderer gives them, or RGB), V = 6 in the order of ``view_names``; None when
        the sample could not be rendered.
    meshes: per sample a ``trimesh.Trimesh`` (z-up, as ``ar3d.core.mesh`` makes them) or None.
    occupancy: per sample a bool [64, 64, 64] grid (what the VQ-VAE decoded) or None.
    step1_plans: the step-1 plans; step-2 rewards that check the planned components (part
        completeness) read them. Defaults to ``plans``.
    metadata: per sample a dict from the prompt data (e.g. the procedural demo's
        ``{"family": "chair", "attributes": {"legs": 4}}``), for rewards that check it.
    """

    prompts: Sequence[str]
    plans: Sequence[str] | None = None
    views: Sequence[np.ndarray | None] | None = None
    meshes: Sequence[Any | None] | None = None
    occupancy: Sequence[np.ndarray | None] | None = None
    step: int = 1
    step1_plans: Sequence[str] | None = None
    metadata: Sequence[dict | None] | None = None
    view_names: Sequence[str] = VIEW_NAMES

    def __post_init__(self) -> None:
        n = len(self.prompts)
        for name in ("plans", "views", "meshes", "occupancy", "step1_plans", "metadata"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"RewardBatch.{name} has {len(value)} entries for {n} prompts")
        if self.step not in (1, 2):
            raise ValueError(f"RewardBatch.step must be 1 or 2, got {self.step}")

    def __len__(self) -> int:
        return len(self.prompts)

    def plan(self, i: int) -> str:
        return self.plans[i] if self.plans is not None else ""

    def step1_plan(self, i: int) -> str:
        if self.step1_plans is not None:
            return self.step1_plans[i]
        return self.plan(i)

    def rgb_views(self, i: int, background: int = 255) -> np.ndarray | None:
        """Sample i's views as uint8 [V, H, W, 3], transparent pixels composited on a solid
        background (white by default, as judges and HPS see product shots)."""
        if self.views is None or self.views[i] is None:
            return None
        return to_rgb(self.views[i], background)


def to_rgb(views: np.ndarray, background: int = 255) -> np.ndarray:
    """[.., H, W, 3|4] uint8 → [.., H, W, 3] uint8, alpha composited over ``background``."""
    views = np.asarray(views)
    if views.dtype != np.uint8 or views.shape[-1] not in (3, 4):
        raise ValueError(f"views must be uint8 [..., H, W, 3|4], got {views.dtype} {views.shape}")
    if views.shape[-1] == 3:
        return views
    rgb = views[..., :3].astype(np.float32)
    a = views[..., 3:4].astype(np.float32) / 255.0
    out = rgb * a + float(background) * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class SampleScore:
    """One sample's score from one reward (see the module docstring)."""

    value: float | None
    details: dict[str, Any] = field(default_factory=dict)
    missing: str | None = None

    def __post_init__(self) -> None:
        if self.value is None and not self.missing:
            raise ValueError("a missing score needs a reason")
        if self.value is not None:
            self.value = float(self.value)
            if not np.isfinite(self.value):
                raise ValueError(f"score {self.value} is not finite; report it as missing")

    @classmethod
    def fail(cls, reason: str, **details: Any) -> "SampleScore":
        return cls(value=None, details=details, missing=reason)

    @property
    def ok(self) -> bool:
        return self.value is not None


@runtime_checkable
class Reward(Protocol):
    """A reward over a ``RewardBatch``.

    name: the registry name ("hps", "unified", "geometry.watertight", …).
    sub_scores: how many sub-dimensions ``value`` sums (the ensemble divides by it).
    value_range: (low, high) of ``value`` — documented, and checked by the tests.
    needs (optional): what it reads of a batch, a subset of {"views", "meshes", "occupancy"};
        the trainer renders only when some reward needs views (default when absent: views).
    """

    name: str
    sub_scores: int
    value_range: tuple[float, float]

    def score(self, batch: RewardBatch) -> list[SampleScore]: ...


def missing_all(batch: RewardBatch, reason: str, **details: Any) -> list[SampleScore]:
    return [SampleScore.fail(reason, **details) for _ in range(len(batch))]
