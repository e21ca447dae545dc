"""Chairs, tables, stools, benches, beds and bookshelves.

Each family: ``X_sample(rng, attributes)`` draws proportions, ``X_build(params)`` makes the shape."""

from __future__ import annotations

import math

import numpy as np

from ..geometry import Shape, box_at, cylinder, cylinder_between, ellipsoid, torus
from .parts import leg, uniform


def chair_sample(rng, a):
    w = uniform(rng, 0.42, 0.52)
    return dict(
        seat_w=w,
        seat_d=w * uniform(rng, 0.9, 1.1),
        seat_h=uniform(rng, 0.42, 0.48),
        seat_t=uniform(rng, 0.05, 0.07),
        leg_r=uniform(rng, 0.03, 0.036),
        square_legs=bool(rng.random() < 0.5),
        back_h=uniform(rng, 0.5, 0.68) if a["size"] == "tall" else uniform(rng, 0.18, 0.3),
        back_t=uniform(rng, 0.045, 0.06),
        back_style=str(rng.choice(["solid", "frame"])),
        arm_h=uniform(rng, 0.17, 0.24),
    )


def chair_build(p):
    w, d, sh, st, r = p["seat_w"], p["seat_d"], p["seat_h"], p["seat_t"], p["leg_r"]
    top = sh + st
    s = Shape()
    s += box_at(-w / 2, w / 2, -d / 2, d / 2, sh, top)
    inset = r * 1.4
    xs, yf, yb = w / 2 - inset, -d / 2 + inset, d / 2 - inset
    feet = [(-xs, yf), (xs, yf), (-xs, yb), (xs, yb)] if p["legs"] == 4 else [(-xs, yf), (xs, yf), (0.0, yb)]
    s += [leg(x, y, 0.0, sh + 0.01, r, p["square_legs"]) for x, y in feet]
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
        w = uniform(rng, 0.6, 0.8)
        d, h = w * uniform(rng, 0.85, 1.0), w * uniform(rng, 1.12, 1.4)
    elif size == "short":
        w = uniform(rng, 0.9, 1.2)
        d, h = w * uniform(rng, 0.64, 0.95), w * uniform(rng, 0.35, 0.45)
    else:
        w = uniform(rng, 1.6, 2.0)
        d, h = w * uniform(rng, 0.46, 0.56), w * uniform(rng, 0.31, 0.41)
    if legs == 3:
        d = w  # round top
    big = max(w, d, h)
    return dict(
        width=w,
        depth=d,
        height=h,
        top_t=big * uniform(rng, 0.035, 0.05),
        leg_r=big * uniform(rng, 0.022, 0.028),
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
    s += [leg(x, y, 0.0, h - t + 0.01, r, p["square_legs"]) for x, y in feet]
    return s


def stool_sample(rng, a):
    tall = a["size"] == "tall"
    h = uniform(rng, 0.68, 0.8) if tall else uniform(rng, 0.36, 0.44)
    rad = uniform(rng, 0.16, 0.2) if tall else uniform(rng, 0.17, 0.21)
    return dict(
        height=h,
        seat_r=rad,
        seat_t=uniform(rng, 0.06, 0.08),
        leg_r=max(h, 2 * rad) * uniform(rng, 0.028, 0.034),
        splay=uniform(rng, 1.0, 1.2),
        foot_z=uniform(rng, 0.28, 0.38),
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
    w = uniform(rng, 1.5, 1.9) if a["size"] == "long" else uniform(rng, 0.85, 1.0)
    return dict(
        width=w,
        depth=uniform(rng, 0.34, 0.42) if a["size"] == "long" else uniform(rng, 0.3, 0.38),
        stretcher=bool(rng.random() < 0.5),
        seat_h=uniform(rng, 0.42, 0.48),
        seat_t=uniform(rng, 0.05, 0.07),
        leg_a=max(w, 0.9) * uniform(rng, 0.035, 0.042),
        back_h=uniform(rng, 0.3, 0.4),
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
    s += [leg(x, y, 0.0, sh - t + 0.01, a / 2, True) for x, y in feet]
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
        length=uniform(rng, 1.9, 2.1),
        width=uniform(rng, 0.9, 1.05) if a["size"] == "single" else uniform(rng, 1.45, 1.7),
        leg_h=uniform(rng, 0.1, 0.15),
        frame_h=uniform(rng, 0.15, 0.2),
        mattress_h=uniform(rng, 0.18, 0.24),
        head_h=uniform(rng, 0.9, 1.1),
        foot_h=uniform(rng, 0.5, 0.62),
        board_t=uniform(rng, 0.05, 0.07),
        pillow_d=uniform(rng, 0.28, 0.34),
        pillow_h=uniform(rng, 0.065, 0.08),
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
        w = uniform(rng, 0.6, 0.85)
        h = w * uniform(rng, 1.8, 2.4)
    else:
        w = uniform(rng, 1.2, 1.6)
        h = w * uniform(rng, 0.56, 0.75)
    return dict(
        width=w,
        height=h,
        depth=uniform(rng, 0.25, 0.35),
        board_t=max(w, h) * uniform(rng, 0.031, 0.037),
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
