"""``geometry.silhouette``: could one 3D shape have cast all six rendered silhouettes?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..base import RewardBatch, SampleScore, missing_all
from .scoring import _per_sample

__all__ = ["SilhouetteConfig", "SilhouetteConsistency"]


@dataclass(frozen=True)
class SilhouetteConfig:
    radius: float = 2.0
    """Camera distance the views were rendered from (``RenderConfig.radius``)."""

    fov_deg: float = 40.0
    """Horizontal field of view of the views (``RenderConfig.fov_deg``)."""

    half_extent: float = 0.55
    """The visual hull is carved in the cube [-h, h]³. The renderer normalises the object into
    [-0.5, 0.5]³ (``RenderConfig.normalize``, on by default); the margin absorbs rounding."""

    alpha_threshold: int = 128
    """A pixel is object where its (work-resolution) coverage is at least this alpha, the
    renderer's own mask rule."""

    work_resolution: int = 64
    """Masks are box-filtered down by an integer factor to at most this side before carving;
    the carving lattice is sized so that neighbouring points project less than
    ``lattice_spacing_px`` apart (64 px → a 79³ lattice)."""

    lattice_spacing_px: float = 0.85
    """Lattice cells project at most this many work pixels wide (at the nearest depth), so the
    hull resolves what the masks do."""

    carve_dilation: int = 1
    """Masks are dilated by this many (work-resolution) pixels for carving, so that the hull's
    discretisation does not eat thin parts; consistent views then score ~1."""

    aggregate: str = "min"
    """How per-view scores combine: "min" (one inconsistent view sinks the sample; default) or
    "mean"."""

    def __post_init__(self):
        if self.radius <= 0 or not 0.0 < self.fov_deg < 180.0 or self.half_extent <= 0:
            raise ValueError("radius and half_extent must be > 0 and fov_deg in (0, 180)")
        if self.radius <= self.half_extent * math.sqrt(3.0):
            raise ValueError("the cameras must lie outside the carving cube (radius > half_extent·√3)")
        if not 0 < self.alpha_threshold <= 255 or self.work_resolution < 8 or self.carve_dilation < 0:
            raise ValueError("alpha_threshold must be in (0, 255], work_resolution >= 8, carve_dilation >= 0")
        if not 0.1 <= self.lattice_spacing_px < 1.0:
            raise ValueError("lattice_spacing_px must be in [0.1, 1)")
        if self.aggregate not in ("min", "mean"):
            raise ValueError(f"aggregate must be 'min' or 'mean', got {self.aggregate!r}")


