"""``geometry.not_flat``: not a sheet; part of the filled solid has depth."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import RewardBatch, SampleScore, missing_all
from .scoring import _grid, _per_sample, _smoothstep
from .solid import _erode6, _solid

__all__ = ["NotFlatConfig", "NotFlat"]


@dataclass(frozen=True)
class NotFlatConfig:
    closing_iterations: int = 1
    """As ``PartsConfig.closing_iterations``: the solid is the one the mesh would enclose."""

    ramp: float = 0.1
    """The score is ``smoothstep(core / ramp)`` where ``core`` is the share of the filled solid
    that survives one 6-connected erosion (voxels more than one voxel from the outside). A sheet
    one or two voxels thick, or a shell whose fill leaked, has core 0; the thinnest procedural
    objects (fences, ladders: 4-voxel posts) have 0.18–0.25, furniture 0.33–0.8."""

    def __post_init__(self):
        if self.closing_iterations < 0 or not 0.0 < self.ramp <= 1.0:
            raise ValueError("closing_iterations must be >= 0 and ramp in (0, 1]")


class NotFlat:
    """Not a sheet: part of the object has depth.

    ``core`` = the share of the filled solid (``_solid``: closing, interior fill) that survives
    one 6-connected erosion. A flat slab one or two voxels thick, a bent single surface, or a
    shell with a hole the fill leaked through all have core 0 — they render as paper-thin
    billboards that image rewards may still like. Value ``smoothstep(core / ramp)``.
    """

    name = "geometry.not_flat"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy"})

    def __init__(self, config: NotFlatConfig | None = None):
        self.config = config or NotFlatConfig()

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.occupancy is None:
            return missing_all(batch, "no occupancy grids in the batch")
        return _per_sample(batch, lambda i: self._one(batch, i))

    def _one(self, batch: RewardBatch, i: int) -> SampleScore:
        grid = _grid(batch, i)
        if grid is None:
            return SampleScore.fail("no occupancy grid for this sample")
        solid = _solid(grid, self.config.closing_iterations)
        total = int(solid.sum())
        if total == 0:
            return SampleScore(0.0, {"core": 0.0, "solid_voxels": 0, "reason": "nothing occupied"})
        core = float(_erode6(solid).sum()) / total
        return SampleScore(_smoothstep(core / self.config.ramp), {"core": core, "solid_voxels": total})
