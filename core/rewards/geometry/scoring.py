"""How every geometry reward scores: sample by sample (malformed input is missing, not a crash),
reading a sample's grid or mesh, and the smooth ramp that maps measures into [0, 1].
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..base import RewardBatch, SampleScore


def _smoothstep(t: float) -> float:
    t = min(1.0, max(0.0, float(t)))
    return t * t * (3.0 - 2.0 * t)


def _grid(batch: RewardBatch, i: int) -> np.ndarray | None:
    if batch.occupancy is None or batch.occupancy[i] is None:
        return None
    from ...mesh import _as_bool_grid  # the core's one reading of numpy/torch/0-1 grids

    return _as_bool_grid(batch.occupancy[i])


def _mesh(batch: RewardBatch, i: int):
    if batch.meshes is None or batch.meshes[i] is None:
        return None
    import trimesh

    mesh = batch.meshes[i]
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh()
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"expected a trimesh.Trimesh, got {type(mesh).__name__}")
    return mesh


def _per_sample(batch: RewardBatch, fn: Callable[[int], SampleScore]) -> list[SampleScore]:
    """Run ``fn`` per sample; a sample whose input is malformed is missing, not a crash."""
    out = []
    for i in range(len(batch)):
        try:
            out.append(fn(i))
        except (TypeError, ValueError) as e:
            out.append(SampleScore.fail(f"unreadable input: {e}"))
    return out
