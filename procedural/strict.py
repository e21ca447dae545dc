"""Strict attribute checkers: counts a person looking at the mesh would agree with.

The lenient checkers of :mod:`.evaluate` read one profile or one column and count what they
see; a misshapen wedge with five bumps on top passes as "5 steps", a fence whose first bay has
two rails fused reads "2 rails" although three rails run along it. The strict checkers read the
solid that is meshed (:func:`ar3d.core.mesh.mesh_solid`), ask that the parts look like what they
are called, and answer ``None`` (counted wrong) when the shape is ambiguous:

* legs: the pieces on the floor, at mid height and just under the seat must be the same number,
  each slender, under a seat or top that exists, joined to the object;
* steps: the top profile going back is a staircase — flat treads of similar depth, rises of
  similar height, little ramp — the same at three places across the width, solid underneath;
* rails (fence): horizontal bars that run along the fence (front-view rows covered end to end),
  thin, and the same count as the per-bay majority between the posts;
* footrest (stool): a ring joining the legs under the seat, or legs standing apart;
* posts: floor pieces that stand up through most of the fence's height (no stubs);
* rungs: bars spanning between two side rails that run the ladder's height;
* shelves: boards spanning between two side panels, seen in the front half (not the back panel);
* windows: compact, similar-sized recesses in a flat front wall, above the ground;
* openings: see-through gaps between pillars in the front view, as many as the pillars say;
* tiers: outward steps of the silhouette, the same seen from the front and the side;
* mushroom count: separate pieces, each standing on the floor with a cap wider than its stem;
* mug handle: a loop standing out of the body (a stub is neither handle nor no handle);
* snowman arms: sticks out on both sides, or on neither;
* ring band: the lenient reading, if the ring has a hole through it;
* size classes: the lenient class, if the ratios lie within 15% of its intervals.

``check_attributes_strict(family, occupancy)`` mirrors ``evaluate.check_attributes``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..core.mesh import DegenerateOccupancyError, mesh_solid
from ..core.topology import topology
from .evaluate import floor_pieces, ring_band
from .families import FAMILIES, RATIOS

__all__ = ["STRICT_CHECKERS", "check_attributes_strict", "strict_solid"]

_EIGHT = np.ones((3, 3), bool)
_FOUR = ndimage.generate_binary_structure(2, 1)


def strict_solid(occupancy) -> np.ndarray | None:
    """The meshed solid, or None for a grid that gives no mesh."""
    try:
        return mesh_solid(occupancy)
    except (DegenerateOccupancyError, ValueError):
        return None


def _bbox(g):
    idx = np.argwhere(g)
    return idx.min(axis=0), idx.max(axis=0)


def _pieces2d(mask, min_size=2):
    lab, n = ndimage.label(mask, structure=_EIGHT)
    sizes = np.bincount(lab.ravel())[1:] if n else np.zeros(0, int)
    keep = [i + 1 for i in range(n) if sizes[i] >= min_size]
    return lab, keep, sizes


def _runs(mask1d) -> list[tuple[int, int]]:
    """(start, end inclusive) of runs of True."""
    m = np.concatenate(([False], np.asarray(mask1d, bool), [False]))
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1))


def _similar(values, lo=0.5, hi=1.6) -> bool:
    v = np.asarray(values, float)
    if len(v) < 2:
        return True
    med = float(np.median(v))
    return bool(med > 0 and (v >= lo * med).all() and (v <= hi * med).all())


# ---------------------------------------------------------------------------------------------
# legs, posts, mushrooms
# ---------------------------------------------------------------------------------------------


def strict_legs(s) -> int | None:
    lo, hi = _bbox(s)
    height = hi[2] - lo[2] + 1
    foot = (hi[0] - lo[0] + 1) * (hi[1] - lo[1] + 1)
    area = s.sum(axis=(0, 1))
    top = np.flatnonzero(area[lo[2] :] >= 0.3 * foot)  # the seat / table top / stool seat
    if len(top) == 0:
        return None
    zu = lo[2] + int(top[0])
    room = zu - lo[2]
    if room < max(4, 0.15 * height):
        return None  # no room for legs under it: a block is not a table
    levels = (None, lo[2] + int(0.65 * room), zu - 2)  # above stretchers and footrests
    counts = []
    for z in levels:
        layer = s[:, :, lo[2] : lo[2] + 2].any(axis=2) if z is None else s[:, :, z]
        lab, keep, sizes = _pieces2d(layer)
        if any(sizes[i - 1] > 0.12 * foot for i in keep):
            return None  # a slab, not a leg
        counts.append(len(keep))
    if len(set(counts)) != 1 or counts[0] == 0:
        return None
    # every leg belongs to the piece that holds the seat (no loose sticks standing beside it)
    lab3, _ = ndimage.label(s)
    seat = np.bincount(lab3[:, :, zu].ravel())[1:]
    main = int(np.argmax(seat)) + 1
    floor = lab3[:, :, lo[2]]
    legs = np.unique(floor[floor > 0])
    if not (legs == main).all():
        return None
    return counts[0]


def strict_footrest(s) -> bool | None:
    """A stool's footrest: under the seat, a ring that joins the legs (one piece with a loop:
    True) or legs that stand apart (as many pieces as legs on the floor, no loop: False)."""
    lo, hi = _bbox(s)
    foot = (hi[0] - lo[0] + 1) * (hi[1] - lo[1] + 1)
    big = s.sum(axis=(0, 1)) >= 0.3 * foot
    if not big[lo[2] :].any():
        return None
    zu = int(np.flatnonzero(big)[-1])  # the seat is the highest slab (a wide footrest is lower)
    while zu > lo[2] and big[zu - 1]:
        zu -= 1
    if zu - lo[2] < 4:
        return None  # no room under the seat
    under = topology(s[:, :, lo[2] : zu - 1])
    floor = len(_pieces2d(s[:, :, lo[2] : lo[2] + 2].any(axis=2))[1])
    if under.pieces == 1 and under.genus >= 1:
        return True
    if under.genus == 0 and floor >= 3 and under.pieces == floor:
        return False
    return None


def strict_posts(s) -> int | None:
    """Floor pieces standing up through >= 70% of the fence's height (stubs make it ambiguous)."""
    lo, hi = _bbox(s)
    height = hi[2] - lo[2] + 1
    front = s.any(axis=1)  # (x, z)
    lab, keep, _ = _pieces2d(s[:, :, lo[2] : lo[2] + 2].any(axis=2))
    n = 0
    for i in keep:
        xs = np.flatnonzero((lab == i).any(axis=1))
        col = front[xs.min() : xs.max() + 1, lo[2] :].all(axis=0)
        up = int(np.argmin(col)) if not col.all() else len(col)
        if up < 0.7 * height:
            return None
        n += 1
    return n


