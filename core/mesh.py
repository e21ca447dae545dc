"""Occupancy grid <-> triangle mesh, and mesh files on disk.

The 3D VQ-VAE speaks 64³ occupancy grids of an object's *surface shell*; people and viewers speak
triangle meshes. This module is the only place that crosses between the two, so every axis and
scale convention lives here.

Grid convention (the public ShapeLLM-Omni voxelisation, reference.md §2):

* a mesh is mapped into [-0.5, 0.5]³ with ONE scalar min/max over all of its coordinates,
  ``v' = (v - min_all) / (max_all - min_all) - 0.5``. The longest axis then spans the cube only
  if the mesh is centred on the origin: the public code does not centre per axis, and ar3d
  keeps that so that its grids match the ones the VQ-VAE was trained on;
* voxel ``i`` of ``R`` covers ``[i/R - 0.5, (i+1)/R - 0.5)``, its centre is ``(i + 0.5)/R - 0.5``;
* the grid holds surface voxels only (a shell, not a solid), indexed ``[x, y, z]``, z up.

Axis table. Internal meshes are z-up, in the grid's frame, which is also Blender's scene frame
(+Z up, the front faces -Y):

==========================  ========  ===========================  ============================
where                       up        written as, from (x, y, z)   why
==========================  ========  ===========================  ============================
grid, ar3d meshes, Blender  +Z        (x, y, z)                    the VQ-VAE's frame
GLB                         +Y        (x, z, -y)                   the glTF spec; Blender's glTF
                                                                   importer maps it back
OBJ                         +Y        (x, z, -y)                   Blender's OBJ importer assumes
                                                                   Y up, -Z forward
PLY, STL                    +Z        (x, y, z)                    Blender's importers assume Z up
==========================  ========  ===========================  ============================

``(x, y, z) -> (x, z, -y)`` is a -90° turn about x; its inverse, +90° about x, is what the public
code applies to glTF/OBJ meshes before voxelising. Both are proper rotations, so face winding and
outward normals survive them. trimesh itself never changes axes when it reads or writes a file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh
from scipy import ndimage
from skimage.measure import marching_cubes

from .errors import Ar3dError

__all__ = [
    "DegenerateOccupancyError",
    "MeshFileError",
    "OptionalDependencyError",
    "MeshConfig",
    "SMOOTHING_LEVELS",
    "smoothing_passes",
    "mesh_solid",
    "fill_holes",
    "occupancy_to_mesh",
    "mesh_or_reason",
    "mesh_to_occupancy",
    "normalize_to_unit_cube",
    "export_mesh",
    "load_mesh",
    "SUPPORTED_FORMATS",
    "Y_UP_FORMATS",
    "Z_UP_TO_Y_UP",
    "Y_UP_TO_Z_UP",
]

SUPPORTED_FORMATS = ("glb", "obj", "ply", "stl")
# Formats whose files are y-up: written through Z_UP_TO_Y_UP, read back through Y_UP_TO_Z_UP.
Y_UP_FORMATS = frozenset({"glb", "gltf", "obj"})

# (x, y, z) -> (x, z, -y): -90° about x. Homogeneous 4x4 matrices, as trimesh wants them.
Z_UP_TO_Y_UP = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
# (x, y, z) -> (x, -z, y): +90° about x, the public pipeline's glTF -> grid rotation.
Y_UP_TO_Z_UP = Z_UP_TO_Y_UP.T.copy()


class DegenerateOccupancyError(Ar3dError, ValueError):
    """The grid holds no usable object (empty, all occupied, or only dust); resample it."""


class MeshFileError(Ar3dError, ValueError):
    """A mesh file that cannot be written or read: unsupported format, or no faces."""


class OptionalDependencyError(Ar3dError, ImportError):
    """A feature that needs a package ar3d does not install by default."""


@dataclass(frozen=True)
class MeshConfig:
    """How a decoded occupancy grid becomes a mesh. The defaults suit 64³ VQ-VAE shells."""

    fill_interior: bool = True
    """Mesh the solid bounded by the shell. A shell meshed as-is gives a double wall with a thin
    gap, which renders badly and has no meaningful volume."""

    closing_iterations: int = 1
    """Morphological closing (3x3x3 cube) before filling, to seal pinholes through which the
    fill would leak. Also fills 1-voxel gaps and notches; 0 turns it off."""

    seal_iterations: int = 2
    """A wider closing used only where the shell leaks: if it encloses interior that the closing
    above did not, that interior is filled and the bridges that touch it plug the leaks. A
    decoded shell perforated by gaps of up to about 2·k voxels then meshes as a solid instead of
    a hollow double wall riddled with tunnels, while openings the object really has (windows,
    the space between rungs) are bridged only if they open into such a cavity. Measured on the
    demo VQ-VAE's held-out reconstructions: 15% -> 7% with unwanted holes, ground-truth
    attributes and topology unchanged (issue #21). 0 (or <= ``closing_iterations``) = off."""

    min_component_voxels: int = 8
    """Connected pieces (26-connectivity) of the raw grid smaller than this are dust and dropped.
    Decoded grids often carry a few stray voxels; a real part is rarely this small at 64³."""

    min_fragment_fraction: float = 0.05
    """Pieces with fewer voxels than this fraction of the largest piece are debris and dropped:
    a person sees a floating crumb next to a chair as a defect, whatever its absolute size. The
    smallest legitimate separate part of the procedural families (the third mushroom of three)
    is ~30% of the largest. 0 keeps every piece of at least ``min_component_voxels``."""

    keep_largest_only: bool = False
    """Keep only the largest piece. Off, because many objects have legitimately separate parts."""

    max_fill_fraction: float = 0.9
    """If more than this fraction of the raw grid is occupied the decode failed (a shell fills
    far less: a box spanning the grid is ~9%); refuse rather than mesh a cube-shaped blob."""

    surface_offset: float = 0.1
    """Where the surface crosses the outer occupied voxels, in voxels from their centres
    (0 < offset <= 0.5). 0.5 is plain binary marching cubes: surfaces on voxel faces, the object
    a voxel fatter than the shell and flat faces exactly on voxel boundaries (ambiguous to
    re-voxelise). Small values put the surface near the shell, where the original surface was."""

    smoothing_iterations: int = 10
    """Taubin smoothing passes: soften voxel stair-steps without the shrinkage of plain
    Laplacian smoothing (volume moves by well under 1%). 0 = off."""

    decimate_to_faces: int | None = None
    """Quadric decimation toward this many faces (needs the optional fast-simplification
    package). A result that is not watertight is retried at gentler settings, which may stop
    short of the target, and is dropped with a warning if none is watertight.
    None keeps the marching-cubes mesh (typically 10k-60k faces at 64³)."""

    def __post_init__(self):
        if min(self.closing_iterations, self.seal_iterations, self.min_component_voxels, self.smoothing_iterations) < 0:
            raise ValueError("closing_iterations, seal_iterations, min_component_voxels and smoothing_iterations must be >= 0")
        if not 0.0 < self.max_fill_fraction <= 1.0:
            raise ValueError(f"max_fill_fraction must be in (0, 1], got {self.max_fill_fraction}")
        if not 0.0 < self.surface_offset <= 0.5:
            raise ValueError(f"surface_offset must be in (0, 0.5], got {self.surface_offset}")
        if not 0.0 <= self.min_fragment_fraction < 1.0:
            raise ValueError(f"min_fragment_fraction must be in [0, 1), got {self.min_fragment_fraction}")
        if self.decimate_to_faces is not None and self.decimate_to_faces < 4:
            raise ValueError(f"decimate_to_faces must be >= 4 or None, got {self.decimate_to_faces}")


# ---------------------------------------------------------------------------------------------
# occupancy -> mesh
# ---------------------------------------------------------------------------------------------


def _as_bool_grid(occupancy) -> np.ndarray:
    """Accept numpy or torch, [R,R,R] or with leading singleton dims, without importing torch."""
    if hasattr(occupancy, "detach") and hasattr(occupancy, "cpu"):
        occupancy = occupancy.detach().cpu().numpy()
    grid = np.asarray(occupancy)
    while grid.ndim > 3 and grid.shape[0] == 1:
        grid = grid[0]
    if grid.ndim != 3 or len(set(grid.shape)) != 1 or grid.shape[0] < 2:
        raise ValueError(f"occupancy must be a cubic grid [R,R,R] (optionally [1,R,R,R]), got shape {grid.shape}")
    if grid.dtype == bool:
        return grid
    if np.issubdtype(grid.dtype, np.floating):
        # Floats are either a 0/1 occupancy (the VQ-VAE's input dtype) or logits/probabilities,
        # whose threshold we must not guess.
        if not np.isin(grid, (0.0, 1.0)).all():
            raise TypeError(
                "occupancy is a float grid with values other than 0 and 1; threshold it first "
                "(VQ-VAE decoder logits: occupancy = logits > 0, or above the decoder's decode_threshold; "
                "VQVAE3D.decode_occupancy applies it)"
            )
    elif not np.issubdtype(grid.dtype, np.integer):
        raise TypeError(f"occupancy must be bool, integer or 0/1 float, got dtype {grid.dtype}")
    return grid != 0


_CUBE = np.ones((3, 3, 3), bool)
"""The 26-neighbourhood: connectivity of pieces, and the closings' structuring element."""
_CUBE.flags.writeable = False


# The morphology below gives exactly scipy's binary_closing(a, _CUBE, k) and binary_fill_holes(a)
# (tests/test_mesh.py compares them) and makes mesh_solid 2.5x faster (BENCHMARKS.md): k
# dilations by the 3x3x3 cube are one dilation by the (2k+1)³ cube, which a separable max/min
# filter does in three 1-D passes, and the fill labels the background once instead of
# propagating from the border voxel by voxel. Every rollout grid of the strict rewards and every
# evaluated grid is meshed, which is what this speeds up.


def _cube_dilate(a: np.ndarray, k: int) -> np.ndarray:
    return ndimage.maximum_filter(a.view(np.uint8), size=2 * k + 1, mode="constant", cval=0).view(bool)


def _cube_erode(a: np.ndarray, k: int) -> np.ndarray:
    return ndimage.minimum_filter(a.view(np.uint8), size=2 * k + 1, mode="constant", cval=0).view(bool)


def _cube_closing(a: np.ndarray, k: int) -> np.ndarray:
    """scipy.ndimage.binary_closing(a, _CUBE, k) (border value 0)."""
    return _cube_erode(_cube_dilate(a, k), k)


def _fill_holes(a: np.ndarray) -> np.ndarray:
    """scipy.ndimage.binary_fill_holes(a): background not 6-connected to the array's faces is filled."""
    labels, n = ndimage.label(~a)
    if n == 0:
        return a.copy()
    faces = np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel(),
                            labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])  # fmt: skip
    outside = np.zeros(n + 1, bool)
    outside[faces] = True
    outside[0] = False  # label 0 is the object itself
    return ~outside[labels]


