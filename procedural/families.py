"""Registry of procedural object families: discrete attributes, continuous proportions, builders.

Each :class:`Family` samples *attributes* (the discrete, caption-worthy facts used for evaluation:
``legs``, ``steps``, ``size`` …) and then continuous *proportions* given them, and builds a z-up
:class:`~ar3d.procedural.geometry.Shape` standing on z = 0 with its front facing -Y.

Visibility at 64³. Sizes are chosen against the longest side L of the object (the grid maps L to
64 voxels): thin parts (legs, rails, rungs, blades, boards) are >= ~0.035 L thick (>= 2 voxels),
gaps that make counts readable (between legs, rungs, rails, shelves, steps) leave >= 3 empty voxels.

Size classes are aspect ratios of the object's bounding box (``W`` = x extent, ``D`` = y, ``H`` =
z), so they survive the grid's scale normalisation: each family's ``ratio_classes`` lists, per
class, the intervals every sample of that class lies in (enforced by rejection sampling). The
intervals of different classes leave a gap, so a grid's bounding box tells the class back.

Held-out combinations (see also :mod:`ar3d.procedural.captions` for templates). Each family lists
in ``heldout`` a few partial attribute assignments, e.g. chair ``{"legs": 3, "size": "tall"}``.
A sample whose attributes match any of them is a *novel combination*: it only ever appears in the
test split. Every value of every attribute still occurs in training, in other combinations, so a
held-out combination tests composition, not an unseen word. The rule is the explicit list below
(:func:`Family.is_heldout`), so it is deterministic and independent of seeds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import trimesh

from .geometry import (
    Shape,
    box,
    box_at,
    capsule,
    cone,
    cylinder,
    cylinder_between,
    ellipsoid,
    frustum,
    hull,
    revolve,
    sphere,
    torus,
)

__all__ = ["Family", "FAMILIES", "FAMILY_NAMES", "get_family", "RATIOS", "extents_ratio_class"]

# Aspect ratios of a bounding box's extents e = (W, D, H) and the attributes.
RATIOS: dict[str, Callable[[np.ndarray, dict], float]] = {
    "H/W": lambda e, a: e[2] / e[0],
    "H/D": lambda e, a: e[2] / e[1],
    "W/D": lambda e, a: e[0] / e[1],
    "H/WD": lambda e, a: e[2] / max(e[0], e[1]),
    # an arcade's height over the width of one bay (opening + pillar)
    "H/bay": lambda e, a: e[2] / (e[0] / a["openings"]),
}


def extents_ratio_class(classes: dict, extents, attrs: dict) -> str:
    """The class whose intervals the extents fit best (distance in log-ratio outside the intervals)."""
    best, best_d = None, math.inf
    for name, intervals in classes.items():
        d = 0.0
        for ratio, (lo, hi) in intervals.items():
            r = RATIOS[ratio](extents, attrs)
            if r < lo:
                d += math.log(lo / r)
            elif r > hi:
                d += math.log(r / hi)
        if d < best_d:
            best, best_d = name, d
    return best


def _matches(attrs: dict, partial: dict) -> bool:
    return all(attrs.get(k) == v for k, v in partial.items())


@dataclass(frozen=True)
class Family:
    """One object family: its attributes, held-out combinations and geometry."""

    name: str
    attributes: dict  # attribute -> tuple of values (order = canonical)
    sample: Callable  # (rng, attrs) -> dict of continuous proportions
    build: Callable  # (params incl. attrs) -> Shape
    heldout: tuple = ()  # partial attribute dicts reserved for the test split
    invalid: tuple = ()  # partial attribute dicts never generated (nonsense combinations)
    ratio_attr: str | None = None  # attribute that is an aspect-ratio class ("size", "shape")
    ratio_classes: dict = field(default_factory=dict)  # class -> {ratio: (lo, hi)}

    def combos(self) -> list[dict]:
        """All valid attribute combinations, in canonical order."""
        keys = list(self.attributes)
        out = []
        for values in itertools.product(*(self.attributes[k] for k in keys)):
            a = dict(zip(keys, values))
            if not any(_matches(a, p) for p in self.invalid):
                out.append(a)
        return out

    def is_heldout(self, attrs: dict) -> bool:
        return any(_matches(attrs, p) for p in self.heldout)

    def split_combos(self, split: str) -> list[dict]:
        """Combinations of a split: train = not held out; test-only = held out."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return [a for a in self.combos() if self.is_heldout(a) == (split == "test")]

    def sample_attributes(self, rng: np.random.Generator, split: str, novel_fraction: float = 0.5) -> dict:
        """Uniform over the split's combinations; the test split draws a held-out one with
        probability ``novel_fraction``, else an ordinary one (then only its caption is unseen)."""
        if split == "test" and rng.random() < novel_fraction:
            pool = self.split_combos("test")
        else:
            pool = self.split_combos("train")
        return dict(pool[int(rng.integers(len(pool)))])

    def sample_params(self, rng: np.random.Generator, attrs: dict, tries: int = 200):
        """(params, shape): continuous proportions rounded for JSON, checked against the size class."""
        for _ in range(tries):
            raw = self.sample(rng, attrs)
            params = {**attrs, **{k: _json_value(v) for k, v in raw.items()}}
            shape = self.build(params)
            if self.ratio_attr is None:
                return params, shape
            lo, hi = shape.bounds()
            ext = hi - lo
            ok = all(
                a <= RATIOS[r](ext, attrs) <= b for r, (a, b) in self.ratio_classes[attrs[self.ratio_attr]].items()
            )
            if ok:
                return params, shape
        raise RuntimeError(f"{self.name}: no proportions for {attrs} within the size class after {tries} tries")

    def ratio_class(self, extents, attrs: dict) -> str | None:
        if self.ratio_attr is None:
            return None
        return extents_ratio_class(self.ratio_classes, np.asarray(extents, float), attrs)


def _json_value(v):
    """Plain JSON types, floats rounded to 4 decimals: the builders see exactly what is saved."""
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(float(v), 4)
    return v


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _leg(x, y, z0, z1, r, square):
    return box_at(x - r, x + r, y - r, y + r, z0, z1) if square else cylinder(r, z0, z1, x, y)


def _rot_y(mesh, angle, point):
    mesh.apply_transform(trimesh.transformations.rotation_matrix(angle, (0, 1, 0), point))
    return mesh


# ---------------------------------------------------------------------------------------------
# furniture
# ---------------------------------------------------------------------------------------------


def chair_sample(rng, a):
    w = _u(rng, 0.42, 0.52)
    return dict(
        seat_w=w,
        seat_d=w * _u(rng, 0.9, 1.1),
        seat_h=_u(rng, 0.42, 0.48),
        seat_t=_u(rng, 0.05, 0.07),
        leg_r=_u(rng, 0.03, 0.036),
        square_legs=bool(rng.random() < 0.5),
        back_h=_u(rng, 0.5, 0.68) if a["size"] == "tall" else _u(rng, 0.18, 0.3),
        back_t=_u(rng, 0.045, 0.06),
        back_style=str(rng.choice(["solid", "frame"])),
        arm_h=_u(rng, 0.17, 0.24),
    )


