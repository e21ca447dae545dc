"""The renderer's mesh input: a trimesh, a scene or a file, read and fitted into the unit cube."""

from __future__ import annotations

import os

import numpy as np
import trimesh

from ..core.mesh import MeshFileError, load_mesh

__all__ = ["MeshImportError", "normalize_mesh", "as_trimesh"]


class MeshImportError(MeshFileError):
    """A mesh file could not be read into the renderer (missing, unreadable, no faces)."""


def normalize_mesh(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, float, np.ndarray]:
    """Fit a copy of ``mesh`` into ``[-0.5, 0.5]^3`` as TRELLIS-style evaluations do.

    ``scale = 1 / max(bbox extent)``, ``offset = -scale * bbox_centre``; the copy's vertices are
    ``v * scale + offset``: its bounding-box centre is the origin and its longest side is 1.
    """
    bounds = np.asarray(mesh.bounds, dtype=np.float64)
    extent = float(np.max(bounds[1] - bounds[0])) if bounds.size else 0.0
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("mesh has zero or non-finite extent; it cannot be normalised")
    scale = 1.0 / extent
    offset = -scale * (bounds[0] + bounds[1]) / 2.0
    m = np.eye(4)
    m[:3, :3] *= scale
    m[:3, 3] = offset
    out = mesh.copy()
    out.apply_transform(m)
    return out, scale, offset


def as_trimesh(mesh) -> trimesh.Trimesh:
    """One Trimesh with faces from what ``Renderer.render`` accepts; unreadable files raise MeshImportError."""
    if isinstance(mesh, (str, os.PathLike)):
        try:
            mesh = load_mesh(mesh)
        except MeshFileError as e:
            raise MeshImportError(str(e)) from e
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh() if hasattr(mesh, "to_mesh") else mesh.dump(concatenate=True)
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"expected a trimesh.Trimesh, a trimesh.Scene or a mesh file path, got {type(mesh).__name__}")
    if len(mesh.faces) == 0:
        raise MeshImportError("mesh has no faces (a point cloud or an empty file?)")
    return mesh