def _box(grid: np.ndarray) -> tuple[slice, ...]:
    """The occupied voxels' bounding box (the whole grid if none)."""
    out = []
    for axis in range(grid.ndim):
        hit = np.flatnonzero(grid.any(axis=tuple(a for a in range(grid.ndim) if a != axis)))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, grid.shape[axis]))
    return tuple(out)


def fill_holes(grid) -> np.ndarray:
    """Exactly ``scipy.ndimage.binary_fill_holes(grid)`` (6-connected background), about 6× faster
    on decoded 64³ grids (1.4 against 8.9 ms, demo v4's): the background of the occupied box plus
    one voxel is labelled once. The family judge and the attribute checkers fill every grid they read."""
    a = np.asarray(grid, dtype=bool)
    box = _box(a)
    out = np.zeros_like(a)
    out[box] = _fill_holes(np.pad(a[box], 1))[(slice(1, -1),) * a.ndim]
    return out


def _clean(grid: np.ndarray, config: MeshConfig) -> np.ndarray:
    """Refuse hopeless grids and drop dust, before any morphology can glue dust to the object."""
    occupied = int(grid.sum())
    if occupied == 0:
        raise DegenerateOccupancyError(
            "occupancy grid is empty: the decoder produced no occupied voxels; resample the mesh tokens"
        )
    fraction = occupied / grid.size
    if fraction > config.max_fill_fraction:
        raise DegenerateOccupancyError(
            f"{fraction:.0%} of the grid is occupied (limit {config.max_fill_fraction:.0%}): a decoded "
            "surface shell never fills the grid, so the decode failed; resample the mesh tokens "
            "(or raise MeshConfig.max_fill_fraction for a genuinely solid input)"
        )
    box = _box(grid)  # label the occupied box only: the same pieces, a third of the voxels
    labels, n = ndimage.label(grid[box], structure=_CUBE)
    sizes = np.bincount(labels.ravel())[1:]
    keep = sizes >= config.min_component_voxels
    if not keep.any():
        raise DegenerateOccupancyError(
            f"occupancy grid is only dust: {n} disconnected piece(s), the largest {sizes.max()} voxel(s), "
            f"all below min_component_voxels={config.min_component_voxels}; resample the mesh tokens "
            "(or lower MeshConfig.min_component_voxels)"
        )
    if config.min_fragment_fraction:
        keep &= sizes >= config.min_fragment_fraction * sizes.max()
    if config.keep_largest_only:
        keep = sizes == sizes.max()
        keep[np.argmax(sizes) + 1 :] = False  # one piece even on ties
    out = np.zeros_like(grid)
    out[box] = np.concatenate(([False], keep))[labels]
    return out