def chair_build(p):
    w, d, sh, st, r = p["seat_w"], p["seat_d"], p["seat_h"], p["seat_t"], p["leg_r"]
    top = sh + st
    s = Shape()
    s += box_at(-w / 2, w / 2, -d / 2, d / 2, sh, top)
    inset = r * 1.4
    xs, yf, yb = w / 2 - inset, -d / 2 + inset, d / 2 - inset
    feet = [(-xs, yf), (xs, yf), (-xs, yb), (xs, yb)] if p["legs"] == 4 else [(-xs, yf), (xs, yf), (0.0, yb)]
    s += [_leg(x, y, 0.0, sh + 0.01, r, p["square_legs"]) for x, y in feet]
    bt, bh = p["back_t"], p["back_h"]
    y0, y1, z1 = d / 2 - bt, d / 2, top + bh
    if p["back_style"] == "solid":
        s += box_at(-w / 2, w / 2, y0, y1, top - 0.01, z1)
    else:  # two posts, a top rail and a lower rail around an open panel
        pw = max(0.06, 0.14 * w)
        rail = max(0.06, 0.25 * bh)
        s += box_at(-w / 2, -w / 2 + pw, y0, y1, top - 0.01, z1)
        s += box_at(w / 2 - pw, w / 2, y0, y1, top - 0.01, z1)
        s += box_at(-w / 2, w / 2, y0, y1, z1 - rail, z1)
        if bh > 0.4:
            s += box_at(-w / 2, w / 2, y0, y1, top + 0.3 * bh, top + 0.3 * bh + 0.05)
    if p["armrests"]:
        at, ah = 0.045, p["arm_h"]
        for sx in (-1, 1):
            x0, x1 = sorted((sx * w / 2, sx * (w / 2 - at)))
            s += box_at(x0, x1, -d / 2 + 0.02, -d / 2 + 0.02 + at, top - 0.01, top + ah)
            s += box_at(x0, x1, -d / 2, y0 + 0.01, top + ah - at, top + ah)
    return s


def table_sample(rng, a):
    size, legs = a["size"], a["legs"]
    if size == "tall":
        w = _u(rng, 0.6, 0.8)
        d, h = w * _u(rng, 0.85, 1.0), w * _u(rng, 1.12, 1.4)
    elif size == "short":
        w = _u(rng, 0.9, 1.2)
        d, h = w * _u(rng, 0.64, 0.95), w * _u(rng, 0.35, 0.45)
    else:
        w = _u(rng, 1.6, 2.0)
        d, h = w * _u(rng, 0.46, 0.56), w * _u(rng, 0.31, 0.41)
    if legs == 3:
        d = w  # round top
    big = max(w, d, h)
    return dict(
        width=w,
        depth=d,
        height=h,
        top_t=big * _u(rng, 0.035, 0.05),
        leg_r=big * _u(rng, 0.022, 0.028),
        square_legs=bool(rng.random() < 0.5),
        apron=bool(rng.random() < 0.5),
    )


def table_build(p):
    w, d, h, t, r = p["width"], p["depth"], p["height"], p["top_t"], p["leg_r"]
    s = Shape()
    if p["legs"] == 3:
        s += cylinder(w / 2, h - t, h)
        ring = 0.68 * w / 2
        feet = [(ring * math.cos(th), ring * math.sin(th)) for th in np.pi / 2 + np.arange(3) * 2 * np.pi / 3]
        if p["apron"]:
            s += cylinder(ring + r, h - t - 1.5 * t, h - t + 0.005)
    else:
        s += box_at(-w / 2, w / 2, -d / 2, d / 2, h - t, h)
        inset = r * 1.5 + 0.03 * w
        xs, ys = w / 2 - inset, d / 2 - inset
        feet = [(x, y) for x in (-xs, xs) for y in (-ys, ys)]
        if p["legs"] == 6:
            feet += [(0.0, -ys), (0.0, ys)]
        if p["apron"]:
            s += box_at(-xs, xs, -ys, ys, h - t - 1.5 * t, h - t + 0.005)
    s += [_leg(x, y, 0.0, h - t + 0.01, r, p["square_legs"]) for x, y in feet]
    return s


def stool_sample(rng, a):
    tall = a["size"] == "tall"
    h = _u(rng, 0.68, 0.8) if tall else _u(rng, 0.36, 0.44)
    rad = _u(rng, 0.16, 0.2) if tall else _u(rng, 0.17, 0.21)
    return dict(
        height=h,
        seat_r=rad,
        seat_t=_u(rng, 0.06, 0.08),
        leg_r=max(h, 2 * rad) * _u(rng, 0.028, 0.034),
        splay=_u(rng, 1.0, 1.2),
        foot_z=_u(rng, 0.28, 0.38),
        square_seat=bool(rng.random() < 0.25),
    )


def stool_build(p):
    h, rad, t, r = p["height"], p["seat_r"], p["seat_t"], p["leg_r"]
    n = p["legs"]
    s = Shape()
    if p["square_seat"]:
        q = rad * 0.9
        s += box_at(-q, q, -q, q, h - t, h)
    else:
        s += cylinder(rad, h - t, h)
    top_ring, foot_ring = 0.62 * rad, p["splay"] * rad * 0.85
    angles = (np.pi / 2 if n == 3 else np.pi / 4) + np.arange(n) * 2 * np.pi / n
    for th in angles:
        c, sn = math.cos(th), math.sin(th)
        s += cylinder_between((top_ring * c, top_ring * sn, h - t + 0.01), (foot_ring * c, foot_ring * sn, r * 0.4), r)
    if p["footrest"]:
        zf = p["foot_z"] * h
        ring = top_ring + (foot_ring - top_ring) * (1 - zf / (h - t))
        s += torus(ring, r * 0.85, (0, 0, zf))
    return s


def bench_sample(rng, a):
    w = _u(rng, 1.5, 1.9) if a["size"] == "long" else _u(rng, 0.85, 1.0)
    return dict(
        width=w,
        depth=_u(rng, 0.34, 0.42) if a["size"] == "long" else _u(rng, 0.3, 0.38),
        stretcher=bool(rng.random() < 0.5),
        seat_h=_u(rng, 0.42, 0.48),
        seat_t=_u(rng, 0.05, 0.07),
        leg_a=max(w, 0.9) * _u(rng, 0.035, 0.042),
        back_h=_u(rng, 0.3, 0.4),
        back_style=str(rng.choice(["slab", "rail"])),
    )


def bench_build(p):
    w, d, sh, t, a = p["width"], p["depth"], p["seat_h"], p["seat_t"], p["leg_a"]
    s = Shape()
    s += box_at(-w / 2, w / 2, -d / 2, d / 2, sh - t, sh)
    xs, ys = w / 2 - a * 1.5, d / 2 - a * 1.2
    feet = [(x, y) for x in (-xs, xs) for y in (-ys, ys)]
    if p["legs"] == 6:
        feet += [(0.0, -ys), (0.0, ys)]
    s += [_leg(x, y, 0.0, sh - t + 0.01, a / 2, True) for x, y in feet]
    if p["stretcher"]:  # a rail joining the legs lengthwise, low down
        z = 0.3 * sh
        s += box_at(-xs, xs, -a * 0.4, a * 0.4, z, z + a * 0.8)
        for x in (-xs, xs):
            s += box_at(x - a * 0.4, x + a * 0.4, -ys, ys, z, z + a * 0.8)
    if p["backrest"]:
        bt, bh = 0.05, p["back_h"]
        y0, y1 = d / 2 - bt, d / 2
        if p["back_style"] == "slab":
            s += box_at(-w / 2, w / 2, y0, y1, sh - 0.01, sh + bh)
        else:  # a board held above the seat by posts at the ends (and middle)
            s += box_at(-w / 2, w / 2, y0, y1, sh + bh * 0.5, sh + bh)
            for x in (-xs, xs) + ((0.0,) if p["legs"] == 6 else ()):
                s += box_at(x - a / 2, x + a / 2, y0, y1, sh - 0.01, sh + bh * 0.5 + 0.01)
    return s


