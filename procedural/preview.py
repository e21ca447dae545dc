"""Look at grids: three max-projections (front x-z, side y-z, top x-y) per grid in a PNG."""

from __future__ import annotations

import numpy as np

__all__ = ["projections", "save_preview"]


def projections(occupancy) -> np.ndarray:
    """[R, 3R + 4] uint8 image (0 = occupied, 255 = empty) of front, side and top views."""
    g = np.asarray(occupancy, dtype=bool)
    r = g.shape[0]
    views = [g.any(axis=1).T[::-1], g.any(axis=0).T[::-1], g.any(axis=2).T[::-1]]
    gap = np.zeros((r, 2), bool)
    img = np.concatenate([views[0], gap, views[1], gap, views[2]], axis=1)
    return np.where(img, 0, 255).astype(np.uint8)


def save_preview(grids, path, columns: int = 4, scale: int = 2) -> None:
    """Tile the projections of ``grids`` into one PNG (needs Pillow)."""
    from PIL import Image  # optional: only this helper needs it

    tiles = [projections(g) for g in grids]
    h, w = tiles[0].shape
    rows = (len(tiles) + columns - 1) // columns
    canvas = np.full((rows * (h + 4), columns * (w + 8)), 160, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        canvas[r * (h + 4) : r * (h + 4) + h, c * (w + 8) : c * (w + 8) + w] = t
    Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST).save(path)