SMOOTHING_LEVELS: dict[str, int] = {"none": 0, "low": 4, "medium": 10, "high": 30}
"""Named smoothing levels (Taubin passes) for the CLI's ``--smoothing`` and the server/add-on
field; "medium" is MeshConfig's default. More passes round voxel steps and thin edges further."""


def smoothing_passes(level: str | int) -> int:
    """Taubin passes for a level name of SMOOTHING_LEVELS or a non-negative integer."""
    if isinstance(level, str) and level.strip().lower() in SMOOTHING_LEVELS:
        return SMOOTHING_LEVELS[level.strip().lower()]
    try:
        n = int(level)
    except (TypeError, ValueError):
        n = -1
    if n < 0:
        raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING_LEVELS)} or a number of passes >= 0, got {level!r}")
    return n


def _solid_padded(grid: np.ndarray, config: MeshConfig) -> tuple[np.ndarray, int]:
    """The solid of `grid`, padded by `pad` voxels all round (for marching cubes).

    The morphology runs on the occupied box plus the pad only (a third of the grid's volume for
    a typical decoded object), then goes back in place: exact, because with pad > the widest
    closing nothing it adds reaches the window's border, which stays background connected to the
    outside, as the rest of the grid is (tests/test_mesh.py compares it with the whole grid)."""
    pad = max(config.closing_iterations, config.seal_iterations) + 1
    box = _box(grid)
    window = _solid_window(np.pad(grid[box], pad), config)
    out = np.zeros(tuple(n + 2 * pad for n in grid.shape), bool)
    out[tuple(slice(b.start, b.stop + 2 * pad) for b in box)] = window
    return out, pad