def bed_sample(rng, a):
    return dict(
        length=_u(rng, 1.9, 2.1),
        width=_u(rng, 0.9, 1.05) if a["size"] == "single" else _u(rng, 1.45, 1.7),
        leg_h=_u(rng, 0.1, 0.15),
        frame_h=_u(rng, 0.15, 0.2),
        mattress_h=_u(rng, 0.18, 0.24),
        head_h=_u(rng, 0.9, 1.1),
        foot_h=_u(rng, 0.5, 0.62),
        board_t=_u(rng, 0.05, 0.07),
        pillow_d=_u(rng, 0.28, 0.34),
        pillow_h=_u(rng, 0.065, 0.08),
    )


def bed_build(p):
    ln, w, bt = p["length"], p["width"], p["board_t"]
    z0 = p["leg_h"]
    z1 = z0 + p["frame_h"]
    z2 = z1 + p["mattress_h"]
    s = Shape()
    s += box_at(-w / 2, w / 2, -ln / 2, ln / 2, z0, z1)
    s += box_at(-w / 2 + 0.03, w / 2 - 0.03, -ln / 2 + 0.03, ln / 2 - bt, z1 - 0.01, z2)
    for x in (-w / 2 + 0.06, w / 2 - 0.06):
        for y in (-ln / 2 + 0.06, ln / 2 - 0.06):
            s += box_at(x - 0.05, x + 0.05, y - 0.05, y + 0.05, 0.0, z0 + 0.01)
    s += box_at(-w / 2, w / 2, ln / 2 - bt, ln / 2, 0.0, p["head_h"])
    if p["footboard"]:
        s += box_at(-w / 2, w / 2, -ln / 2, -ln / 2 + bt, 0.0, p["foot_h"])
    n = p["pillows"]
    gap = 0.1
    pw = (w - 0.16 - gap * (n - 1)) / n if n > 1 else min(w * 0.72, 0.9)
    yc = ln / 2 - bt - p["pillow_d"] / 2 - 0.04
    for i in range(n):
        xc = 0.0 if n == 1 else (-1 if i == 0 else 1) * (pw + gap) / 2
        s += ellipsoid((pw / 2, p["pillow_d"] / 2, p["pillow_h"]), (xc, yc, z2 + p["pillow_h"] * 0.45), subdivisions=3)
    return s


def bookshelf_sample(rng, a):
    if a["size"] == "tall":
        w = _u(rng, 0.6, 0.85)
        h = w * _u(rng, 1.8, 2.4)
    else:
        w = _u(rng, 1.2, 1.6)
        h = w * _u(rng, 0.56, 0.75)
    return dict(
        width=w,
        height=h,
        depth=_u(rng, 0.25, 0.35),
        board_t=max(w, h) * _u(rng, 0.031, 0.037),
        plinth=bool(rng.random() < 0.5),
    )


def bookshelf_build(p):
    w, h, d, t, n = p["width"], p["height"], p["depth"], p["board_t"], p["shelves"]
    s = Shape()
    s += box_at(-w / 2, -w / 2 + t, -d / 2, d / 2, 0.0, h)
    s += box_at(w / 2 - t, w / 2, -d / 2, d / 2, 0.0, h)
    base = t * 1.5 if p["plinth"] else 0.0
    if p["plinth"]:
        s += box_at(-w / 2, w / 2, -d / 2 + t, d / 2, 0.0, base + 0.001)
    pitch = (h - base - t) / n
    for k in range(n + 1):
        z = base + k * pitch
        s += box_at(-w / 2 + t / 2, w / 2 - t / 2, -d / 2, d / 2, z, z + t)
    if p["back"]:
        s += box_at(-w / 2, w / 2, d / 2 - t * 0.8, d / 2, 0.0, h)
    return s


# ---------------------------------------------------------------------------------------------
# vessels and household objects
# ---------------------------------------------------------------------------------------------


def mug_sample(rng, a):
    r = _u(rng, 0.4, 0.5)
    h = 2 * r * (_u(rng, 1.25, 1.5) if a["size"] == "tall" else _u(rng, 0.7, 0.85))
    big = max(h, 2 * r + 0.3)
    return dict(
        radius=r,
        height=h,
        wall=big * _u(rng, 0.045, 0.055),
        handle_r=h * _u(rng, 0.22, 0.28),
        handle_z=_u(rng, 0.48, 0.55),
    )


def mug_build(p):
    r, h, t = p["radius"], p["height"], p["wall"]
    s = Shape()
    s += cylinder(r, 0.0, h, sections=48)
    if p["handle"]:
        s += torus(p["handle_r"], t * 1.25, (r, 0.0, h * p["handle_z"]), axis="y")
    s.cut.append(cylinder(r - t, t * 1.2, h + 0.1, sections=48))
    return s


def bottle_sample(rng, a):
    long_neck = a["neck"] == "long"
    r = _u(rng, 0.15, 0.2)
    return dict(
        radius=r,
        neck_len=_u(rng, 0.26, 0.33) if long_neck else _u(rng, 0.07, 0.11),
        shoulder=_u(rng, 0.1, 0.16),
        neck_r=max(0.05, r * _u(rng, 0.3, 0.38)),
        cap_h=_u(rng, 0.06, 0.08),
    )


def bottle_build(p):
    r, rn, hn, hs = p["radius"], p["neck_r"], p["neck_len"], p["shoulder"]
    top = 1.0 - (p["cap_h"] if p["cap"] else 0.0)
    zb = top - hn - hs  # top of the straight body
    s = Shape()
    if p["body"] == "round":
        s += revolve([(0.0, 0.0), (r, 0.0), (r, zb), (rn, zb + hs), (rn, top), (0.0, top)], sections=40)
    else:
        q = r * 0.88
        s += box_at(-q, q, -q, q, 0.0, zb)
        ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        circle = [(rn * math.cos(t), rn * math.sin(t), zb + hs) for t in ang]
        square = [(x, y, zb) for x in (-q, q) for y in (-q, q)]
        s += hull(circle + square)
        s += cylinder(rn, zb + hs - 0.01, top)
    if p["cap"]:
        s += cylinder(rn * 1.45, top - 0.01, 1.0)
    else:
        s += torus(rn, 0.018, (0, 0, top - 0.02))
    return s


def _smooth_profile(zs, rs, n=28):
    from scipy.interpolate import PchipInterpolator

    f = PchipInterpolator(zs, rs)
    z = np.linspace(zs[0], zs[-1], n)
    return z, f(z)