class _AxisView:
    """An axis-aligned camera's projection between a lattice of n³ cells over [-h, h]³ and an
    H×W image, precomputed as flat gather indices (the six-view cameras map each world axis to
    one image axis or to depth, so image columns depend only on two lattice indices). Carving
    and reprojection are then one ``take`` each, with no per-sample arithmetic."""

    def __init__(self, w2c: np.ndarray, n: int, h: float, f: float, cx: float, cy: float, shape: tuple[int, int]):
        r, t = w2c[:3, :3], w2c[:3, 3]
        axes = np.argmax(np.abs(r), axis=1)  # world axis of camera right, up, backward
        if len(set(axes.tolist())) != 3 or not np.allclose(np.abs(r[np.arange(3), axes]), 1.0, atol=1e-9):
            raise ValueError("silhouette consistency needs axis-aligned cameras (the six-view layout)")
        a_r, a_u, a_d = (int(a) for a in axes)
        s_r, s_u, s_d = (float(r[k, axes[k]]) for k in range(3))
        H, W = shape
        coords = ((np.arange(n) + 0.5) / n * 2.0 - 1.0) * h
        depth = -(s_d * coords + t[2])  # per depth slice; the camera looks down its -Z
        if not np.all(depth > 0):
            raise ValueError("a camera lies inside the carving cube")

        # cell centre -> pixel, into the mask padded by one False pixel all round
        col = np.floor(cx + f * (s_r * coords[None, :] + t[0]) / depth[:, None])  # [depth, right]
        row = np.floor(cy - f * (s_u * coords[None, :] + t[1]) / depth[:, None])  # [depth, up]
        col = np.clip(col, -1, W).astype(np.intp) + 1
        row = np.clip(row, -1, H).astype(np.intp) + 1
        idx = row[:, :, None] * (W + 2) + col[:, None, :]  # [depth, up, right]
        order = (a_d, a_u, a_r)
        self.carve_idx = np.ascontiguousarray(idx.transpose(tuple(order.index(k) for k in range(3))))

        # pixel centre's ray at each depth slice -> cell, into the hull padded by one False cell
        xr = ((np.arange(W) + 0.5 - cx)[None, :] * depth[:, None] / f - t[0]) / s_r  # [depth, W]
        xu = ((cy - np.arange(H) - 0.5)[None, :] * depth[:, None] / f - t[1]) / s_u  # [depth, H]
        ri = np.clip(np.floor((xr + h) / (2.0 * h) * n), -1, n).astype(np.intp) + 1
        ui = np.clip(np.floor((xu + h) / (2.0 * h) * n), -1, n).astype(np.intp) + 1
        di = np.arange(n, dtype=np.intp) + 1
        stride = [(n + 2) ** 2, n + 2, 1]  # of the padded [x, y, z] hull
        self.proj_idx = (
            (di * stride[a_d])[:, None, None] + (ui * stride[a_u])[:, :, None] + (ri * stride[a_r])[:, None, :]
        )  # [depth, H, W]

    def inside(self, mask: np.ndarray) -> np.ndarray:
        """bool [n, n, n] ([x, y, z]): the cell's centre projects onto ``mask``."""
        return np.pad(mask, 1).ravel().take(self.carve_idx)

    def project(self, padded_hull: np.ndarray) -> np.ndarray:
        """bool [H, W]: the pixel centre's ray meets a hull cell (tested at each depth slice)."""
        return padded_hull.ravel().take(self.proj_idx).any(axis=0)