def _solid_window(solid: np.ndarray, config: MeshConfig) -> np.ndarray:
    """Close, fill and seal an already padded grid (MeshConfig's fill_interior, closing_iterations
    and seal_iterations say why)."""
    if config.fill_interior:
        closed = solid
        if config.closing_iterations:
            closed = _cube_closing(solid, config.closing_iterations)
        filled = _fill_holes(closed)
        if config.seal_iterations > config.closing_iterations:
            # The wider closing's cavity is interior the narrow closing missed (the shell leaks);
            # the bridges (voxels the wider closing adds) that touch that cavity plug the leaks.
            # Bridges elsewhere (across a ladder's rungs, a window) touch no cavity: not used.
            sealed = _cube_closing(solid, config.seal_iterations)
            cavity = _fill_holes(sealed) & ~sealed & ~filled
            if cavity.any():
                bridges, _ = ndimage.label(sealed & ~closed, _CUBE)
                touching = np.unique(bridges[_cube_dilate(cavity, 1) & (bridges > 0)])
                filled = _fill_holes(filled | cavity | np.isin(bridges, touching))
        solid = filled | solid
    return solid


def mesh_solid(occupancy, config: MeshConfig | None = None) -> np.ndarray:
    """The voxel solid that ``occupancy_to_mesh`` meshes (dust and debris dropped, pinholes
    closed, interior filled), bool [R,R,R]: what topology and attribute checks should read,
    because it is what a person sees. Raises DegenerateOccupancyError like occupancy_to_mesh."""
    config = config or MeshConfig()
    grid = _clean(_as_bool_grid(occupancy), config)
    # The strict checkers, the quality measure (raw and delivered) and the evaluation all ask for
    # the solid of the same grid, with configs that differ only in the debris removal above, which
    # most grids pass unchanged: the cleaned grid and the morphology settings decide the solid.
    key = (hashlib.blake2b(np.packbits(grid).tobytes(), digest_size=16).digest(), grid.shape,
           config.fill_interior, config.closing_iterations, config.seal_iterations)  # fmt: skip
    with _SOLIDS_LOCK:
        packed = _SOLIDS.pop(key, None)
    if packed is None:
        padded, pad = _solid_padded(grid, config)
        r = grid.shape[0]
        solid = padded[pad : pad + r, pad : pad + r, pad : pad + r].copy()
        packed = np.packbits(solid)
    else:
        solid = np.unpackbits(packed, count=grid.size).reshape(grid.shape).view(bool)
    with _SOLIDS_LOCK:
        while _SOLIDS and len(_SOLIDS) >= _SOLIDS_KEPT:
            _SOLIDS.pop(next(iter(_SOLIDS)))
        if _SOLIDS_KEPT:
            _SOLIDS[key] = packed  # most recently used last
    return solid