def vase_sample(rng, a):
    if a["shape"] == "round":
        rb = _u(rng, 0.33, 0.42)
        return dict(
            belly_r=rb,
            belly_z=_u(rng, 0.3, 0.45),
            base_r=rb * _u(rng, 0.5, 0.7),
            neck_r=rb * _u(rng, 0.35, 0.5),
            lip=_u(rng, 1.2, 1.5),
            wall=_u(rng, 0.03, 0.038),
            handle_r=_u(rng, 0.08, 0.11),
        )
    rb = _u(rng, 0.15, 0.2)
    return dict(
        belly_r=rb,
        belly_z=_u(rng, 0.2, 0.5),
        base_r=rb * _u(rng, 0.6, 0.8),
        neck_r=rb * _u(rng, 0.55, 0.75),
        lip=_u(rng, 1.1, 1.3),
        wall=_u(rng, 0.03, 0.036),
        handle_r=_u(rng, 0.07, 0.09),
    )


def _vase_curve(p):
    zs = [0.0, p["belly_z"], 0.82, 1.0]
    rs = [p["base_r"], p["belly_r"], p["neck_r"], p["neck_r"] * p["lip"]]
    return _smooth_profile(zs, rs)


def vase_build(p):
    z, r = _vase_curve(p)
    t = p["wall"]
    s = Shape()
    s += revolve([(0.0, 0.0)] + list(zip(r, z)) + [(0.0, 1.0)], sections=40)
    if p["handles"] == 2:
        zh = 0.7
        rh = float(np.interp(zh, z, r))
        for sx in (-1, 1):
            s += torus(p["handle_r"], t * 1.2, (sx * (rh + p["handle_r"] * 0.35), 0.0, zh), axis="y")
    zi = z[z >= t * 1.5]
    ri = np.interp(zi, z, r) - t
    s.cut.append(revolve([(0.0, t * 1.5)] + list(zip(ri, zi)) + [(ri[-1] + t, 1.05), (0.0, 1.05)], sections=40))
    return s


def lamp_sample(rng, a):
    if a["size"] == "tall":
        return dict(
            height=1.0,
            base_r=_u(rng, 0.12, 0.16),
            base_h=_u(rng, 0.03, 0.045),
            pole_r=_u(rng, 0.019, 0.024),
            shade_r=_u(rng, 0.17, 0.22) if a["shade"] == "cone" else _u(rng, 0.14, 0.18),
            shade_h=_u(rng, 0.2, 0.26),
            taper=_u(rng, 0.5, 0.62),
        )
    return dict(
        height=_u(rng, 0.45, 0.55),
        base_r=_u(rng, 0.11, 0.14),
        base_h=_u(rng, 0.035, 0.05),
        pole_r=_u(rng, 0.019, 0.023),
        shade_r=_u(rng, 0.16, 0.2) if a["shade"] == "cone" else _u(rng, 0.13, 0.17),
        shade_h=_u(rng, 0.16, 0.2),
        taper=_u(rng, 0.5, 0.62),
    )


def lamp_build(p):
    h, br, bh, pr, sr, sh = p["height"], p["base_r"], p["base_h"], p["pole_r"], p["shade_r"], p["shade_h"]
    s = Shape()
    if p["base"] == "round":
        s += cylinder(br, 0.0, bh)
    else:
        q = br * 0.9
        s += box_at(-q, q, -q, q, 0.0, bh)
    s += cylinder(pr, bh - 0.01, h - sh * 0.4, sections=16)
    if p["shade"] == "cone":
        s += frustum(sr, sr * p["taper"], h - sh, h)
    else:
        s += cylinder(sr, h - sh, h)
    return s


# ---------------------------------------------------------------------------------------------
# nature
# ---------------------------------------------------------------------------------------------


def tree_sample(rng, a):
    tall = a["size"] == "tall"
    return dict(
        trunk_r=_u(rng, 0.05, 0.065),
        trunk_h=_u(rng, 0.45, 0.6) if tall else _u(rng, 0.2, 0.3),
        crown_r=_u(rng, 0.25, 0.3) if tall else _u(rng, 0.36, 0.44),
        crown_stretch=_u(rng, 1.2, 1.5) if tall else _u(rng, 0.8, 1.0),
        spin=_u(rng, 0, 2 * np.pi),
    )


def tree_build(p):
    tr, th, cr, k = p["trunk_r"], p["trunk_h"], p["crown_r"], p["crown_stretch"]
    s = Shape()
    s += frustum(tr * 1.3, tr, 0.0, th + cr * k * 0.6, sections=20)
    cz = th + cr * k * 0.85
    if p["crown"] == "single":
        s += ellipsoid((cr, cr, cr * k), (0, 0, cz))
    else:  # a cluster of round clumps: one on top, three around it lower down
        s += ellipsoid((cr * 0.7, cr * 0.7, cr * 0.7 * k), (0, 0, cz + cr * k * 0.3))
        for i in range(3):
            th_i = p["spin"] + i * 2 * np.pi / 3
            off = cr * 0.45
            s += ellipsoid(
                (cr * 0.6, cr * 0.6, cr * 0.6 * k), (off * math.cos(th_i), off * math.sin(th_i), cz - cr * k * 0.2)
            )
    return s


def pine_sample(rng, a):
    return dict(
        base_r=_u(rng, 0.19, 0.26) if a["size"] == "tall" else _u(rng, 0.36, 0.48),
        trunk_r=_u(rng, 0.04, 0.055),
        trunk_h=_u(rng, 0.08, 0.14),
        overlap=_u(rng, 0.58, 0.66),
        shrink=_u(rng, 0.78, 0.84),
    )


def pine_build(p):
    n, rb, th, f = p["tiers"], p["base_r"], p["trunk_h"], p["overlap"]
    hc = (1.0 - th) / (1 + (n - 1) * f)
    s = Shape()
    s += cylinder(p["trunk_r"], 0.0, th + 0.05, sections=16)
    for k in range(n):
        rk = rb * p["shrink"] ** k  # each tier juts out past the top of the one below
        z0 = th + k * f * hc
        s += cone(rk, z0, z0 + hc)
    return s


def mushroom_sample(rng, a):
    return dict(
        stem_r=_u(rng, 0.07, 0.09),
        stem_h=_u(rng, 0.32, 0.45),
        cap_r=_u(rng, 0.22, 0.28),
        cap_k=_u(rng, 0.6, 0.85) if a["cap"] == "dome" else _u(rng, 0.2, 0.26),
        small=_u(rng, 0.55, 0.7),
        jitter=_u(rng, -0.4, 0.4),
    )


def _mushroom(p, scale, x, y):
    sr, sh, cr, k = p["stem_r"] * scale, p["stem_h"] * scale, p["cap_r"] * scale, p["cap_k"]
    parts = [frustum(sr * 1.25, sr, 0.0, sh + 0.01, x, y, sections=20)]
    hc = cr * k
    if p["cap"] == "dome":
        ang = np.linspace(0, np.pi / 2, 10)
        prof = [(0.0, sh)] + [(cr * math.cos(t), sh + hc * math.sin(t)) for t in ang]
    else:  # a flat disc with a rounded rim
        ang = np.linspace(-np.pi / 2, np.pi / 2, 9)
        rim = hc / 2
        prof = (
            [(0.0, sh)] + [(cr - rim + rim * math.cos(t), sh + rim + rim * math.sin(t)) for t in ang] + [(0.0, sh + hc)]
        )
    parts.append(revolve(prof, sections=32, center=(x, y, 0.0)))
    return parts