def strict_mushrooms(s) -> int | None:
    lab, n = ndimage.label(s)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    lo, _ = _bbox(s)
    count = 0
    for i in range(1, n + 1):
        if sizes[i - 1] < 0.05 * sizes.max():
            continue
        comp = lab == i
        clo, chi = _bbox(comp)
        if clo[2] > lo[2] + 1:
            return None  # floating: not standing on the ground
        area = comp.sum(axis=(0, 1))[clo[2] : chi[2] + 1]
        h = len(area)
        stem = area[: max(1, h // 3)].min()
        cap = area[h // 3 :].max() if h >= 3 else 0
        if cap < 2 * max(stem, 1):
            return None  # no cap wider than the stem
        count += 1
    if count != floor_pieces(s):
        return None
    return count


# ---------------------------------------------------------------------------------------------
# steps, rails, rungs, shelves
# ---------------------------------------------------------------------------------------------


def _staircase(profile: np.ndarray, floor: int) -> int | None:
    """Steps of a top-height profile going back, or None if it is no clean staircase."""
    plateaus, start = [], 0
    for i in range(1, len(profile) + 1):
        if i == len(profile) or profile[start : i + 1].max() - profile[start : i + 1].min() > 1:
            plateaus.append((start, i - 1))
            start = i
    treads = [(a, b) for a, b in plateaus if b - a + 1 >= 2]
    covered = sum(b - a + 1 for a, b in treads)
    if not treads or covered < 0.85 * len(profile):
        return None  # too much ramp between treads: a wedge, not stairs
    levels = [float(np.median(profile[a : b + 1])) for a, b in treads]
    rises = np.diff([floor - 1] + levels)
    if (rises < 2).any():
        return None  # a tread not higher than the one before it
    if not _similar([b - a + 1 for a, b in treads]) or not _similar(rises):
        return None
    return len(treads)


def strict_steps(s) -> int | None:
    lo, hi = _bbox(s)
    width = hi[0] - lo[0] + 1
    z = np.arange(s.shape[2])
    seen = s.any(axis=2)
    tops = np.where(seen, (s * z).argmax(axis=2), -1)  # highest occupied z per (x, y)
    counts = []
    for f in (0.15, 0.3, 0.45):  # left of centre: the railing stands on the right edge
        x = int(lo[0] + round(f * (width - 1)))
        ys = np.flatnonzero(tops[x] >= 0)  # the stair's own depth here (a handrail may overhang)
        if len(ys) < 4:
            return None
        prof = tops[x, ys[0] : ys[-1] + 1]
        if (prof < 0).any():
            return None  # a gap in the stair's depth
        # solid underneath: stairs are a block, not a perforated sheet
        under = np.arange(s.shape[2])[None, :] <= prof[:, None]
        under[:, : lo[2]] = False
        col = s[x, ys[0] : ys[-1] + 1]
        if col[under].mean() < 0.9:
            return None
        counts.append(_staircase(prof, lo[2]))
    if None in counts or len(set(counts)) != 1:
        return None
    return counts[0]


def _bars(front, x0, x1, min_cover=0.85, max_thick=0.2) -> list[tuple[int, int]] | None:
    """Rows of a front view covered end to end between x0 and x1: horizontal bars (z runs)."""
    height = front.shape[1]
    cover = front[x0 : x1 + 1].mean(axis=0)
    runs = _runs(cover >= min_cover)
    zs = np.flatnonzero(front.any(axis=0))
    h = zs.max() - zs.min() + 1 if len(zs) else height
    if any(b - a + 1 > max_thick * h for a, b in runs):
        return None  # a wall or board, not a bar
    return runs


def strict_rails(s) -> int | None:
    lo, hi = _bbox(s)
    front = s.any(axis=1)
    bars = _bars(front, lo[0], hi[0], min_cover=0.8, max_thick=0.25)
    if not bars:
        return None
    # the majority count between posts must agree: three rails fused in one bay are still three
    lab, keep, _ = _pieces2d(s[:, :, lo[2] : lo[2] + 2].any(axis=2))
    xs = sorted(c[0] for c in ndimage.center_of_mass(lab > 0, lab, keep))
    if len(xs) < 2:
        return None
    per_bay = []
    for a, b in zip(xs, xs[1:]):
        x = int(round((a + b) / 2))
        per_bay.append(len(_runs(front[max(0, x - 1) : x + 2].any(axis=0))))
    values, counts = np.unique(per_bay, return_counts=True)
    if counts.max() < 0.6 * len(per_bay) or int(values[counts.argmax()]) != len(bars):
        return None
    return len(bars)


def _side_columns(front, x0, x1, frac=0.2, reach=0.85):
    """x of the innermost full-height column near each side, or None: a ladder's rails, a
    bookshelf's side panels."""
    zs = np.flatnonzero(front.any(axis=0))
    full = front[:, zs.min() : zs.max() + 1].mean(axis=1) >= reach
    w = x1 - x0 + 1
    left = [x for x in range(x0, x0 + max(1, int(frac * w)) + 1) if full[x]]
    right = [x for x in range(x1 - max(1, int(frac * w)), x1 + 1) if full[x]]
    if not left or not right:
        return None
    return max(left), min(right)


def strict_rungs(s) -> int | None:
    lo, hi = _bbox(s)
    front = s.any(axis=1)
    sides = _side_columns(front, lo[0], hi[0])
    if sides is None or sides[1] - sides[0] < 3:
        return None  # no two rails standing the ladder's height
    bars = _bars(front, sides[0] + 1, sides[1] - 1, min_cover=0.9, max_thick=0.12)
    if not bars:
        return None
    return len(bars)


def strict_shelves(s) -> int | None:
    lo, hi = _bbox(s)
    depth = hi[1] - lo[1] + 1
    front = s[:, lo[1] : lo[1] + max(1, depth // 2)].any(axis=1)  # the front half: no back panel
    sides = _side_columns(front, lo[0], hi[0])
    if sides is None or sides[1] - sides[0] < 3:
        return None
    boards = _bars(front, sides[0] + 1, sides[1] - 1, min_cover=0.85, max_thick=0.2)  # a plinth thickens the bottom
    if not boards or len(boards) < 2:
        return None
    return len(boards) - 1


# ---------------------------------------------------------------------------------------------
# windows, openings, tiers
# ---------------------------------------------------------------------------------------------


def strict_windows(s) -> int | None:
    lo, hi = _bbox(s)
    ny = s.shape[1]
    seen = s.any(axis=1)
    depth = np.where(seen, s.argmax(axis=1), ny)
    low = depth[:, lo[2] : lo[2] + 3]
    if not (low < ny).any():
        return None
    wall = int(np.median(low[low < ny]))
    wall_px = seen & (depth <= wall + 1)
    # the front wall is a wall: most of the facade below the eaves lies on its plane
    facade_z = np.flatnonzero(wall_px.any(axis=0))
    zmax = facade_z.max()
    x0, x1 = np.flatnonzero(wall_px[:, lo[2]:zmax + 1].any(axis=1))[[0, -1]]
    region = seen[x0 : x1 + 1, lo[2] : zmax + 1]
    flat = wall_px[x0 : x1 + 1, lo[2] : zmax + 1]
    if flat.sum() < 0.6 * region.sum():
        return None
    cand = seen & (depth >= wall + 2) & (depth <= wall + 8)
    lab, keep, sizes = _pieces2d(cand, min_size=4)
    areas = []
    for i in keep:
        comp = lab == i
        xs, zs = np.nonzero(comp)
        if zs.min() <= lo[2] + 1 or xs.min() == 0 or xs.max() == s.shape[0] - 1 or zs.max() == s.shape[2] - 1:
            continue  # reaches the ground (the door) or the grid's edge
        ring = ndimage.binary_dilation(comp, structure=_EIGHT) & ~comp
        if not wall_px[ring].all():
            continue
        box = (xs.max() - xs.min() + 1) * (zs.max() - zs.min() + 1)
        if comp.sum() < 0.7 * box:
            return None  # a ragged dent, not a window
        areas.append(int(comp.sum()))
    if areas and max(areas) > 3 * min(areas):
        return None  # windows of a house are alike
    return len(areas)


def strict_openings(s) -> int | None:
    lo, hi = _bbox(s)
    front = s.any(axis=1)[lo[0] : hi[0] + 1, lo[2] : hi[2] + 1]
    lab, n = ndimage.label(~front, structure=_FOUR)
    count = 0
    for i in range(1, n + 1):
        comp = lab == i
        xs, zs = np.nonzero(comp)
        if zs.min() == 0 and xs.min() > 0 and xs.max() < front.shape[0] - 1 and zs.max() < front.shape[1] - 1:
            count += 1  # see-through, open to the ground, walled left, right and above
    if count == 0 or count != floor_pieces(s) - 1:
        return None
    return count


def _tiers(s, axis: int) -> int:
    lo, hi = _bbox(s)
    c = (lo[axis] + hi[axis]) / 2
    other = 1 - axis
    half = []
    for z in range(lo[2], hi[2] + 1):
        xs = np.flatnonzero(s[:, :, z].any(axis=other))
        half.append(max(abs(xs.max() + 0.5 - c), abs(xs.min() - 0.5 - c)) if len(xs) else 0.0)
    return int(np.sum(np.diff(np.array(half)) >= 1.5))


def strict_tiers(s) -> int | None:
    a, b = _tiers(s, 0), _tiers(s, 1)
    return a if a == b and a > 0 else None


# ---------------------------------------------------------------------------------------------
# parts present or not, ring band, size classes
# ---------------------------------------------------------------------------------------------


def _protrusion(s):
    """Voxels sticking out left and right of a round body: its radius is half the y extent, its
    centre the middle of the bottom layers' x run (a mug's handle, a snowman's arms are higher)."""
    lo, hi = _bbox(s)
    r = (hi[1] - lo[1] + 1) / 2
    bx = np.flatnonzero(s[:, :, lo[2] : lo[2] + 3].any(axis=(1, 2)))
    body = (bx.min() + bx.max() + 1) / 2
    return max(0.0, body - r - lo[0]), max(0.0, hi[0] + 1 - body - r)


def strict_handle(s) -> bool | None:
    left, right = _protrusion(s)
    out = max(left, right)
    if out < 2:
        return False
    if out >= 3 and topology(s).genus >= 1:
        return True
    return None  # something sticks out but closes no loop: broken stubs


def strict_arms(s) -> bool | None:
    left, right = _protrusion(s)
    if left >= 3 and right >= 3:
        return True
    if left < 2 and right < 2:
        return False
    return None


def strict_ring_band(s) -> str | None:
    lo, hi = _bbox(s)
    front = s.any(axis=1)[lo[0] : hi[0] + 1, lo[2] : hi[2] + 1]
    lab, n = ndimage.label(~front, structure=_FOUR)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])))
    if not any(i not in border for i in range(1, n + 1)):
        return None  # no hole through it: not a ring
    return ring_band(s)


def _strict_ratio(family):
    fam = FAMILIES[family]

    def check(s, read):
        idx = np.argwhere(s)
        ext = (idx.max(axis=0) - idx.min(axis=0) + 1).astype(float)
        attrs = dict(read)
        if "openings" in fam.attributes:
            if not attrs.get("openings"):
                return None
        best, best_d = None, math.inf
        for name, intervals in fam.ratio_classes.items():
            d = 0.0
            for ratio, (a, b) in intervals.items():
                r = RATIOS[ratio](ext, attrs)
                d += math.log(a / r) if r < a else math.log(r / b) if r > b else 0.0
            if d < best_d:
                best, best_d = name, d
        return best if best_d <= math.log(1.15) else None

    return check


STRICT_CHECKERS: dict[str, dict] = {
    "chair": {"legs": strict_legs},
    "table": {"legs": strict_legs},
    "stool": {"legs": strict_legs, "footrest": strict_footrest},
    "bench": {"legs": strict_legs},
    "bookshelf": {"shelves": strict_shelves},
    "stairs": {"steps": strict_steps},
    "ladder": {"rungs": strict_rungs},
    "fence": {"posts": strict_posts, "rails": strict_rails},
    "house": {"windows": strict_windows},
    "arch": {"openings": strict_openings},
    "pine_tree": {"tiers": strict_tiers},
    "mushroom": {"count": strict_mushrooms},
    "ring": {"band": strict_ring_band},
    "mug": {"handle": strict_handle},
    "snowman": {"arms": strict_arms},
}
for _name, _fam in FAMILIES.items():
    if _fam.ratio_attr is not None:
        STRICT_CHECKERS.setdefault(_name, {})[_fam.ratio_attr] = _strict_ratio(_name)


def check_attributes_strict(family: str, occupancy) -> dict:
    """Attributes of ``family`` read strictly from the meshed solid -> value, None = unreadable."""
    checks = STRICT_CHECKERS.get(family, {})
    s = strict_solid(occupancy)
    if s is None or not s.any():
        return {k: None for k in checks}
    out = {}
    ratio_attr = FAMILIES[family].ratio_attr
    for attr, fn in checks.items():
        if attr != ratio_attr:
            out[attr] = _safe(fn, s)
    if ratio_attr in checks:
        out[ratio_attr] = _safe(checks[ratio_attr], s, out)
    return out


def _safe(fn, *args):
    """A shape too odd for a checker's reading (no wall, no layer at all) is unreadable: None."""
    try:
        return fn(*args)
    except (ValueError, IndexError, ZeroDivisionError):
        return None