# The solids mesh_solid made last (a process's own), bit-packed: 32 KB at 64³. A reward ensemble
# scores term by term over a whole batch (strict attributes, then quality, which reads the
# strict counts again), so a grid's solid is asked for again up to a batch later: keep a batch.
_SOLIDS: dict[tuple, np.ndarray] = {}
_SOLIDS_KEPT = 512  # 16 MB at 64³; 0: no reuse
_SOLIDS_LOCK = threading.Lock()  # the server and the trainer may mesh from several threads


def occupancy_to_mesh(occupancy, config: MeshConfig | None = MeshConfig()) -> trimesh.Trimesh:
    """Turn a (shell) occupancy grid into a watertight, outward-facing, z-up mesh in [-0.5, 0.5]³.

    Raises DegenerateOccupancyError for grids that hold no object; see MeshConfig for clean-up.
    """
    config = config or MeshConfig()
    if config.decimate_to_faces is not None and importlib.util.find_spec("fast_simplification") is None:
        # Checked first, so a missing optional package costs no work.
        raise OptionalDependencyError(
            "MeshConfig.decimate_to_faces needs the optional package fast-simplification "
            "(pip install fast-simplification), or set decimate_to_faces=None"
        )
    grid = _clean(_as_bool_grid(occupancy), config)
    res = grid.shape[0]

    # Pad so that the fill and closing see empty space all round, and marching cubes closes
    # every surface (an object touching the grid border would otherwise be left open).
    solid, pad = _solid_padded(grid, config)

    # Marching cubes at 0.5 on a field that is 1 inside, 0 outside, and b on occupied voxels that
    # touch the outside: vertices land `surface_offset` voxels out from those voxels' centres.
    # The sign pattern is the binary solid's, so the topology (watertight, manifold, thin parts
    # kept) is that of plain binary marching cubes.
    field = solid.astype(np.float32)
    boundary = solid & ~ndimage.binary_erosion(solid, border_value=0)
    field[boundary] = 0.5 / (1.0 - config.surface_offset)
    verts, faces, _, _ = marching_cubes(field, level=0.5, method="lewiner", allow_degenerate=False)
    verts = (verts.astype(np.float64) - pad + 0.5) / res - 0.5  # padded index -> voxel-centre coords

    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:  # skimage's winding convention is not promised; make normals outward
        mesh.invert()
    if config.smoothing_iterations:
        trimesh.smoothing.filter_taubin(mesh, iterations=config.smoothing_iterations)
    if config.decimate_to_faces is not None and len(mesh.faces) > config.decimate_to_faces:
        mesh = _decimate(mesh, config.decimate_to_faces)
    return mesh