def mushroom_build(p):
    n = p["count"]
    s = Shape()
    s += _mushroom(p, 1.0, 0.0, 0.0)
    sc = p["small"]
    dist = p["cap_r"] * (1 + sc) + 0.05
    for i in range(n - 1):
        th = (0.0 if i == 0 else np.pi) + p["jitter"] * (1 if i == 0 else -1)
        s += _mushroom(p, sc, dist * math.cos(th), dist * math.sin(th))
    return s


def cactus_sample(rng, a):
    r = _u(rng, 0.08, 0.11)
    return dict(
        trunk_r=r,
        trunk_h=_u(rng, 0.75, 0.9),
        arm_r=r * _u(rng, 0.62, 0.75),
        reach=_u(rng, 0.13, 0.18),
        spin=_u(rng, -0.3, 0.3),
        arm_z=[_u(rng, 0.3, 0.5), _u(rng, 0.4, 0.58), _u(rng, 0.35, 0.55)],
        arm_up=[_u(rng, 0.12, 0.2) for _ in range(3)],
        pot_r=_u(rng, 0.17, 0.21),
        pot_h=_u(rng, 0.16, 0.22),
    )


def cactus_build(p):
    r, h, ra, n = p["trunk_r"], p["trunk_h"], p["arm_r"], p["arms"]
    base = p["pot_h"] * 0.7 if p["pot"] else 0.0
    s = Shape()
    s += capsule((0, 0, base), (0, 0, h - r), r)
    angles = {1: [0.0], 2: [0.0, np.pi], 3: [0.0, 2 * np.pi / 3, 4 * np.pi / 3]}[n]
    for i, th in enumerate(angles):
        th += p["spin"]
        c, sn = math.cos(th), math.sin(th)
        z = base + p["arm_z"][i] * (h - base)
        d = r + p["reach"]
        up = min(p["arm_up"][i], h - r - z - ra * 1.5)
        s += capsule((0, 0, z), (d * c, d * sn, z), ra)
        s += capsule((d * c, d * sn, z), (d * c, d * sn, z + max(up, ra)), ra)
    if p["pot"]:
        pr, ph = p["pot_r"], p["pot_h"]
        s += frustum(pr * 0.8, pr, 0.0, ph)
        s += cylinder(pr * 1.08, ph - 0.035, ph + 0.005)
    else:
        s.clip_floor = True
    return s


# ---------------------------------------------------------------------------------------------
# figures and buildings
# ---------------------------------------------------------------------------------------------


def snowman_sample(rng, a):
    r1 = _u(rng, 0.28, 0.33)
    r2 = r1 * _u(rng, 0.68, 0.78)
    return dict(
        r1=r1,
        r2=r2,
        r3=r2 * _u(rng, 0.68, 0.78),
        overlap=_u(rng, 0.8, 0.86),
        arm_len=_u(rng, 0.2, 0.28),
        arm_rise=_u(rng, 0.08, 0.18),
        hat_h=_u(rng, 0.8, 1.1),
    )


def snowman_build(p):
    radii = [p["r1"], p["r2"], p["r3"]][: p["balls"]]
    zs = [radii[0] * 0.9]
    for ra, rb in zip(radii, radii[1:]):
        zs.append(zs[-1] + (ra + rb) * p["overlap"])
    s = Shape()
    s += [sphere(r, (0, 0, z)) for r, z in zip(radii, zs)]
    s.clip_floor = True  # flat bottom
    rh, zh = radii[-1], zs[-1]
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    nose = [(0.035 * math.cos(t), -rh * 0.8, zh + 0.035 * math.sin(t)) for t in ang] + [(0, -rh - 0.09, zh)]
    s += hull(nose)
    if p["hat"]:
        top = zh + rh * 0.85
        s += cylinder(rh * 0.95, top, top + 0.03)
        s += cylinder(rh * 0.6, top + 0.02, top + rh * p["hat_h"])
    if p["arms"]:
        rb, zb = radii[-2], zs[-2]
        z = zb + rb * 0.35
        for sx in (-1, 1):
            x0 = sx * rb * 0.75
            s += cylinder_between((x0, 0, z), (sx * (rb + p["arm_len"]), 0, z + p["arm_rise"]), 0.022, sections=12)
    return s


def house_sample(rng, a):
    w = _u(rng, 0.9, 1.2)
    return dict(
        width=w,
        depth=_u(rng, 0.65, 0.85),
        wall_h=_u(rng, 0.5, 0.65),
        roof_h=_u(rng, 0.3, 0.42),
        overhang=_u(rng, 0.04, 0.07),
        slab=_u(rng, 0.05, 0.07),
        door_x=_u(rng, -0.25, 0.25) * w,
        door_w=w * _u(rng, 0.14, 0.17),
        door_h=_u(rng, 0.38, 0.45),
        recess=_u(rng, 0.05, 0.06),
        win_w=w * _u(rng, 0.1, 0.13),
        win_h=_u(rng, 0.22, 0.28),
        chimney_x=float(rng.choice([-1, 1])) * _u(rng, 0.2, 0.3) * w,
        chimney_w=_u(rng, 0.1, 0.13),
        chimney_up=_u(rng, 0.12, 0.18),
    )


def house_build(p):
    w, d, hw, o = p["width"], p["depth"], p["wall_h"], p["overhang"]
    s = Shape()
    s += box_at(-w / 2, w / 2, -d / 2, d / 2, 0.0, hw)
    if p["roof"] == "gable":
        hr = p["roof_h"]
        eaves = [(x, y, hw - 0.02) for x in (-w / 2 - o, w / 2 + o) for y in (-d / 2 - o, d / 2 + o)]
        s += hull(eaves + [(x, 0.0, hw + hr) for x in (-w / 2 - o, w / 2 + o)])
        cy = d * 0.15
        roof_at = hw + hr * (1 - cy / (d / 2 + o))
    else:
        s += box_at(-w / 2 - o, w / 2 + o, -d / 2 - o, d / 2 + o, hw - 0.005, hw + p["slab"])
        cy = d * 0.15
        roof_at = hw + p["slab"]
    if p["chimney"]:
        cw, cx = p["chimney_w"], p["chimney_x"]
        s += box_at(cx - cw / 2, cx + cw / 2, cy - cw / 2, cy + cw / 2, hw - 0.05, roof_at + p["chimney_up"])
    rd = p["recess"]
    dx, dw = p["door_x"], p["door_w"]
    s.cut.append(box_at(dx - dw / 2, dx + dw / 2, -d / 2 - 0.1, -d / 2 + rd, -0.1, p["door_h"] * hw))
    n, ww = p["windows"], p["win_w"]
    z0 = 0.55 * hw
    z1 = min(z0 + p["win_h"] * hw * 1.4, hw - 0.05)
    for i in range(n):
        xc = -w / 2 + (i + 0.5) * w / n
        s.cut.append(box_at(xc - ww / 2, xc + ww / 2, -d / 2 - 0.1, -d / 2 + rd, z0, z1))
    return s


