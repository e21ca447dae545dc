"""Judges for generated grids that share nothing with the policy: family by nearest procedural
neighbour, and attributes read off the voxels.

``classify_family(occupancy, references)`` compares the grid with fresh procedural samples
(:func:`build_references`) by IoU of their *filled* solids at 32³ (the shell is filled as
``binary_fill_holes`` fills it, by :func:`ar3d.core.mesh.fill_holes`, and max-pooled 2x2x2,
which forgives one-voxel shifts of a thin shell), and returns the family of the nearest reference.

Attribute checkers (:data:`CHECKERS`, :func:`check_attributes`) read counts and proportions
from the grid in the canonical pose (z up, front -Y):

* legs / posts / mushroom count: pieces (8-connected) of the floor layer (the lowest 2 voxels);
* arch openings: pillars on the floor minus one;
* steps: plateaus of the top profile along y (a band of x away from the railing side);
* shelves / rungs / rails: separate runs of occupied voxels up a vertical column;
* windows: recesses in the front wall enclosed by wall on all sides (the door reaches the floor);
* pine tiers: steps outward of the silhouette's radius going up;
* ring band: thickness of the band at the bottom over the ring's width;
* mug handle, snowman arms: the x extent exceeds the y extent of the round body;
* size-like classes: the family's aspect-ratio classes applied to the grid's bounding box.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.mesh import fill_holes
from .dataset import iter_samples
from .families import FAMILIES, FAMILY_NAMES

__all__ = [
    "References",
    "build_references",
    "shape_feature",
    "classify_family",
    "classify_batch",
    "CHECKERS",
    "check_attributes",
    "grid_extents",
]

_EIGHT = np.ones((3, 3), bool)


def shape_feature(occupancy: np.ndarray, pool: int = 2) -> np.ndarray:
    """Filled solid, max-pooled by ``pool``: bool [(R/pool)³] flattened."""
    g = np.asarray(occupancy, dtype=bool)
    solid = fill_holes(g)
    r = g.shape[0] // pool
    return solid.reshape(r, pool, r, pool, r, pool).any(axis=(1, 3, 5)).reshape(-1)


@dataclass
class References:
    families: np.ndarray  # [N] family name per reference
    features: np.ndarray  # [N, F] float32 0/1
    sizes: np.ndarray  # [N] occupied count of each feature

    @classmethod
    def from_grids(cls, families, grids) -> "References":
        """References from ground-truth grids, e.g. a dataset file: ``(ds.meta families, ds.occupancy(...))``."""
        f = np.stack([shape_feature(g) for g in grids]).astype(np.float32)
        return cls(np.asarray(families), f, f.sum(axis=1))


def build_references(
    per_family: int = 60, seed: int = 10_000, workers: int = 1, families=None, splits=("train", "test")
) -> References:
    """Fresh procedural samples, ``per_family`` per family, spread over ``splits``.

    Both splits by default: the judge has no weights to leak into, and references of the
    held-out combinations keep it fair on them. Use a seed no evaluated set uses (the default
    10000 is far from the usual 0, 1, 2 …).
    """
    names = tuple(families) if families is not None else FAMILY_NAMES
    fams, feats = [], []
    counts = [per_family // len(splits) + (i < per_family % len(splits)) for i in range(len(splits))]
    for split, k in zip(splits, counts):
        for s in iter_samples(k * len(names), split, seed, workers, families=names):
            fams.append(s.family)
            feats.append(s.occupancy)
    return References.from_grids(fams, feats)


def _features(occupancies) -> list[np.ndarray]:
    """`shape_feature` of each grid, on threads: scipy's hole filling releases the GIL, so a
    Hi-GRPO reward batch of 256 grids takes ~1/cores of the 17 ms a grid it takes serially."""
    occupancies = list(occupancies)
    workers = min(16, os.cpu_count() or 1, max(1, len(occupancies) // 4))
    if workers == 1:
        return [shape_feature(o) for o in occupancies]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(shape_feature, occupancies))


def classify_batch(occupancies, references: References) -> tuple[list[str], np.ndarray]:
    """(family, IoU with the nearest reference) for each grid."""
    q = np.stack(_features(occupancies)).astype(np.float32)
    inter = q @ references.features.T
    union = q.sum(axis=1, keepdims=True) + references.sizes[None, :] - inter
    iou = inter / np.maximum(union, 1.0)
    best = iou.argmax(axis=1)
    return [str(references.families[i]) for i in best], iou[np.arange(len(best)), best]


def classify_family(occupancy, references: References) -> str:
    """Family of the nearest reference sample by IoU of filled 32³ solids."""
    return classify_batch([occupancy], references)[0][0]


# ---------------------------------------------------------------------------------------------
# attribute checkers
# ---------------------------------------------------------------------------------------------


def grid_extents(occupancy) -> np.ndarray:
    """(W, D, H) in voxels: x, y and z extent of the occupied voxels."""
    idx = np.argwhere(occupancy)
    return (idx.max(axis=0) - idx.min(axis=0) + 1).astype(float)


def _bbox(g):
    idx = np.argwhere(g)
    return idx.min(axis=0), idx.max(axis=0)


def _pieces(mask2d, min_size=2):
    lab, n = ndimage.label(mask2d, structure=_EIGHT)
    if n == 0:
        return lab, []
    sizes = np.bincount(lab.ravel())[1:]
    return lab, [i + 1 for i in range(n) if sizes[i] >= min_size]


def floor_pieces(occupancy, layers: int = 2) -> int:
    """Separate pieces touching the floor: legs, posts, pillars, stems."""
    g = np.asarray(occupancy, bool)
    lo, _ = _bbox(g)
    footprint = g[:, :, lo[2] : lo[2] + layers].any(axis=2)
    return len(_pieces(footprint)[1])


def _runs(column: np.ndarray, merge_gap: int = 1) -> int:
    """Runs of True, runs separated by <= merge_gap False counted as one."""
    idx = np.flatnonzero(column)
    if len(idx) == 0:
        return 0
    return int(1 + np.sum(np.diff(idx) > merge_gap + 1))


def count_column_runs(occupancy, x_frac=0.5, y_frac=0.5, project_y=False, merge_gap=0) -> int:
    """Runs up the vertical column at fractions (x_frac, y_frac) of the bounding box, in the
    filled solid (a shell shows a thick board as two faces; the filled board is one run)."""
    g = fill_holes(np.asarray(occupancy, bool))
    lo, hi = _bbox(g)
    x = int(round(lo[0] + x_frac * (hi[0] - lo[0])))
    if project_y:
        col = g[x - 1 : x + 2].any(axis=(0, 1))
    else:
        y = int(round(lo[1] + y_frac * (hi[1] - lo[1])))
        col = g[x, y]
    return _runs(col, merge_gap)


def count_shelves(occupancy) -> int:
    return count_column_runs(occupancy, 0.5, 0.45) - 1


def count_rungs(occupancy) -> int:
    return count_column_runs(occupancy, 0.5, project_y=True)


def count_rails(occupancy) -> int:
    """Rails between the first two posts of a fence."""
    g = np.asarray(occupancy, bool)
    lo, _ = _bbox(g)
    lab, keep = _pieces(g[:, :, lo[2] : lo[2] + 2].any(axis=2))
    xs = sorted(ndimage.center_of_mass(lab > 0, lab, keep), key=lambda c: c[0])
    if len(xs) < 2:
        return 0
    x = int(round((xs[0][0] + xs[1][0]) / 2))
    col = fill_holes(g)[x - 1 : x + 2].any(axis=(0, 1))
    return _runs(col, 0)


def count_steps(occupancy) -> int:
    """Plateaus of the top surface going back (+y), in an x band left of centre (railings are right)."""
    g = np.asarray(occupancy, bool)
    lo, hi = _bbox(g)
    x0 = int(lo[0] + 0.25 * (hi[0] - lo[0]))
    x1 = int(lo[0] + 0.45 * (hi[0] - lo[0])) + 1
    band = g[x0:x1]
    z = np.arange(g.shape[2])
    tops = []
    for y in range(lo[1], hi[1] + 1):
        col = band[:, y, :].any(axis=0)
        if col.any():
            tops.append(z[col].max())
    # plateaus: runs of columns within one voxel of the run's first height, >= 2 columns long
    steps, start, length = 0, None, 0
    for t in tops + [None]:
        if t is not None and start is not None and abs(t - start) <= 1:
            length += 1
            continue
        steps += length >= 2
        start, length = t, 1
    return int(steps)


def count_windows(occupancy) -> int:
    """Recesses of the front wall enclosed by wall: windows (the door reaches the ground)."""
    g = np.asarray(occupancy, bool)
    lo, hi = _bbox(g)
    ny = g.shape[1]
    # depth map from the front: first occupied y per (x, z); ny where nothing
    seen = g.any(axis=1)
    depth = np.where(seen, g.argmax(axis=1), ny)
    low = depth[:, lo[2] : lo[2] + 3]
    wall = int(np.median(low[low < ny]))  # the front wall's plane, from the ground row
    wall_px = seen & (depth <= wall + 1)
    cand = seen & (depth >= wall + 2) & (depth <= wall + 8)
    lab, keep = _pieces(cand, min_size=4)
    n = 0
    for i in keep:
        comp = lab == i
        xs, zs = np.nonzero(comp)
        if zs.min() <= lo[2] or xs.min() == 0 or xs.max() == g.shape[0] - 1 or zs.max() == g.shape[2] - 1:
            continue  # reaches the ground (the door) or the grid's edge: not enclosed
        ring = ndimage.binary_dilation(comp, structure=np.ones((3, 3), bool)) & ~comp
        if wall_px[ring].all():
            n += 1
    return n


def count_openings(occupancy) -> int:
    return floor_pieces(occupancy) - 1


def count_tiers(occupancy) -> int:
    """Steps outward of the silhouette half-width going up (trunk -> first cone counts as one)."""
    g = np.asarray(occupancy, bool)
    lo, hi = _bbox(g)
    cx = (lo[0] + hi[0]) / 2
    half = []
    for z in range(lo[2], hi[2] + 1):
        xs = np.flatnonzero(g[:, :, z].any(axis=1))
        half.append(max(abs(xs.max() + 0.5 - cx), abs(xs.min() - 0.5 - cx)) if len(xs) else 0.0)
    half = np.array(half)
    return int(np.sum(np.diff(half) >= 1.5))


def ring_band(occupancy) -> str:
    """Thickness of the band at the bottom of the ring relative to the ring's width."""
    g = np.asarray(occupancy, bool)
    lo, hi = _bbox(g)
    solid = fill_holes(g)
    x, y = int(round((lo[0] + hi[0]) / 2)), int(round((lo[1] + hi[1]) / 2))
    col = solid[x, y, lo[2] :]
    run = int(np.argmin(col)) if not col.all() else len(col)
    return "thick" if run / (hi[0] - lo[0] + 1) > 0.19 else "thin"


