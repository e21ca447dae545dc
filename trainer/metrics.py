"""Training metrics: TensorBoard, optional Weights & Biases, and plain JSONL beside them.

Why JSONL too: tests, scripts and ``ar3d`` tools should read a run's numbers without
TensorBoard's event-file parser. ``metrics.jsonl`` holds one line per ``scalars()`` call
(``{"step": …, "time": …, name: value, …}``; non-finite values are written as null, the
TensorBoard copy keeps them), ``text.jsonl`` the logged texts (sample plans), and ``images/``
the PNGs of logged images.

(Named ``metrics`` rather than ``logging`` so that ``from . import logging`` can never shadow
the standard library's module inside the trainer package.)

On processes other than the main one (``is_main=False``) every method does nothing, so the
trainer can call them unconditionally.
"""

from __future__ import annotations

import json
import math
import textwrap
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import Ar3dError


class MetricsLoggerError(Ar3dError, RuntimeError):
    """A logging back-end that was asked for is not available."""


def _to_float(v: Any) -> float | None:
    if v is None:
        return None
    if hasattr(v, "item"):  # torch / numpy scalars
        v = v.item()
    return float(v)


class MetricsLogger:
    """Scalars, texts, images and histograms of a run (see the module docstring).

    dir: the log folder (TensorBoard event files go straight into it).
    tensorboard / wandb: the back-ends; W&B is used only when enabled (and must then be installed).
    is_main: False makes every call a no-op (non-main processes).
    wandb_project / run_name / config: passed to ``wandb.init`` (config: a dict of the run's settings).
    """

    def __init__(
        self,
        dir: str | Path,
        tensorboard: bool = True,
        wandb: bool = False,
        is_main: bool = True,
        *,
        wandb_project: str = "ar3d",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.dir = Path(dir)
        self.is_main = is_main
        self._tb = None
        self._wandb = None
        self._scalars_f = self._text_f = None
        if not is_main:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise MetricsLoggerError(
                    "logging.tensorboard is on but TensorBoard is not installed: pip install tensorboard "
                    "(or install ar3d[train]), or set logging.tensorboard=false"
                ) from e
            self._tb = SummaryWriter(log_dir=str(self.dir))
        if wandb:
            try:
                import wandb as _wandb
            except ImportError as e:
                raise MetricsLoggerError(
                    "logging.wandb is on but wandb is not installed: pip install wandb, or set logging.wandb=false"
                ) from e
            self._wandb = _wandb.init(project=wandb_project, name=run_name, dir=str(self.dir),
                                      config=dict(config or {}))  # fmt: skip
        self._scalars_f = (self.dir / "metrics.jsonl").open("a", encoding="utf-8")
        self._text_f = (self.dir / "text.jsonl").open("a", encoding="utf-8")

    @classmethod
    def from_config(cls, section, is_main: bool = True, config: Mapping[str, Any] | None = None) -> "MetricsLogger":
        """From a ``LoggingSection`` (``TrainConfig.logging``)."""
        return cls(section.dir, tensorboard=section.tensorboard, wandb=section.wandb, is_main=is_main,
                   wandb_project=section.wandb_project, run_name=section.run_name, config=config)  # fmt: skip

    # --- logging ---------------------------------------------------------------------------
    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        """Log name → number (None values are skipped)."""
        if not self.is_main:
            return
        clean = {k: f for k, v in values.items() if (f := _to_float(v)) is not None}
        line = {"step": int(step), "time": round(time.time(), 3)}
        line.update({k: (v if math.isfinite(v) else None) for k, v in clean.items()})
        self._scalars_f.write(json.dumps(line) + "\n")
        self._scalars_f.flush()
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def text(self, tag: str, text: str, step: int) -> None:
        """Log a text (e.g. a sample's prompt and plans)."""
        if not self.is_main:
            return
        self._text_f.write(json.dumps({"step": int(step), "tag": tag, "text": text}) + "\n")
        self._text_f.flush()
        if self._tb is not None:
            # TensorBoard renders markdown: indent so that plans keep their line breaks
            self._tb.add_text(tag, textwrap.indent(text, "    "), step)
        if self._wandb is not None:
            import wandb

            self._wandb.log({tag: wandb.Html(f"<pre>{_html_escape(text)}</pre>")}, step=step)

    def image(self, tag: str, image: np.ndarray, step: int, save_png: bool = True) -> Path | None:
        """Log a uint8 HxWx3 image (e.g. ``render_grid``'s); also saved as images/{tag}_{step}.png."""
        if not self.is_main:
            return None
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 HxWx3, got {image.dtype} {image.shape}")
        path = None
        if save_png:
            from PIL import Image

            path = self.dir / "images" / f"{tag.replace('/', '_')}_{int(step):08d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
        if self._tb is not None:
            self._tb.add_image(tag, image, step, dataformats="HWC")
        if self._wandb is not None:
            import wandb

            self._wandb.log({tag: wandb.Image(image)}, step=step)
        return path

    def histogram(self, tag: str, values: Any, step: int) -> None:
        """Log a distribution (e.g. rewards, advantages) to TensorBoard / W&B."""
        if not self.is_main:
            return
        arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).reshape(-1)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            return
        if self._tb is not None:
            self._tb.add_histogram(tag, arr, step)
        if self._wandb is not None:
            import wandb

            self._wandb.log({tag: wandb.Histogram(arr)}, step=step)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if not self.is_main:
            return
        for f in (self._scalars_f, self._text_f):
            if f is not None and not f.closed:
                f.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_scalars(dir: str | Path) -> list[dict[str, Any]]:
    """The lines of ``<dir>/metrics.jsonl`` (for tests and tools)."""
    path = Path(dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- image grid -------------------------------------------------------------------------------
def _to_rgb(img: Any, background: int) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float64) * (255.0 if a.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        a = (a[..., :3].astype(np.float32) * alpha + background * (1.0 - alpha)).round().astype(np.uint8)
    return a[..., :3]


def render_grid(
    views_per_sample: Sequence[Any],
    captions: Sequence[str] | None = None,
    *,
    tile: int | None = None,
    caption_height: int = 28,
    background: int = 255,
) -> np.ndarray:
    """One uint8 HxWx3 image: a row per sample (its views left to right), each row under its caption.

    views_per_sample: per sample a [V, H, W, 3|4] array or a list of HxWx(3|4) images (RGBA is
        composited over ``background``); None or a missing view → a gray tile (a failed render).
    captions: one text per sample (wrapped and cut to ``caption_height``); None → no caption bands.
    tile: the square side every view is resized to (default: the first view's height).
    Shape: ``(rows × (tile + caption_height if captions else tile), max_views × tile, 3)``.
    """
    from PIL import Image, ImageDraw, ImageFont

    rows = [list(v) if v is not None else [] for v in views_per_sample]
    if not rows:
        raise ValueError("render_grid needs at least one sample")
    if captions is not None and len(captions) != len(rows):
        raise ValueError(f"{len(captions)} captions for {len(rows)} samples")
    cols = max(1, max(len(r) for r in rows))
    if tile is None:
        first = next((v for r in rows for v in r if v is not None), None)
        tile = int(np.asarray(first).shape[0]) if first is not None else 64
    cap_h = caption_height if captions is not None else 0
    row_h = tile + cap_h
    canvas = Image.new("RGB", (cols * tile, len(rows) * row_h), (background,) * 3)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    chars = max(8, cols * tile // 7)
    for i, views in enumerate(rows):
        y = i * row_h
        if captions is not None:
            lines = textwrap.wrap(str(captions[i]), chars) or [""]
            max_lines = max(1, cap_h // 12)
            if len(lines) > max_lines:
                lines = lines[:max_lines]
                lines[-1] = lines[-1][: max(0, chars - 3)] + "..."
            text = "\n".join(lines)
            try:
                draw.text((3, y + 2), text, fill=(0, 0, 0), font=font, spacing=1)
            except UnicodeEncodeError:  # Pillow's bitmap fallback font is latin-1 only
                text = text.encode("latin-1", "replace").decode("latin-1")
                draw.text((3, y + 2), text, fill=(0, 0, 0), font=font, spacing=1)
        for j in range(cols):
            v = views[j] if j < len(views) else None
            if v is None:
                im = Image.new("RGB", (tile, tile), (128, 128, 128))
            else:
                im = Image.fromarray(_to_rgb(v, background))
                if im.size != (tile, tile):
                    im = im.resize((tile, tile), Image.BILINEAR)
            canvas.paste(im, (j * tile, y + cap_h))
    return np.asarray(canvas, dtype=np.uint8)