def tower_sample(rng, a):
    return dict(
        base_r=_u(rng, 0.16, 0.2),
        shrink=_u(rng, 0.8, 0.86),
        body_h=_u(rng, 0.68, 0.8),
        spire=_u(rng, 1.1, 1.2),
        merlons=int(rng.choice([8, 10])),
    )


def tower_build(p):
    n, r0, q, hb = p["tiers"], p["base_r"], p["shrink"], p["body_h"]
    s = Shape()
    step = hb / n
    r = r0
    for k in range(n):
        z0, z1 = k * step, (k + 1) * step
        s += cylinder(r, z0 - (0.01 if k else 0.0), z1)
        s += cylinder(r * 1.12, z1 - 0.035, z1)  # a ledge marks every tier
        if k < n - 1:
            r *= q
    if p["top"] == "spire":
        s += cone(r * p["spire"], hb - 0.005, 1.0)
    else:
        s += cylinder(r * 1.12, hb - 0.01, hb + 0.03)
        m = p["merlons"]
        for i in range(m):
            th = i * 2 * np.pi / m
            part = box((r * 0.42, r * 0.25, 0.07), (r * 0.98, 0.0, hb + 0.03 + 0.035 - 0.005))
            part.apply_transform(trimesh.transformations.rotation_matrix(th, (0, 0, 1)))
            s += part
    s.cut.append(box_at(-r0 * 0.25, r0 * 0.25, -r0 - 0.1, -r0 * 0.6, -0.1, min(0.16, step * 0.7)))  # door
    return s


def arch_sample(rng, a):
    wo = _u(rng, 0.3, 0.4)
    return dict(
        opening_w=wo,
        pillar_w=_u(rng, 0.12, 0.18),
        depth=_u(rng, 0.18, 0.3),
        spring_h=wo * (_u(rng, 1.2, 1.6) if a["size"] == "tall" else _u(rng, 0.25, 0.45)),
        margin=_u(rng, 0.1, 0.16),
    )


def arch_build(p):
    n, wo, wp, d, ho = p["openings"], p["opening_w"], p["pillar_w"], p["depth"], p["spring_h"]
    w = n * wo + (n + 1) * wp
    h = ho + wo / 2 + p["margin"]
    s = Shape()
    s += box_at(-w / 2, w / 2, -d / 2, d / 2, 0.0, h)
    for i in range(n):
        xc = -w / 2 + wp + wo / 2 + i * (wo + wp)
        s.cut.append(box_at(xc - wo / 2, xc + wo / 2, -d, d, -0.1, ho))
        s.cut.append(cylinder_between((xc, -d, ho), (xc, d, ho), wo / 2, sections=40))
    return s


def stairs_sample(rng, a):
    d = _u(rng, 1.1, 1.5)
    return dict(
        depth=d,
        width=d * (_u(rng, 0.9, 1.25) if a["size"] == "wide" else _u(rng, 0.33, 0.5)),
        rail_h=_u(rng, 0.35, 0.45),
    )


def stairs_build(p):
    n, d, w = p["steps"], p["depth"], p["width"]
    rise, run = 1.0 / n, d / n
    s = Shape()
    for i in range(n):
        s += box_at(-w / 2, w / 2, -d / 2 + i * run, d / 2, 0.0, (i + 1) * rise)
    if p["railing"]:
        pr = 0.028 * max(d, w, 1.0)
        x = w / 2 - pr * 1.5
        tops = []
        for i in range(n):
            y = -d / 2 + (i + 0.5) * run
            z = (i + 1) * rise
            s += cylinder(pr, z - 0.01, z + p["rail_h"], x, y, sections=12)
            tops.append((x, y, z + p["rail_h"]))
        s += cylinder_between(tops[0], tops[-1], pr * 1.15, sections=12)
    return s


# ---------------------------------------------------------------------------------------------
# objects and vehicles
# ---------------------------------------------------------------------------------------------


def ring_sample(rng, a):
    return dict(band_r=_u(rng, 0.05, 0.07) if a["band"] == "thin" else _u(rng, 0.12, 0.15), gem_r=_u(rng, 0.1, 0.13))


def ring_build(p):
    r = p["band_r"]
    big = 0.5 - r
    s = Shape()
    s += torus(big, r, (0, 0, big + r), axis="y", sections=48)
    if p["gem"]:
        g = p["gem_r"]
        top = 2 * big + 2 * r
        s += frustum(g * 0.55, g * 0.8, top - r, top + g * 0.35, sections=16)
        s += sphere(g, (0, 0, top + g * 0.8), subdivisions=1)
    return s


def rocket_sample(rng, a):
    return dict(
        body_r=_u(rng, 0.09, 0.12),
        body_h=_u(rng, 0.5, 0.6),
        nose_h=_u(rng, 0.2, 0.28),
        lift=_u(rng, 0.05, 0.08),
        fin_h=_u(rng, 0.18, 0.25),
        fin_span=_u(rng, 0.1, 0.15),
    )


def rocket_build(p):
    r, hb, hn, z0 = p["body_r"], p["body_h"], p["nose_h"], p["lift"]
    s = Shape()
    s += cylinder(r, z0, z0 + hb)
    ang = np.linspace(0, np.pi / 2, 10)
    s += revolve([(0.0, z0 + hb - 0.01)] + [(r * math.cos(t), z0 + hb - 0.01 + hn * math.sin(t)) for t in ang])
    s += frustum(r * 0.75, r * 0.55, 0.005, z0 + 0.01)
    n = p["fins"]
    ft, fh, fs = 0.04, p["fin_h"], p["fin_span"]
    angles = (np.pi / 4 + np.arange(4) * np.pi / 2) if n == 4 else (-np.pi / 2 + np.arange(3) * 2 * np.pi / 3)
    for th in angles:
        pts = [(r * 0.8, z0 + fh), (r * 0.8, z0), (r + fs, 0.0), (r + fs, z0 + fh * 0.35)]
        fin = hull([(x, y, z) for x, z in pts for y in (-ft / 2, ft / 2)])
        fin.apply_transform(trimesh.transformations.rotation_matrix(th, (0, 0, 1)))
        s += fin
    if p["boosters"]:
        rb = r * 0.45
        for sx in (-1, 1):
            x = sx * (r + rb * 0.85)
            s += cylinder(rb, z0 * 0.6, z0 + hb * 0.5, x, 0.0)
            s += cone(rb, z0 + hb * 0.5 - 0.005, z0 + hb * 0.5 + rb * 2.2, x, 0.0)
    return s


def car_sample(rng, a):
    return dict(
        length=1.0,
        width=_u(rng, 0.42, 0.5),
        wheel_r=_u(rng, 0.09, 0.11),
        wheel_w=_u(rng, 0.07, 0.09),
        body_h=_u(rng, 0.16, 0.2),
        cabin_h=_u(rng, 0.13, 0.17) if a["style"] != "van" else _u(rng, 0.2, 0.26),
    )


