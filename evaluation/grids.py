"""The reports' render grids: a sample's views as a strip of thumbnails, strips stacked under captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import load_views
from .run_reader import Run

THUMB = 128  # px per view in the report's grids


def thumbs(run: Run, sample: dict) -> np.ndarray | None:
    """The sample's views on white, THUMB px each, tiled in one row (RGB uint8)."""
    from PIL import Image

    from ..core.rewards.base import to_rgb
    from ..headless.render_result import grid_image

    if not sample.get("views"):
        return None
    try:
        views = to_rgb(load_views(run.path / "samples" / sample["id"] / sample["views"]))
    except (OSError, FileNotFoundError):
        return None
    small = np.stack([np.asarray(Image.fromarray(v).resize((THUMB, THUMB), Image.LANCZOS)) for v in views])
    return grid_image(small, cols=len(small))


def labelled_rows(rows: list[tuple[str, list[np.ndarray | None]]], path: Path) -> bool:
    """Stack rows of view strips (several strips per row, side by side) with a caption bar each."""
    from PIL import Image, ImageDraw, ImageFont

    rows = [(label, strips) for label, strips in rows if any(s is not None for s in strips)]
    if not rows:
        return False
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    gap, bar = 24, 20
    widths = [sum((s.shape[1] if s is not None else THUMB) for s in strips) + gap * (len(strips) - 1) for _, strips in rows]
    width = max(widths)
    height = sum(bar + THUMB + gap for _ in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for label, strips in rows:
        draw.text((4, y + 3), label[:200], fill=(20, 20, 20), font=font)
        x = 0
        for s in strips:
            if x > 0:  # a rule between the strips of two runs
                draw.line([(x - gap // 2, y + bar), (x - gap // 2, y + bar + THUMB)], fill=(180, 180, 180), width=2)
            if s is not None:
                canvas.paste(Image.fromarray(s), (x, y + bar))
                x += s.shape[1] + gap
            else:
                draw.text((x + 4, y + bar + THUMB // 2), "(no render)", fill=(150, 0, 0), font=font)
                x += THUMB + gap
        y += bar + THUMB + gap
    canvas.save(path, format="PNG", optimize=True)
    return True
