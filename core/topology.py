"""Topology of a voxel solid: pieces, through-holes (genus) and enclosed cavities.

Why: a mesh can be the right family with the right counts and still look broken — a seat with a
hole through it, a railing riddled with tunnels, crumbs floating beside the object. Those are
topological facts, cheap to read off the voxel solid that ``core.mesh`` meshes:

* pieces ``b0``: 6-connected components of the solid (marching cubes on the mesh field joins
  voxels through faces only, so this is the number of separate shells of the mesh);
* cavities ``b2``: 26-connected pockets of empty space the outside cannot reach (none after
  ``mesh_solid``'s fill, kept for grids that were not filled);
* genus ``b1`` (through-holes, handles): from the Euler characteristic
  ``χ = b0 − b1 + b2`` (scikit-image, 6-connected foreground, 26-connected background, the
  complementary pair, so χ is that of the marching-cubes surface's solid).

The tests check the genus against ``trimesh``'s Euler number of the marching-cubes mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import euler_number

__all__ = ["Topology", "topology", "mesh_genus"]

_SIX = ndimage.generate_binary_structure(3, 1)
_TWENTY_SIX = np.ones((3, 3, 3), bool)


@dataclass(frozen=True)
class Topology:
    pieces: int  # b0: separate solid pieces
    sizes: tuple  # voxels of each piece, largest first
    genus: int  # b1: through-holes summed over pieces
    cavities: int  # b2: enclosed empty pockets
    euler: int  # χ = b0 - b1 + b2


def topology(solid) -> Topology:
    """Betti numbers of a bool [X, Y, Z] voxel solid (see the module docstring)."""
    s = np.asarray(solid, dtype=bool)
    if not s.any():
        return Topology(0, (), 0, 0, 0)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(s))
    s = np.pad(s[box], 1)  # the occupied box, padded so the outside is one background all round
    labels, b0 = ndimage.label(s, structure=_SIX)
    sizes = tuple(sorted(np.bincount(labels.ravel())[1:].tolist(), reverse=True))
    b2 = ndimage.label(~s, structure=_TWENTY_SIX)[1] - 1
    chi = int(euler_number(s, connectivity=1))
    return Topology(int(b0), sizes, int(b0 + b2 - chi), int(b2), chi)


def mesh_genus(mesh) -> int:
    """Through-holes of a closed triangle mesh, summed over its pieces: Σ (2 − χᵢ) / 2."""
    parts = mesh.split(only_watertight=False)
    return int(round(sum((2 - p.euler_number) / 2 for p in parts)))
