"""Functions the render workers run after a render (``RenderPool.submit(then=...)``).

Kept in a module of their own so a worker imports nothing of the evaluation but this.
"""

from __future__ import annotations

from pathlib import Path


def write_views(result, parent: str, name: str, mesh: str):
    """Write the views into ``parent/name/`` (view_000.png …, grid.png, transforms.json, then
    render.json, renamed into place when complete) and send back only the RGBA images."""
    from ..headless.farm import RenderItem, write_item

    write_item(Path(parent), RenderItem(name, Path(mesh)), result)
    return result.images


def images_only(result):
    """Send back the RGBA images and nothing else (the rewards' six views stay in memory)."""
    return result.images
