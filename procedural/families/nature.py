"""Nature: trees, pine trees, mushrooms, cacti.

Each family: ``X_sample(rng, attributes)`` draws proportions, ``X_build(params)`` makes the shape."""

from __future__ import annotations

import math

import numpy as np

from ..geometry import Shape, capsule, cone, cylinder, ellipsoid, frustum, revolve
from .parts import uniform


def tree_sample(rng, a):
    tall = a["size"] == "tall"
    return dict(
        trunk_r=uniform(rng, 0.05, 0.065),
        trunk_h=uniform(rng, 0.45, 0.6) if tall else uniform(rng, 0.2, 0.3),
        crown_r=uniform(rng, 0.25, 0.3) if tall else uniform(rng, 0.36, 0.44),
        crown_stretch=uniform(rng, 1.2, 1.5) if tall else uniform(rng, 0.8, 1.0),
        spin=uniform(rng, 0, 2 * np.pi),
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
        base_r=uniform(rng, 0.19, 0.26) if a["size"] == "tall" else uniform(rng, 0.36, 0.48),
        trunk_r=uniform(rng, 0.04, 0.055),
        trunk_h=uniform(rng, 0.08, 0.14),
        overlap=uniform(rng, 0.58, 0.66),
        shrink=uniform(rng, 0.78, 0.84),
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
        stem_r=uniform(rng, 0.07, 0.09),
        stem_h=uniform(rng, 0.32, 0.45),
        cap_r=uniform(rng, 0.22, 0.28),
        cap_k=uniform(rng, 0.6, 0.85) if a["cap"] == "dome" else uniform(rng, 0.2, 0.26),
        small=uniform(rng, 0.55, 0.7),
        jitter=uniform(rng, -0.4, 0.4),
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
    r = uniform(rng, 0.08, 0.11)
    return dict(
        trunk_r=r,
        trunk_h=uniform(rng, 0.75, 0.9),
        arm_r=r * uniform(rng, 0.62, 0.75),
        reach=uniform(rng, 0.13, 0.18),
        spin=uniform(rng, -0.3, 0.3),
        arm_z=[uniform(rng, 0.3, 0.5), uniform(rng, 0.4, 0.58), uniform(rng, 0.35, 0.55)],
        arm_up=[uniform(rng, 0.12, 0.2) for _ in range(3)],
        pot_r=uniform(rng, 0.17, 0.21),
        pot_h=uniform(rng, 0.16, 0.22),
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