def sticks_out_sideways(threshold: float):
    """True where the x extent exceeds the y extent by ``threshold``: a mug's handle, a
    snowman's arms (both lie in the x-z plane of an otherwise round object)."""

    def check(occupancy) -> bool:
        w, d, _ = grid_extents(occupancy)
        return bool(w / d > threshold)

    return check


def _ratio_checker(family):
    fam = FAMILIES[family]

    def check(occupancy, predicted=None):
        attrs = dict(predicted or {})
        if "openings" in fam.attributes and "openings" not in attrs:
            attrs["openings"] = max(1, count_openings(occupancy))
        if "openings" in fam.attributes and attrs["openings"] < 1:
            return None  # no bay to measure a height over (and no division by zero)
        return fam.ratio_class(grid_extents(occupancy), attrs)

    return check


CHECKERS: dict[str, dict] = {
    "chair": {"legs": floor_pieces},
    "table": {"legs": floor_pieces},
    "stool": {"legs": floor_pieces},
    "bench": {"legs": floor_pieces},
    "bookshelf": {"shelves": count_shelves},
    "stairs": {"steps": count_steps},
    "ladder": {"rungs": count_rungs},
    "fence": {"posts": floor_pieces, "rails": count_rails},
    "house": {"windows": count_windows},
    "arch": {"openings": count_openings},
    "pine_tree": {"tiers": count_tiers},
    "mushroom": {"count": floor_pieces},
    "ring": {"band": ring_band},
    "mug": {"handle": sticks_out_sideways(1.12)},
    "snowman": {"arms": sticks_out_sideways(1.2)},
}
for _name, _fam in FAMILIES.items():
    if _fam.ratio_attr is not None:
        CHECKERS.setdefault(_name, {})[_fam.ratio_attr] = _ratio_checker(_name)


def check_attributes(family: str, occupancy) -> dict:
    """Attributes of ``family`` that can be read from the grid -> value read."""
    out = {}
    for attr, fn in CHECKERS.get(family, {}).items():
        if attr == FAMILIES[family].ratio_attr:
            out[attr] = fn(occupancy, out)
        else:
            out[attr] = fn(occupancy)
    return out
