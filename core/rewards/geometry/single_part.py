"""``geometry.single_part``: as many parts as the prompt asks for (1 unless it names several),
without floating specks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import ndimage

from ..base import RewardBatch, SampleScore, missing_all
from .part_count import PartCount, expected_parts
from .scoring import _grid, _mesh, _per_sample
from .solid import _solid

__all__ = ["PartsConfig", "SinglePart"]


@dataclass(frozen=True)
class PartsConfig:
    connectivity: int = 26
    """Voxel adjacency for parts: 26 (faces, edges or corners touch) or 6 (faces only). 26,
    because a surface voxelised at 64³ is only 26-connected along thin diagonal parts (a
    chair's slanted back leg), and because the core drops dust by 26-connected pieces too."""

    closing_iterations: int = 1
    """Morphological closing (3×3×3) before the interior is filled, as ``MeshConfig`` does,
    so parts are the pieces of the mesh that ``occupancy_to_mesh`` would make (a one-voxel gap
    is bridged there too) and volumes are solid volumes, not shell areas."""

    min_part_volume: float = 0.01
    """A component with at least this share of the total solid volume is a part."""

    min_part_extent: float = 0.2
    """…and so is one whose longest bounding-box side is at least this fraction of the whole
    object's longest side: a detached chair leg is ~0.3 % of the volume but clearly a part."""

    speck_penalty: float = 10.0
    """Components that are neither are specks: they do not count as parts, and the score is
    multiplied by ``max(0, 1 - speck_penalty × their volume share)`` (1 % of the volume in
    specks costs 10 %)."""

    count_sharpness: float = 2.0
    """Wrong part counts score ``(min(n, k) / max(n, k)) ** count_sharpness`` for n parts when
    k are expected: 2 parts for "a chair" → 0.25, 2 for "three chairs" → 0.44."""

    def __post_init__(self):
        if self.connectivity not in (6, 26):
            raise ValueError(f"connectivity must be 6 or 26, got {self.connectivity}")
        if self.closing_iterations < 0 or self.speck_penalty < 0 or self.count_sharpness <= 0:
            raise ValueError("closing_iterations and speck_penalty must be >= 0, count_sharpness > 0")
        if not 0.0 < self.min_part_volume <= 1.0 or not 0.0 < self.min_part_extent <= 1.0:
            raise ValueError("min_part_volume and min_part_extent must be in (0, 1]")


def _count_score(n: int, expected: PartCount, sharpness: float) -> float:
    if n <= 0:
        return 0.0
    if expected.contains(n):
        return 1.0
    target = expected.lo if n < expected.lo else expected.hi
    return (min(n, target) / max(n, target)) ** sharpness


class SinglePart:
    """One object (or as many as the prompt asks for), without floating specks.

    Components are 26-connected (configurable) pieces of the filled solid of the grid (see
    ``PartsConfig``), or, without a grid, the mesh's connected pieces (volume of watertight
    pieces, else of their convex hull). A component is a *part* if it holds ``min_part_volume``
    of the volume or spans ``min_part_extent`` of the object's longest side; the rest are
    specks. Value = count score (1 when the number of parts is what ``expected_parts(prompt)``
    allows, ``(min/max) ** count_sharpness`` otherwise, 0 with no parts) ×
    ``max(0, 1 - speck_penalty × speck volume share)``.

    ``expected_parts`` can be replaced (any ``prompt -> PartCount``), e.g. by counts read off the
    step-1 plan.
    """

    name = "geometry.single_part"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"occupancy", "meshes"})

    def __init__(self, config: PartsConfig | None = None, expected_parts: Callable[[str], PartCount] = expected_parts):
        self.config = config or PartsConfig()
        self.expected_parts = expected_parts

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.occupancy is None and batch.meshes is None:
            return missing_all(batch, "no occupancy grids or meshes in the batch")
        return _per_sample(batch, lambda i: self._one(batch, i))

    def _components(self, batch: RewardBatch, i: int) -> tuple[np.ndarray, np.ndarray, float, str] | None:
        """Volumes and longest bounding-box sides per component, the whole object's longest
        side, and where they came from."""
        grid = _grid(batch, i)
        if grid is not None:
            solid = _solid(grid, self.config.closing_iterations)
            if not solid.any():
                return np.zeros(0), np.zeros(0), 0.0, "occupancy"
            structure = ndimage.generate_binary_structure(3, 3 if self.config.connectivity == 26 else 1)
            labels, n = ndimage.label(solid, structure)
            volumes = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
            sides = np.array([max(s.stop - s.start for s in sl) for sl in ndimage.find_objects(labels)], np.float64)
            idx = np.argwhere(solid)
            return volumes, sides, float((idx.max(axis=0) - idx.min(axis=0) + 1).max()), "occupancy"
        mesh = _mesh(batch, i)
        if mesh is None:
            return None
        if len(mesh.faces) == 0:
            return np.zeros(0), np.zeros(0), 0.0, "mesh"
        pieces = mesh.split(only_watertight=False)
        volumes = np.array([abs(p.volume) if p.is_watertight else p.convex_hull.volume for p in pieces], np.float64)
        sides = np.array([float(np.ptp(p.vertices, axis=0).max()) for p in pieces], np.float64)
        return volumes, sides, float(np.ptp(mesh.vertices[mesh.faces.ravel()], axis=0).max()), "mesh"

    def _one(self, batch: RewardBatch, i: int) -> SampleScore:
        comps = self._components(batch, i)
        if comps is None:
            return SampleScore.fail("no occupancy grid or mesh for this sample")
        volumes, sides, whole, source = comps
        cfg = self.config
        expected = self.expected_parts(batch.prompts[i])
        details: dict[str, Any] = {"source": source, "expected": [expected.lo, expected.hi], "expected_from": expected.reason}
        if len(volumes) == 0 or volumes.sum() <= 0:
            return SampleScore(0.0, {**details, "parts": 0, "reason": "nothing occupied"})
        share = volumes / volumes.sum()
        part = (share >= cfg.min_part_volume) | (sides >= cfg.min_part_extent * whole)
        n = int(part.sum())
        speck_share = float(share[~part].sum())
        count = _count_score(n, expected, cfg.count_sharpness)
        speck = max(0.0, 1.0 - cfg.speck_penalty * speck_share)
        details.update(
            parts=n,
            part_shares=[round(float(s), 4) for s in np.sort(share[part])[::-1][:8]],
            specks=int((~part).sum()),
            speck_share=speck_share,
            count_score=count,
            speck_factor=speck,
            connectivity=cfg.connectivity if source == "occupancy" else "mesh",
        )
        return SampleScore(count * speck, details)
