"""Vessels and household objects: mugs, bottles, vases, lamps.

Each family: ``X_sample(rng, attributes)`` draws proportions, ``X_build(params)`` makes the shape."""

from __future__ import annotations

import math

import numpy as np

from ..geometry import Shape, box_at, cylinder, frustum, hull, revolve, torus
from .parts import uniform


def mug_sample(rng, a):
    r = uniform(rng, 0.4, 0.5)
    h = 2 * r * (uniform(rng, 1.25, 1.5) if a["size"] == "tall" else uniform(rng, 0.7, 0.85))
    big = max(h, 2 * r + 0.3)
    return dict(
        radius=r,
        height=h,
        wall=big * uniform(rng, 0.045, 0.055),
        handle_r=h * uniform(rng, 0.22, 0.28),
        handle_z=uniform(rng, 0.48, 0.55),
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
    r = uniform(rng, 0.15, 0.2)
    return dict(
        radius=r,
        neck_len=uniform(rng, 0.26, 0.33) if long_neck else uniform(rng, 0.07, 0.11),
        shoulder=uniform(rng, 0.1, 0.16),
        neck_r=max(0.05, r * uniform(rng, 0.3, 0.38)),
        cap_h=uniform(rng, 0.06, 0.08),
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
        rb = uniform(rng, 0.33, 0.42)
        return dict(
            belly_r=rb,
            belly_z=uniform(rng, 0.3, 0.45),
            base_r=rb * uniform(rng, 0.5, 0.7),
            neck_r=rb * uniform(rng, 0.35, 0.5),
            lip=uniform(rng, 1.2, 1.5),
            wall=uniform(rng, 0.03, 0.038),
            handle_r=uniform(rng, 0.08, 0.11),
        )
    rb = uniform(rng, 0.15, 0.2)
    return dict(
        belly_r=rb,
        belly_z=uniform(rng, 0.2, 0.5),
        base_r=rb * uniform(rng, 0.6, 0.8),
        neck_r=rb * uniform(rng, 0.55, 0.75),
        lip=uniform(rng, 1.1, 1.3),
        wall=uniform(rng, 0.03, 0.036),
        handle_r=uniform(rng, 0.07, 0.09),
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
            base_r=uniform(rng, 0.12, 0.16),
            base_h=uniform(rng, 0.03, 0.045),
            pole_r=uniform(rng, 0.019, 0.024),
            shade_r=uniform(rng, 0.17, 0.22) if a["shade"] == "cone" else uniform(rng, 0.14, 0.18),
            shade_h=uniform(rng, 0.2, 0.26),
            taper=uniform(rng, 0.5, 0.62),
        )
    return dict(
        height=uniform(rng, 0.45, 0.55),
        base_r=uniform(rng, 0.11, 0.14),
        base_h=uniform(rng, 0.035, 0.05),
        pole_r=uniform(rng, 0.019, 0.023),
        shade_r=uniform(rng, 0.16, 0.2) if a["shade"] == "cone" else uniform(rng, 0.13, 0.17),
        shade_h=uniform(rng, 0.16, 0.2),
        taper=uniform(rng, 0.5, 0.62),
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