def mesh_or_reason(occupancy, config: MeshConfig | None = None) -> tuple[trimesh.Trimesh | None, str | None]:
    """(mesh, None), or (None, reason) when the shape is degenerate: for batches where one empty
    grid must not stop the rest (a module-level function, so worker processes can run it)."""
    try:
        return occupancy_to_mesh(occupancy, config or MeshConfig()), None
    except DegenerateOccupancyError as e:
        return None, str(e)


def _decimate(mesh: trimesh.Trimesh, faces: int) -> trimesh.Trimesh:
    """Quadric decimation that never hands back a broken mesh.

    fast-simplification does not guard topology: on voxel meshes it sometimes leaves an edge
    shared by four faces. Gentler settings usually avoid it; if none does, keep the full mesh.
    """
    for aggression in (7, 5, 3, 1):  # 7 is the library's default; lower is slower and safer
        out = mesh.simplify_quadric_decimation(face_count=faces, aggression=aggression)
        if out.is_watertight and out.is_winding_consistent and out.volume > 0:
            return out
    warnings.warn(
        f"decimation to {faces} faces broke the mesh's watertightness at every setting tried; "
        f"returning the undecimated mesh ({len(mesh.faces)} faces)",
        RuntimeWarning,
        stacklevel=3,
    )
    return mesh


# ---------------------------------------------------------------------------------------------
# mesh -> occupancy
# ---------------------------------------------------------------------------------------------


def _coerce_mesh(mesh) -> trimesh.Trimesh:
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh()  # bakes node transforms, as viewers show them
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"expected a trimesh.Trimesh, Scene or a mesh file path, got {type(mesh).__name__}")
    if len(mesh.faces) == 0:
        raise MeshFileError("mesh has no faces (a point cloud or an empty file?)")
    return mesh