def car_build(p):
    ln, w, rw, ww = p["length"], p["width"], p["wheel_r"], p["wheel_w"]
    zb = rw * 0.8
    zt = zb + p["body_h"]
    hc = p["cabin_h"]
    s = Shape()
    s += box_at(-w / 2, w / 2, -ln / 2, ln / 2, zb, zt)
    style = p["style"]
    c0, c1 = {"sedan": (-0.14, 0.24), "pickup": (-0.16, 0.06), "van": (-0.3, 0.5)}[style]
    lo = [(x, y, zt - 0.01) for x in (-w * 0.44, w * 0.44) for y in (c0, c1)]
    slope_f = 0.1 if style != "van" else 0.12
    slope_b = 0.07 if style == "sedan" else 0.0
    hi = [(x, y, zt + hc) for x in (-w * 0.4, w * 0.4) for y in (c0 + slope_f, c1 - slope_b)]
    s += hull(lo + hi)
    roof = zt + hc
    if style == "pickup":  # the open bed: two side walls and a tailgate
        wt, bh = 0.035, 0.08
        s += box_at(-w / 2, -w / 2 + wt, c1 + 0.04, ln / 2, zt - 0.01, zt + bh)
        s += box_at(w / 2 - wt, w / 2, c1 + 0.04, ln / 2, zt - 0.01, zt + bh)
        s += box_at(-w / 2, w / 2, ln / 2 - wt, ln / 2, zt - 0.01, zt + bh)
    for y in (-0.32 * ln, 0.32 * ln):
        for sx in (-1, 1):
            s += cylinder_between((sx * (w / 2 - ww + 0.02), y, rw), (sx * (w / 2 + 0.02), y, rw), rw)
    if p["spoiler"]:
        base = roof if style == "van" else zt
        y = ln / 2 - 0.06
        for sx in (-1, 1):
            s += box_at(sx * w * 0.3 - 0.02, sx * w * 0.3 + 0.02, y - 0.02, y + 0.02, base - 0.01, base + 0.07)
        s += box_at(-w * 0.46, w * 0.46, y - 0.05, y + 0.04, base + 0.065, base + 0.1)
    return s


def ladder_sample(rng, a):
    return dict(
        width=_u(rng, 0.25, 0.33) if a["size"] == "tall" else _u(rng, 0.52, 0.7),
        rail=_u(rng, 0.036, 0.045),
        rung_r=_u(rng, 0.019, 0.024),
        first=_u(rng, 0.1, 0.16),
        last=_u(rng, 0.08, 0.13),
    )


def ladder_build(p):
    w, a, n = p["width"], p["rail"], p["rungs"]
    s = Shape()
    s += box_at(-w / 2, -w / 2 + a, -a / 2, a / 2, 0.0, 1.0)
    s += box_at(w / 2 - a, w / 2, -a / 2, a / 2, 0.0, 1.0)
    z0, z1 = p["first"], 1.0 - p["last"]
    for i in range(n):
        z = z0 + i * (z1 - z0) / (n - 1)
        s += cylinder_between((-w / 2 + a / 2, 0, z), (w / 2 - a / 2, 0, z), p["rung_r"], sections=12)
    return s


def fence_sample(rng, a):
    return dict(
        height=_u(rng, 0.38, 0.5),
        post=_u(rng, 0.04, 0.05),
        rail_t=_u(rng, 0.035, 0.045),
        pointed=bool(rng.random() < 0.5),
    )


def fence_build(p):
    h, a, n, k = p["height"], p["post"], p["posts"], p["rails"]
    s = Shape()
    for i in range(n):
        x = -0.5 + a / 2 + i * (1.0 - a) / (n - 1)
        if p["pointed"]:
            s += box_at(x - a / 2, x + a / 2, -a / 2, a / 2, 0.0, h - a)
            s += hull([(x + dx, dy, h - a - 0.001) for dx in (-a / 2, a / 2) for dy in (-a / 2, a / 2)] + [(x, 0, h)])
        else:
            s += box_at(x - a / 2, x + a / 2, -a / 2, a / 2, 0.0, h)
    t = p["rail_t"]
    levels = [0.5] if k == 1 else list(np.linspace(0.22, 0.8, k))
    for f in levels:
        z = f * h
        s += box_at(-0.5, 0.5, -a * 0.3, a * 0.3, z - t / 2, z + t / 2)
    return s


def windmill_sample(rng, a):
    r0 = _u(rng, 0.17, 0.21)
    return dict(
        base_r=r0,
        taper=_u(rng, 0.55, 0.7),
        tower_h=_u(rng, 0.58, 0.7),
        roof_h=_u(rng, 0.15, 0.22),
        blade_len=_u(rng, 0.36, 0.44),
        blade_w=_u(rng, 0.07, 0.09),
        spin=_u(rng, 0, 2 * np.pi),
    )


def windmill_build(p):
    r0, ht = p["base_r"], p["tower_h"]
    r1 = r0 * p["taper"]
    s = Shape()
    s += frustum(r0, r1, 0.0, ht)
    if p["roof"] == "cone":
        s += cone(r1 * 1.15, ht - 0.005, ht + p["roof_h"])
    else:
        ang = np.linspace(0, np.pi / 2, 10)
        s += revolve([(0.0, ht - 0.005)] + [(r1 * 1.1 * math.cos(t), ht - 0.005 + r1 * 1.1 * math.sin(t)) for t in ang])
    zh = ht * 0.9
    rz = r0 + (r1 - r0) * 0.9
    yh = -rz - 0.06
    s += cylinder_between((0, -rz + 0.02, zh), (0, yh - 0.03, zh), 0.04, sections=16)
    n, bl, bw, bt = p["blades"], min(p["blade_len"], zh - 0.05), p["blade_w"], 0.036
    for k in range(n):
        blade = box_at(-bw / 2, bw / 2, yh - bt / 2, yh + bt / 2, zh + 0.03, zh + bl)
        _rot_y(blade, p["spin"] + k * 2 * np.pi / n, (0, yh, zh))
        s += blade
    s.cut.append(box_at(-r0 * 0.22, r0 * 0.22, -r0 - 0.1, -r0 * 0.75, -0.1, 0.14))  # door
    return s


# ---------------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------------

FAMILIES: dict[str, Family] = {}


def _register(f: Family):
    FAMILIES[f.name] = f