class SilhouetteConsistency:
    """Could one 3D shape have cast all six silhouettes?

    Each view's object mask (alpha ≥ ``alpha_threshold`` after box-filtering to the work
    resolution) is dilated by ``carve_dilation`` pixels; a lattice over [-h, h]³ is carved to
    the points that project inside every dilated mask (the *visual hull*, with the cameras of
    ``ar3d.headless.views.six_views(radius, fov_deg)`` matched by view name). The hull is then
    projected back: a view's score is the fraction of its mask pixels the hull covers. Views of
    one object score ~1 (the hull contains the object, so it covers every silhouette); a view
    that disagrees with the others carves away what they show, or shows what they carved
    away, and some view's coverage drops. Value: the minimum (or mean, ``aggregate``) over the
    views with object pixels; 0 when no view shows anything.

    Perspective is exact, unlike comparing mirrored opposite views (front/back of a chair differ
    by up to 1.5× in apparent size at radius 2). Assumes the renderer's default framing: the
    object normalised into [-0.5, 0.5]³ and the cameras of ``radius``/``fov_deg``. Needs RGBA
    views (RGB views have no reliable mask: a white object on white is invisible).
    """

    name = "geometry.silhouette"
    sub_scores = 1
    value_range = (0.0, 1.0)
    needs = frozenset({"views"})

    def __init__(self, config: SilhouetteConfig | None = None):
        self.config = config or SilhouetteConfig()
        self._views: dict = {}  # projection tables of the last camera layout (~40 MB at 64 px)

    def score(self, batch: RewardBatch) -> list[SampleScore]:
        if batch.views is None:
            return missing_all(batch, "no rendered views in the batch")
        try:
            cams = self._cameras(batch.view_names)
        except ValueError as e:
            return missing_all(batch, str(e))
        return _per_sample(batch, lambda i: self._one(batch.views[i], cams, batch.view_names))

    def _cameras(self, names: Sequence[str]) -> list[np.ndarray]:
        from ....headless.views import six_views  # numpy only, no bpy

        by_name = {c.name: c for c in six_views(self.config.radius, self.config.fov_deg)}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"no camera known for view(s) {unknown}; silhouette consistency knows {sorted(by_name)}")
        return [by_name[n].w2c() for n in names]

    def _masks(self, views: np.ndarray) -> tuple[np.ndarray, int]:
        """Object masks at the work resolution, and the box-filter factor k (work pixel j covers
        original pixels [k j, k (j + 1)))."""
        v = np.asarray(views)
        if v.dtype != np.uint8 or v.ndim != 4 or v.shape[-1] not in (3, 4):
            raise ValueError(f"views must be uint8 [V, H, W, 3|4], got {v.dtype} {v.shape}")
        if v.shape[-1] != 4:
            raise ValueError("views have no alpha channel; silhouettes need RGBA renders")
        a = v[..., 3]
        k = max(1, math.ceil(max(a.shape[1:]) / self.config.work_resolution))
        h, w = a.shape[1] // k, a.shape[2] // k
        cov = a[:, : h * k, : w * k].reshape(len(a), h, k, w, k).sum(axis=4, dtype=np.uint32).sum(axis=2)
        return cov >= self.config.alpha_threshold * k * k, k

    def _one(self, views, w2cs: list[np.ndarray], names: Sequence[str]) -> SampleScore:
        if views is None:
            return SampleScore.fail("no views for this sample")
        masks, k = self._masks(views)
        if len(masks) != len(w2cs):
            raise ValueError(f"{len(masks)} views for {len(w2cs)} view names")
        cfg = self.config
        V, H, W = masks.shape
        full_h, full_w = np.shape(views)[1] / k, np.shape(views)[2] / k  # original pixels, in work pixels
        f = 0.5 * full_w / math.tan(math.radians(cfg.fov_deg) / 2.0)  # at work resolution
        cx, cy = 0.5 * full_w, 0.5 * full_h
        details: dict[str, Any] = {"work_resolution": [H, W]}
        pixels = masks.reshape(V, -1).sum(axis=1)
        if not pixels.any():
            return SampleScore(0.0, {**details, "reason": "no view shows anything"})

        h = cfg.half_extent
        near = cfg.radius - h  # the nearest depth of any lattice cell, for axis-aligned cameras
        n = int(math.ceil(f * 2.0 * h / (near * cfg.lattice_spacing_px)))
        key = (tuple(tuple(m.ravel().round(9)) for m in w2cs), n, h, f, cx, cy, H, W)
        cams = self._views.get(key)
        if cams is None:
            cams = [_AxisView(m, n, h, f, cx, cy, (H, W)) for m in w2cs]
            self._views = {key: cams}  # one layout at a time: a training run renders one way

        carve = masks
        if cfg.carve_dilation:
            st = ndimage.generate_binary_structure(2, 2)
            carve = np.stack([ndimage.binary_dilation(m, st, cfg.carve_dilation) for m in masks])
        hull = np.ones((n, n, n), bool)
        for cam, m in zip(cams, carve):
            hull &= cam.inside(m)

        padded = np.pad(hull, 1)
        per_view = []
        for v in range(V):
            if pixels[v] == 0:
                per_view.append(None)
                continue
            proj = cams[v].project(padded)
            per_view.append(float((proj & masks[v]).sum()) / float(pixels[v]))
        scored = [s for s in per_view if s is not None]
        value = min(scored) if cfg.aggregate == "min" else float(np.mean(scored))
        details.update(
            per_view={name: s for name, s in zip(names, per_view)},
            hull_cells=int(hull.sum()),
            lattice=n,
            empty_views=[name for name, s in zip(names, per_view) if s is None],
        )
        return SampleScore(value, details)
