"""How to render: ``RenderConfig`` and the engines, GPU back-ends and passes it can name.

numpy only (no bpy, no trimesh): the trainer, server, evaluation and ``ar3d render`` build and
check render settings here without loading the renderer (``ar3d.headless.render``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from .views import Camera, parse_views

__all__ = ["ENGINES", "CYCLES_GPU_BACKENDS", "PASSES", "RenderConfig"]

# ar3d engine name -> Blender engine id (bpy 5.0; Eevee was BLENDER_EEVEE_NEXT in 4.2-4.5).
ENGINES = {"workbench": "BLENDER_WORKBENCH", "eevee": "BLENDER_EEVEE", "cycles": "CYCLES"}
# Cycles GPU back-ends tried in this order by device="auto"/"gpu"; the CPU is the fallback.
CYCLES_GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")
PASSES = ("depth", "normal")
_BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "gray": (0.5, 0.5, 0.5), "grey": (0.5, 0.5, 0.5)}
_WORKBENCH_AA = ("OFF", "FXAA", "5", "8", "11", "16", "32")


@dataclass
class RenderConfig:
    """How to render. Every field has a documented default; ``validate()`` checks them.

    engine: "workbench" (fast OpenGL previews and tests) | "eevee" | "cycles".
    resolution: square image side in pixels.
    samples: Cycles path-tracing samples per pixel / Eevee temporal AA samples (Workbench uses
        ``workbench_aa`` instead).
    views: a ``views.parse_views`` spec: "six" (default layout, see ``views``), "ring:8",
        "ring:4@30", "hammersley:150", an int (a ring at 20°) or a list of ``Camera``.
    radius, fov_deg: camera distance and horizontal field of view (TRELLIS' 2.0 and 40°).
    background: "transparent" | "white" | "black" | "gray" | (r, g, b) floats in [0, 1].
    lighting: "default" (studio light in Workbench, the three-point rig in Eevee/Cycles) |
        "flat" (Workbench flat shading; world ambient only in Eevee/Cycles).
    device: Cycles only. "auto" tries OPTIX → CUDA → HIP → METAL → ONEAPI → CPU, "gpu" the same
        but fails without a GPU, "cpu" the CPU. ``RenderResult.device`` says what was used.
    seed: Cycles' sampling seed.
    passes: any of "depth", "normal" (the object mask always comes from alpha).
    color: the material's base colour, linear RGB in [0, 1]; mesh colours/textures are ignored.

    Additions: normalize (into the unit cube, see ``normalize_mesh``); smooth_angle_deg (shade
    smooth but keep edges sharper than this; None = flat shading); workbench_aa (Workbench's
    anti-aliasing: "OFF", "FXAA" (default), "5", "8", "11", "16", "32" samples; at 224² on two
    busy CPU cores with software GL about 0.02, 0.04, 0.07 and 0.1-0.15 s a view for OFF, FXAA,
    5 and 8); denoise (Cycles' OpenImageDenoise; off by default so that the images are the raw
    samples; on the CPU it was bit-reproducible too); quiet (send Blender's C-level
    stdout/stderr chatter to a per-job log that is shown only in errors; it redirects file
    descriptors 1 and 2 while Blender works, so set it False in processes whose other threads
    must keep printing).
    """

    engine: str = "workbench"
    resolution: int = 512
    samples: int = 16
    views: Union[str, int, Sequence[Camera]] = "six"
    radius: float = 2.0
    fov_deg: float = 40.0
    background: Union[str, tuple] = "transparent"
    lighting: str = "default"
    device: str = "auto"
    seed: int = 0
    passes: tuple[str, ...] = ()
    color: tuple = (0.8, 0.8, 0.8)
    # additions to the contract
    normalize: bool = True
    smooth_angle_deg: float | None = 30.0
    workbench_aa: str = "OFF"
    denoise: bool = False
    quiet: bool = True

    def validate(self) -> "RenderConfig":
        """Raise ValueError on a bad field; returns self so calls chain."""
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if int(self.resolution) < 1:
            raise ValueError(f"resolution must be >= 1, got {self.resolution}")
        if int(self.samples) < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.radius <= 0:
            raise ValueError(f"radius must be > 0, got {self.radius}")
        if not 0 < self.fov_deg < 180:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")
        if self.lighting not in ("default", "flat"):
            raise ValueError(f"lighting must be 'default' or 'flat', got {self.lighting!r}")
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {self.device!r}")
        bad = [p for p in self.passes if p not in PASSES]
        if bad or isinstance(self.passes, str):
            raise ValueError(f"passes must be a tuple of {PASSES}, got {self.passes!r}")
        if "normal" in self.passes and self.engine == "workbench":
            raise ValueError("Workbench has no normal pass; use engine='eevee' or 'cycles' for passes=('normal',)")
        if str(self.workbench_aa) not in _WORKBENCH_AA:
            raise ValueError(f"workbench_aa must be one of {_WORKBENCH_AA}, got {self.workbench_aa!r}")
        if self.smooth_angle_deg is not None and not 0 <= self.smooth_angle_deg <= 180:
            raise ValueError(f"smooth_angle_deg must be in [0, 180] or None, got {self.smooth_angle_deg}")
        _rgb(self.color, "color")
        self.background_rgb()
        parse_views(self.views, self.radius, self.fov_deg)
        return self

    def background_rgb(self) -> tuple[float, float, float] | None:
        """The opaque background colour in [0, 1] display space, or None when transparent."""
        bg = self.background
        if isinstance(bg, str):
            if bg == "transparent":
                return None
            if bg in _BACKGROUNDS:
                return _BACKGROUNDS[bg]
            raise ValueError(f"background must be 'transparent', {', '.join(_BACKGROUNDS)} or (r, g, b), got {bg!r}")
        return _rgb(bg, "background")

    def cameras(self) -> list[Camera]:
        return parse_views(self.views, self.radius, self.fov_deg)


def _rgb(value, what) -> tuple[float, float, float]:
    try:
        a = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        a = np.zeros(0)
    if a.shape != (3,) or not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"{what} must be three floats in [0, 1], got {value!r}")
    return (float(a[0]), float(a[1]), float(a[2]))
