"""Objects and vehicles: rings, rockets, cars, ladders, fences, windmills.

Each family: ``X_sample(rng, attributes)`` draws proportions, ``X_build(params)`` makes the shape."""

from __future__ import annotations

import math

import numpy as np
import trimesh

from ..geometry import Shape, box_at, cone, cylinder, cylinder_between, frustum, hull, revolve, sphere, torus
from .parts import rot_y, uniform


def ring_sample(rng, a):
    return dict(band_r=uniform(rng, 0.05, 0.07) if a["band"] == "thin" else uniform(rng, 0.12, 0.15), gem_r=uniform(rng, 0.1, 0.13))


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
        body_r=uniform(rng, 0.09, 0.12),
        body_h=uniform(rng, 0.5, 0.6),
        nose_h=uniform(rng, 0.2, 0.28),
        lift=uniform(rng, 0.05, 0.08),
        fin_h=uniform(rng, 0.18, 0.25),
        fin_span=uniform(rng, 0.1, 0.15),
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
        width=uniform(rng, 0.42, 0.5),
        wheel_r=uniform(rng, 0.09, 0.11),
        wheel_w=uniform(rng, 0.07, 0.09),
        body_h=uniform(rng, 0.16, 0.2),
        cabin_h=uniform(rng, 0.13, 0.17) if a["style"] != "van" else uniform(rng, 0.2, 0.26),
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
        width=uniform(rng, 0.25, 0.33) if a["size"] == "tall" else uniform(rng, 0.52, 0.7),
        rail=uniform(rng, 0.036, 0.045),
        rung_r=uniform(rng, 0.019, 0.024),
        first=uniform(rng, 0.1, 0.16),
        last=uniform(rng, 0.08, 0.13),
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
        height=uniform(rng, 0.38, 0.5),
        post=uniform(rng, 0.04, 0.05),
        rail_t=uniform(rng, 0.035, 0.045),
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
    r0 = uniform(rng, 0.17, 0.21)
    return dict(
        base_r=r0,
        taper=uniform(rng, 0.55, 0.7),
        tower_h=uniform(rng, 0.58, 0.7),
        roof_h=uniform(rng, 0.15, 0.22),
        blade_len=uniform(rng, 0.36, 0.44),
        blade_w=uniform(rng, 0.07, 0.09),
        spin=uniform(rng, 0, 2 * np.pi),
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
        rot_y(blade, p["spin"] + k * 2 * np.pi / n, (0, yh, zh))
        s += blade
    s.cut.append(box_at(-r0 * 0.22, r0 * 0.22, -r0 - 0.1, -r0 * 0.75, -0.1, 0.14))  # door
    return s