_register(
    Family(
        "chair",
        {"legs": (3, 4), "armrests": (True, False), "size": ("tall", "short")},
        chair_sample,
        chair_build,
        heldout=({"legs": 3, "size": "tall"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.75, 2.7)}, "short": {"H/W": (1.15, 1.6)}},
    )
)
_register(
    Family(
        "table",
        {"legs": (3, 4, 6), "size": ("tall", "short", "wide")},
        table_sample,
        table_build,
        heldout=({"legs": 3, "size": "short"}, {"legs": 6, "size": "tall"}),
        invalid=({"legs": 3, "size": "wide"},),
        ratio_attr="size",
        ratio_classes={
            "tall": {"H/W": (1.05, 1.45)},
            "short": {"H/W": (0.32, 0.48), "W/D": (0.99, 1.6)},
            "wide": {"H/W": (0.3, 0.42), "W/D": (1.75, 2.2)},
        },
    )
)
_register(
    Family(
        "stool",
        {"legs": (3, 4), "size": ("tall", "short"), "footrest": (True, False)},
        stool_sample,
        stool_build,
        heldout=({"legs": 4, "size": "short", "footrest": True}, {"legs": 3, "size": "tall", "footrest": False}),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.5, 2.6)}, "short": {"H/W": (0.8, 1.25)}},
    )
)
_register(
    Family(
        "bench",
        {"legs": (4, 6), "backrest": (True, False), "size": ("long", "short")},
        bench_sample,
        bench_build,
        heldout=({"legs": 6, "size": "short"},),
        ratio_attr="size",
        ratio_classes={"long": {"W/D": (3.5, 5.7)}, "short": {"W/D": (2.3, 3.2)}},
    )
)
_register(
    Family(
        "bed",
        {"pillows": (1, 2), "footboard": (True, False), "size": ("single", "double")},
        bed_sample,
        bed_build,
        heldout=(
            {"pillows": 1, "size": "double", "footboard": True},
            {"pillows": 2, "size": "single", "footboard": False},
        ),
        ratio_attr="size",
        ratio_classes={"single": {"W/D": (0.42, 0.57)}, "double": {"W/D": (0.68, 0.9)}},
    )
)
_register(
    Family(
        "bookshelf",
        {"shelves": (2, 3, 4, 5), "size": ("tall", "wide"), "back": (True, False)},
        bookshelf_sample,
        bookshelf_build,
        heldout=({"shelves": 4, "size": "wide"}, {"shelves": 2, "back": False}),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.75, 2.45)}, "wide": {"H/W": (0.5, 0.8)}},
    )
)
_register(
    Family(
        "mug",
        {"handle": (True, False), "size": ("tall", "short")},
        mug_sample,
        mug_build,
        heldout=({"handle": False, "size": "tall"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/D": (1.2, 1.55)}, "short": {"H/D": (0.65, 0.9)}},
    )
)
_register(
    Family(
        "bottle",
        {"neck": ("long", "short"), "body": ("round", "square"), "cap": (True, False)},
        bottle_sample,
        bottle_build,
        heldout=({"body": "square", "neck": "long", "cap": False}, {"body": "round", "neck": "short", "cap": True}),
    )
)
_register(
    Family(
        "vase",
        {"handles": (0, 2), "shape": ("round", "slender")},
        vase_sample,
        vase_build,
        heldout=({"handles": 2, "shape": "slender"},),
        ratio_attr="shape",
        ratio_classes={"round": {"H/W": (0.95, 1.6)}, "slender": {"H/W": (1.8, 3.4)}},
    )
)
_register(
    Family(
        "lamp",
        {"size": ("tall", "short"), "shade": ("cone", "cylinder"), "base": ("round", "square")},
        lamp_sample,
        lamp_build,
        heldout=(
            {"shade": "cylinder", "base": "square", "size": "tall"},
            {"shade": "cone", "base": "round", "size": "short"},
        ),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (2.1, 3.6)}, "short": {"H/W": (0.95, 1.8)}},
    )
)
_register(
    Family(
        "tree",
        {"crown": ("single", "cluster"), "size": ("tall", "short")},
        tree_sample,
        tree_build,
        heldout=({"crown": "cluster", "size": "short"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.5, 2.7)}, "short": {"H/W": (0.8, 1.3)}},
    )
)
_register(
    Family(
        "pine_tree",
        {"tiers": (2, 3, 4), "size": ("tall", "short")},
        pine_sample,
        pine_build,
        heldout=({"tiers": 4, "size": "short"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (1.85, 2.7)}, "short": {"H/W": (1.0, 1.45)}},
    )
)
_register(
    Family(
        "mushroom",
        {"count": (1, 2, 3), "cap": ("dome", "flat")},
        mushroom_sample,
        mushroom_build,
        heldout=({"count": 3, "cap": "flat"},),
    )
)
_register(
    Family(
        "cactus",
        {"arms": (1, 2, 3), "pot": (True, False)},
        cactus_sample,
        cactus_build,
        heldout=({"arms": 3, "pot": True},),
    )
)
_register(
    Family(
        "snowman",
        {"balls": (2, 3), "hat": (True, False), "arms": (True, False)},
        snowman_sample,
        snowman_build,
        heldout=({"balls": 2, "arms": True, "hat": True}, {"balls": 3, "arms": False, "hat": False}),
    )
)
_register(
    Family(
        "house",
        {"windows": (1, 2, 3, 4), "roof": ("gable", "flat"), "chimney": (True, False)},
        house_sample,
        house_build,
        heldout=({"windows": 3, "roof": "flat"}, {"windows": 1, "chimney": True, "roof": "gable"}),
    )
)
_register(
    Family(
        "tower",
        {"tiers": (2, 3, 4), "top": ("spire", "battlements")},
        tower_sample,
        tower_build,
        heldout=({"tiers": 4, "top": "battlements"},),
    )
)
_register(
    Family(
        "arch",
        {"openings": (1, 2, 3), "size": ("tall", "wide")},
        arch_sample,
        arch_build,
        heldout=({"openings": 2, "size": "tall"},),
        ratio_attr="size",
        ratio_classes={"tall": {"H/bay": (1.1, 2.4)}, "wide": {"H/bay": (0.45, 0.95)}},
    )
)
_register(
    Family(
        "stairs",
        {"steps": (3, 4, 5, 6, 7, 8), "railing": (True, False), "size": ("wide", "narrow")},
        stairs_sample,
        stairs_build,
        heldout=({"steps": 5, "railing": True}, {"steps": 8, "size": "narrow"}),
        ratio_attr="size",
        ratio_classes={"wide": {"W/D": (0.85, 1.3)}, "narrow": {"W/D": (0.3, 0.55)}},
    )
)
_register(
    Family(
        "ring",
        {"gem": (True, False), "band": ("thin", "thick")},
        ring_sample,
        ring_build,
        heldout=({"gem": True, "band": "thick"},),
    )
)
_register(
    Family(
        "rocket",
        {"fins": (3, 4), "boosters": (True, False)},
        rocket_sample,
        rocket_build,
        heldout=({"fins": 3, "boosters": True},),
    )
)
_register(
    Family(
        "car",
        {"style": ("sedan", "pickup", "van"), "spoiler": (True, False)},
        car_sample,
        car_build,
        heldout=({"style": "pickup", "spoiler": True},),
    )
)
_register(
    Family(
        "ladder",
        {"rungs": (3, 4, 5, 6, 7, 8), "size": ("tall", "short")},
        ladder_sample,
        ladder_build,
        heldout=({"rungs": 6, "size": "short"}, {"rungs": 3, "size": "tall"}),
        ratio_attr="size",
        ratio_classes={"tall": {"H/W": (2.9, 4.1)}, "short": {"H/W": (1.4, 2.0)}},
    )
)
_register(
    Family(
        "fence",
        {"posts": (3, 4, 5, 6, 7), "rails": (1, 2, 3)},
        fence_sample,
        fence_build,
        heldout=({"posts": 5, "rails": 2}, {"posts": 7, "rails": 1}),
    )
)
_register(
    Family(
        "windmill",
        {"blades": (3, 4, 6), "roof": ("cone", "dome")},
        windmill_sample,
        windmill_build,
        heldout=({"blades": 6, "roof": "dome"},),
    )
)

FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(FAMILY_NAMES)}") from None
