"""What a render gives back: ``RenderResult`` (the views in memory) and its files on disk.

numpy and Pillow only (no bpy): the pool's callers unpickle results here without the renderer.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .views import Camera, intrinsics, transforms_json

__all__ = ["RenderResult", "result_from_views", "grid_image"]


@dataclass
class RenderResult:
    """The views of one render, in memory.

    images: uint8 [V, H, W, 4] RGBA (see ``ar3d.headless.render``'s docstring for alpha and
    background).
    mask: bool [V, H, W], ``alpha >= 128``.
    depth: float32 [V, H, W] distance along the view axis, inf on the background; or None.
    normal: float32 [V, H, W, 3] world-space unit normals, 0 on the background; or None.
    cameras, intrinsics (3x3, pixels, OpenCV-style), extrinsics ([V, 4, 4] camera-to-world,
    Blender/NeRF convention, the ``transform_matrix`` of transforms.json).
    engine: the ar3d engine name; device: "CPU", e.g. "OPTIX: NVIDIA H100 80GB HBM3" for Cycles,
    "OPENGL" (Blender's GPU module; software GL without a GPU) for Workbench/Eevee.
    seconds: wall time of the whole render() call.

    Additions: alpha (uint8 [V, H, W] coverage), fov_deg, scale/offset (the normalisation,
    ``v' = v * scale + offset``), view_seconds (per-view wall time).
    """

    images: np.ndarray
    mask: np.ndarray
    depth: np.ndarray | None
    normal: np.ndarray | None
    cameras: list[Camera]
    intrinsics: np.ndarray
    extrinsics: np.ndarray
    engine: str
    device: str
    seconds: float
    alpha: np.ndarray | None = None
    fov_deg: float = 40.0
    scale: float = 1.0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    view_seconds: list[float] = field(default_factory=list)

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def transforms(self, file_names: Sequence[str]) -> dict:
        h, w = self.resolution
        return transforms_json(self.cameras, self.fov_deg, w, h, file_names)

    def write(self, out_dir, prefix: str = "view", grid: bool = True, transforms: bool = True, passes: bool = True) -> list[Path]:
        """Write ``{prefix}_000.png`` …, ``grid.png`` (all views tiled), ``transforms.json``
        (NeRF, file paths relative to ``out_dir``) and, when depth or normal were rendered,
        ``passes.npz`` (mask, depth, normal, intrinsics, extrinsics). Each file is written to a
        temporary name in ``out_dir`` and renamed, so readers never see a half-written file.
        Returns the paths written, in that order."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = [f"{prefix}_{i:03d}.png" for i in range(len(self.images))]
        written = []
        for name, img in zip(names, self.images):
            written.append(_atomic_write(out / name, lambda p, img=img: _save_png(p, img)))
        if grid:
            g = grid_image(self.images)
            written.append(_atomic_write(out / "grid.png", lambda p: _save_png(p, g)))
        if transforms:
            text = json.dumps(self.transforms(names), indent=2)
            written.append(_atomic_write(out / "transforms.json", lambda p: p.write_text(text)))
        if passes and (self.depth is not None or self.normal is not None):
            arrays = {"mask": self.mask, "intrinsics": self.intrinsics, "extrinsics": self.extrinsics}
            if self.depth is not None:
                arrays["depth"] = self.depth
            if self.normal is not None:
                arrays["normal"] = self.normal

            def save_npz(p):
                with open(p, "wb") as f:
                    np.savez_compressed(f, **arrays)

            written.append(_atomic_write(out / "passes.npz", save_npz))
        return written


def _atomic_write(path: Path, write) -> Path:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _save_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image  # Pillow comes with scikit-image, an ar3d dependency

    # Level 1: ~3x faster than Pillow's default 6 for ~10% larger files; farms write millions.
    Image.fromarray(np.ascontiguousarray(img)).save(path, format="PNG", compress_level=1)


def grid_image(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """Tile ``[V, H, W(, C)]`` images into one ``[rows*H, cols*W(, C)]`` image, row-major.

    ``cols`` defaults to ``ceil(V / floor(sqrt(V)))`` (6 views: 3 x 2, 8: 4 x 2, 4: 2 x 2).
    Empty cells are zeros (transparent for RGBA).
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(f"expected a non-empty [V, H, W] or [V, H, W, C] array, got shape {images.shape}")
    v = len(images)
    if cols is None:
        cols = math.ceil(v / max(1, math.isqrt(v)))
    cols = max(1, min(int(cols), v))
    rows = math.ceil(v / cols)
    pad = rows * cols - v
    if pad:
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
    h, w = images.shape[1:3]
    tiled = images.reshape((rows, cols) + images.shape[1:]).swapaxes(1, 2)
    return tiled.reshape((rows * h, cols * w) + images.shape[3:])


def result_from_views(cfg, cameras, fov, rgba, depths, normals, device, scale, offset, view_seconds, t0, clip_end) -> RenderResult:
    """The ``RenderResult`` of one render from its raw per-view RGBA (straight alpha), depth and
    normal arrays: the background composited in, depth ``inf`` where nothing (or only the far
    clip ``clip_end``) was hit, normals unit length; ``seconds`` counts from ``t0``."""
    images = np.stack(rgba)
    alpha = images[..., 3].copy()
    covered = alpha > 0
    bg = cfg.background_rgb()
    if bg is not None:
        a = alpha[..., None].astype(np.float32) / 255.0
        back = np.asarray(bg, dtype=np.float32) * 255.0
        rgb = images[..., :3].astype(np.float32) * a + back * (1.0 - a)
        images[..., :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        images[..., 3] = 255
    depth = normal = None
    if "depth" in cfg.passes:
        depth = np.stack(depths).astype(np.float32)
        # Cycles/Workbench write 1e10 where a pixel's sample hit nothing, Eevee the far clip
        depth[~covered | (depth >= 0.999 * clip_end)] = np.inf
    if "normal" in cfg.passes:
        normal = np.stack(normals).astype(np.float32)
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        normal = np.where(norm > 1e-6, normal / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
        normal[~covered] = 0.0
    res = int(cfg.resolution)
    return RenderResult(
        images=images,
        mask=alpha >= 128,
        depth=depth,
        normal=normal,
        cameras=list(cameras),
        intrinsics=intrinsics(fov, res, res),
        extrinsics=np.stack([c.c2w() for c in cameras]),
        engine=cfg.engine,
        device=device,
        seconds=time.perf_counter() - t0,
        alpha=alpha,
        fov_deg=fov,
        scale=float(scale),
        offset=np.asarray(offset, dtype=np.float64),
        view_seconds=view_seconds,
    )
