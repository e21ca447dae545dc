"""Figures and buildings: snowmen, houses, towers, arches, stairs.

Each family: ``X_sample(rng, attributes)`` draws proportions, ``X_build(params)`` makes the shape."""

from __future__ import annotations

import math

import numpy as np
import trimesh

from ..geometry import Shape, box, box_at, cone, cylinder, cylinder_between, hull, sphere
from .parts import uniform


def snowman_sample(rng, a):
    r1 = uniform(rng, 0.28, 0.33)
    r2 = r1 * uniform(rng, 0.68, 0.78)
    return dict(
        r1=r1,
        r2=r2,
        r3=r2 * uniform(rng, 0.68, 0.78),
        overlap=uniform(rng, 0.8, 0.86),
        arm_len=uniform(rng, 0.2, 0.28),
        arm_rise=uniform(rng, 0.08, 0.18),
        hat_h=uniform(rng, 0.8, 1.1),
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
    w = uniform(rng, 0.9, 1.2)
    return dict(
        width=w,
        depth=uniform(rng, 0.65, 0.85),
        wall_h=uniform(rng, 0.5, 0.65),
        roof_h=uniform(rng, 0.3, 0.42),
        overhang=uniform(rng, 0.04, 0.07),
        slab=uniform(rng, 0.05, 0.07),
        door_x=uniform(rng, -0.25, 0.25) * w,
        door_w=w * uniform(rng, 0.14, 0.17),
        door_h=uniform(rng, 0.38, 0.45),
        recess=uniform(rng, 0.05, 0.06),
        win_w=w * uniform(rng, 0.1, 0.13),
        win_h=uniform(rng, 0.22, 0.28),
        chimney_x=float(rng.choice([-1, 1])) * uniform(rng, 0.2, 0.3) * w,
        chimney_w=uniform(rng, 0.1, 0.13),
        chimney_up=uniform(rng, 0.12, 0.18),
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
        base_r=uniform(rng, 0.16, 0.2),
        shrink=uniform(rng, 0.8, 0.86),
        body_h=uniform(rng, 0.68, 0.8),
        spire=uniform(rng, 1.1, 1.2),
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
    wo = uniform(rng, 0.3, 0.4)
    return dict(
        opening_w=wo,
        pillar_w=uniform(rng, 0.12, 0.18),
        depth=uniform(rng, 0.18, 0.3),
        spring_h=wo * (uniform(rng, 1.2, 1.6) if a["size"] == "tall" else uniform(rng, 0.25, 0.45)),
        margin=uniform(rng, 0.1, 0.16),
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
    d = uniform(rng, 1.1, 1.5)
    return dict(
        depth=d,
        width=d * (uniform(rng, 0.9, 1.25) if a["size"] == "wide" else uniform(rng, 0.33, 0.5)),
        rail_h=uniform(rng, 0.35, 0.45),
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