def normalize_to_unit_cube(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Copy of ``mesh`` scaled into [-0.5, 0.5]³ by the public convention (one scalar min/max).

    Not per-axis centring: an off-origin mesh ends up off-centre (and smaller), as in the public
    pipeline, so that grids match the VQ-VAE's training data.
    """
    mesh = _coerce_mesh(mesh)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    lo, hi = v.min(), v.max()
    if not np.isfinite([lo, hi]).all() or hi - lo <= 0:
        raise ValueError("mesh has zero or non-finite extent; it cannot be normalised")
    out = mesh.copy()
    out.vertices = (v - lo) / (hi - lo) - 0.5
    return out


def _format_of(path: Path, format: str | None = None) -> str:
    fmt = (format or path.suffix).lower().lstrip(".")
    if not fmt:
        raise MeshFileError(f"cannot tell the format of {path}: no extension; supported: {', '.join(SUPPORTED_FORMATS)}")
    return fmt


def mesh_to_occupancy(
    mesh_or_path,
    resolution: int = 64,
    up: Literal["z", "y"] | None = None,
) -> np.ndarray:
    """Surface-shell occupancy [R,R,R] (bool, index x,y,z, z up) of a mesh, as the public pipeline makes it.

    ``up`` is the mesh's up axis. None means "y" for .glb/.gltf/.obj paths (those files are y-up,
    and the public code rotates both) and "z" otherwise, including in-memory meshes. As in the
    public code, the scalar normalisation happens in the mesh's own frame, before the rotation.

    The shell is every voxel holding a vertex of the mesh subdivided to edges <= half a voxel.
    Every surface point is then within 0.29 voxel of a vertex, so no 6-connected path of empty
    voxels can cross the surface: closed meshes give closed shells however thin or tilted, and
    the shell is a subset of the exactly-intersected voxels (it skips only grazed corners).
    """
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    if isinstance(mesh_or_path, (str, os.PathLike)):
        path = Path(mesh_or_path)
        if up is None:
            up = "y" if _format_of(path) in Y_UP_FORMATS else "z"
        mesh_or_path = _read(path)  # raw file coordinates: trimesh keeps the file's axes
    up = up or "z"
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'z' or 'y', got {up!r}")

    mesh = normalize_to_unit_cube(mesh_or_path)
    if up == "y":
        mesh.apply_transform(Y_UP_TO_Z_UP)  # about the cube's centre, so it stays in the cube
    verts, _ = trimesh.remesh.subdivide_to_size(
        mesh.vertices, mesh.faces, max_edge=0.5 / resolution, max_iter=16
    )
    # floor() gives voxel i the half-open [i/R - 0.5, (i+1)/R - 0.5); +0.5 itself joins voxel R-1.
    idx = np.clip(np.floor((verts + 0.5) * resolution).astype(np.int64), 0, resolution - 1)
    grid = np.zeros((resolution,) * 3, dtype=bool)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return grid


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def _read(path: Path) -> trimesh.Trimesh:
    """Any file trimesh reads, as one mesh in the file's own coordinates; failures say which file."""
    if not path.is_file():
        raise MeshFileError(f"no such mesh file: {path}")
    try:
        mesh = trimesh.load_mesh(path)
    except Exception as e:  # trimesh raises anything from ValueError to NotImplementedError
        raise MeshFileError(f"could not read {path} as a mesh: {e}") from e
    try:
        return _coerce_mesh(mesh)
    except MeshFileError as e:
        raise MeshFileError(f"{path}: {e}") from None


def _check_format(fmt: str, what: str) -> None:
    if fmt not in SUPPORTED_FORMATS:
        raise MeshFileError(f"cannot {what} format {fmt!r}; supported: {', '.join(SUPPORTED_FORMATS)}")


def export_mesh(mesh: trimesh.Trimesh, path, format: str | None = None) -> Path:
    """Write a z-up mesh as GLB/OBJ/PLY/STL (by extension, or ``format``) in that format's up axis.

    The file appears only when complete (temp file + rename), so a crash never leaves a
    half-written file that looks finished.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    _check_format(fmt, "export")
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh()
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise MeshFileError(f"refusing to write {path}: the mesh is empty (no faces)")

    out = mesh.copy()
    if fmt in Y_UP_FORMATS:
        out.apply_transform(Z_UP_TO_Y_UP)
    data = out.export(file_type=fmt)
    if isinstance(data, str):
        data = data.encode("utf-8")

    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so the rename is atomic; not mkstemp, whose 0600 mode would survive the rename.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_mesh(path) -> trimesh.Trimesh:
    """Read a mesh file into ar3d's z-up frame (inverse of export_mesh's per-format rotation)."""
    path = Path(path)
    fmt = _format_of(path)
    if fmt != "gltf":  # .gltf is y-up like .glb and reads fine; we only never write it
        _check_format(fmt, "load")
    mesh = _read(path)
    if fmt in Y_UP_FORMATS:
        mesh.apply_transform(Y_UP_TO_Z_UP)
    return mesh
