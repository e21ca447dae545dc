"""Small helpers the builders share: uniform draws, legs, rotations."""

from __future__ import annotations

import trimesh

from ..geometry import box_at, cylinder


def uniform(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def leg(x, y, z0, z1, r, square):
    return box_at(x - r, x + r, y - r, y + r, z0, z1) if square else cylinder(r, z0, z1, x, y)


def rot_y(mesh, angle, point):
    mesh.apply_transform(trimesh.transformations.rotation_matrix(angle, (0, 1, 0), point))
    return mesh
