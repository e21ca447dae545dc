"""``geometry.fill``: the grid's occupied fraction lies in a sane band."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..base import RewardBatch, SampleScore, missing_all
from .scoring import _grid, _per_sample, _smoothstep

__all__ = ["FillConfig", "FillFraction"]


@dataclass(frozen=True)
class FillConfig:
    low: float = 0.002
    """Below this occupied fraction of the grid (0.2 % = 524 of 262,144 voxels, the shell of a
    64×3×3 stick) the score falls off. Procedural shells: 0.75 % (a fence) at the least."""

    high: float = 0.2
    """Above this it falls off. A shell fills far less (a box spanning the grid ~9 %, the
    busiest procedural shell 9.5 %); 20 % means the decoder is filling volume, not surface."""

    empty_at: float = 0.0002
    """Score 0 at and below this fraction (52 voxels: dust). The falloff from ``low`` is a
    smoothstep in log-fraction, so it is 0.5 at the geometric mean of the two."""

    full_at: float = 0.6
    """Score 0 at and above this fraction; smoothstep in fraction from ``high``. (The core
    refuses to mesh grids above 90 %.)"""

    def __post_init__(self):
        if not 0.0 < self.empty_at < self.low <= self.high < self.full_at <= 1.0:
            raise ValueError("need 0 < empty_at < low <= high < full_at <= 1")


def _band_score(f: float, cfg: FillConfig) -> float:
    if f <= cfg.empty_at or f >= cfg.full_at:
        return 0.0
    if f < cfg.low:
        return _smoothstep(math.log(f / cfg.empty_at) / math.log(cfg.low / cfg.empty_at))
    if f > cfg.high:
        return _smoothstep((cfg.full_at - f) / (cfg.full_at - cfg.high))
    return 1.0


class FillFraction:
    """The grid's occupied-voxel fraction lies in a sane band (``FillConfig``): 0 for an
    empty grid or one filled towards a blob, 1 inside the band, smooth in between."""

    name = "geometry.fill"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy"})

    def __init__(self, config: FillConfig | None = None):
        self.config = config or FillConfig()

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.occupancy is None:
            return missing_all(batch, "no occupancy grids in the batch")
        return _per_sample(batch, self._one_of(batch))

    def _one_of(self, batch: RewardBatch):
        def one(i: int) -> SampleScore:
            grid = _grid(batch, i)
            if grid is None:
                return SampleScore.fail("no occupancy grid for this sample")
            f = float(grid.mean())
            band = [self.config.low, self.config.high]
            return SampleScore(_band_score(f, self.config), {"fraction": f, "voxels": int(grid.sum()), "band": band})

        return one
