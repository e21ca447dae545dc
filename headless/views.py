"""Camera layouts for headless renders: pure numpy, no bpy.

Frames and conventions
----------------------
* World frame: ar3d's z-up frame, which is Blender's scene frame (+Z up, the object's front faces
  -Y, +X is its right-hand side seen from the front). See ``ar3d.core.mesh`` for the axis table.
* Extrinsics are camera-to-world 4x4 matrices (``Camera.c2w``) in the Blender / NeRF convention:
  the camera looks down its own -Z axis, +Y is image-up and +X image-right. Columns 0..2 are the
  camera's right, up and backward axes in world coordinates, column 3 its position. This is the
  ``transform_matrix`` of a NeRF ``transforms.json``.
* Intrinsics (``intrinsics``) are the OpenCV-style 3x3 pinhole matrix in pixels (x right, y down,
  pixel ``i`` spans ``[i, i+1)``, so the principal point of a W x H image is ``(W/2, H/2)``).
  ``fov_deg`` is always the *horizontal* field of view (NeRF's ``camera_angle_x``); pixels are
  square, so ``fy = fx``.

The default six-view layout (``six_views``)
-------------------------------------------
AR3D-R1 says "6 uniformly distributed viewpoints" without releasing the layout; ar3d uses the six
octahedron directions, which are exactly uniform (each view's nearest neighbours are 90° away),
every camera at ``radius`` from the origin and looking at it:

=====  ========  ==================  =========  ===========================================
index  name      camera position     image up   what is where in the image
=====  ========  ==================  =========  ===========================================
0      front     (0, -r, 0)          +Z         +X on the right
1      right     (+r, 0, 0)          +Z         +Y (the back) on the right
2      back      (0, +r, 0)          +Z         -X on the right
3      left      (-r, 0, 0)          +Z         -Y (the front) on the right
4      top       (0, 0, +r)          +Y         +X on the right, the front at the bottom
5      bottom    (0, 0, -r)          -Y         +X on the right, the front at the top
=====  ========  ==================  =========  ===========================================

Front/right/back/left walk counter-clockwise seen from above (azimuth 0°, 90°, 180°, 270°),
the same order as ``ring_views``, so ``ring_views(4, elevation_deg=0)`` equals the first four.
Top and bottom keep +X on the right like the front view and fold towards it as in a third-angle
drafting layout: the top view has the object's front edge at its bottom, the bottom view has it
at its top (their up vectors are +Y and -Y: the view direction is parallel to +Z there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

__all__ = [
    "Camera",
    "SIX_VIEW_NAMES",
    "six_views",
    "ring_views",
    "hammersley_views",
    "parse_views",
    "intrinsics",
    "transforms_json",
    "look_at",
]

SIX_VIEW_NAMES = ("front", "right", "back", "left", "top", "bottom")

Vec3 = tuple[float, float, float]


def _vec3(v) -> Vec3:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"expected 3 finite numbers, got {v!r}")
    return (float(a[0]), float(a[1]), float(a[2]))


def look_at(position, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 camera-to-world matrix of a camera at ``position`` looking at ``target``.

    Blender/NeRF convention: the camera's -Z points at the target, its +Y is ``up`` made
    orthogonal to the view direction. Raises ValueError if ``up`` is parallel to the view.
    """
    eye = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    dist = np.linalg.norm(forward)
    if dist == 0:
        raise ValueError("camera position and target coincide")
    forward /= dist
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    n = np.linalg.norm(right)
    if n < 1e-9:
        raise ValueError(f"up vector {tuple(up)} is parallel to the view direction {tuple(forward)}")
    right /= n
    true_up = np.cross(right, forward)
    m = np.eye(4)
    m[:3, 0] = right
    m[:3, 1] = true_up
    m[:3, 2] = -forward
    m[:3, 3] = eye
    return m


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking from ``position`` at ``target``; ``fov_deg`` is horizontal."""

    position: Vec3
    target: Vec3 = (0.0, 0.0, 0.0)
    up: Vec3 = (0.0, 0.0, 1.0)
    fov_deg: float = 40.0
    name: str = field(default="", compare=True)

    def __post_init__(self):
        object.__setattr__(self, "position", _vec3(self.position))
        object.__setattr__(self, "target", _vec3(self.target))
        object.__setattr__(self, "up", _vec3(self.up))
        fov = float(self.fov_deg)
        if not 0.0 < fov < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")
        object.__setattr__(self, "fov_deg", fov)
        look_at(self.position, self.target, self.up)  # validates the geometry early

    def c2w(self) -> np.ndarray:
        """4x4 camera-to-world matrix (Blender/NeRF: the camera looks down its -Z, +Y up)."""
        return look_at(self.position, self.target, self.up)

    def w2c(self) -> np.ndarray:
        """4x4 world-to-camera matrix, the inverse of ``c2w``."""
        return np.linalg.inv(self.c2w())

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(np.subtract(self.position, self.target)))


def six_views(radius: float = 2.0, fov_deg: float = 40.0) -> list[Camera]:
    """The default six views: octahedron directions front, right, back, left, top, bottom.

    See the module docstring for the exact layout and the up vectors of top and bottom.
    """
    r = float(radius)
    if r <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    z_up, y_up = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
    specs = [
        ("front", (0.0, -r, 0.0), z_up),
        ("right", (r, 0.0, 0.0), z_up),
        ("back", (0.0, r, 0.0), z_up),
        ("left", (-r, 0.0, 0.0), z_up),
        ("top", (0.0, 0.0, r), y_up),
        ("bottom", (0.0, 0.0, -r), (0.0, -1.0, 0.0)),
    ]
    return [Camera(position=p, up=u, fov_deg=fov_deg, name=n) for n, p, u in specs]


def _orbit_position(radius: float, azimuth_rad: float, elevation_rad: float) -> Vec3:
    """Azimuth 0 is the front (-Y), 90° the right (+X); elevation is above the XY plane."""
    c = math.cos(elevation_rad)
    return (
        radius * c * math.sin(azimuth_rad),
        -radius * c * math.cos(azimuth_rad),
        radius * math.sin(elevation_rad),
    )


def _orbit_camera(radius, azimuth_rad, elevation_rad, fov_deg, name) -> Camera:
    pos = _orbit_position(radius, azimuth_rad, elevation_rad)
    # At the poles the world up is parallel to the view; use the direction to the front instead.
    up = (0.0, 0.0, 1.0) if abs(math.cos(elevation_rad)) > 1e-6 else (
        -math.sin(azimuth_rad) * math.copysign(1.0, elevation_rad),
        math.cos(azimuth_rad) * math.copysign(1.0, elevation_rad),
        0.0,
    )
    return Camera(position=pos, up=up, fov_deg=fov_deg, name=name)


def ring_views(n: int, elevation_deg: float = 20.0, radius: float = 2.0, fov_deg: float = 40.0) -> list[Camera]:
    """``n`` cameras evenly spaced in azimuth at one elevation, starting at the front (-Y).

    Azimuth ``360°·i/n`` counter-clockwise seen from above (front, then towards the right, +X).
    Names are ``ring_000`` ….
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"a ring needs at least one view, got {n}")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    el = math.radians(float(elevation_deg))
    return [
        _orbit_camera(float(radius), 2.0 * math.pi * i / n, el, fov_deg, f"ring_{i:03d}") for i in range(n)
    ]


def _radical_inverse_base2(i: np.ndarray) -> np.ndarray:
    """Van der Corput sequence in base 2: the bits of ``i`` mirrored about the binary point."""
    i = np.asarray(i, dtype=np.uint64)
    out = np.zeros(i.shape, dtype=np.float64)
    scale = 0.5
    rest = i.copy()
    while np.any(rest):
        out += (rest & np.uint64(1)).astype(np.float64) * scale
        rest >>= np.uint64(1)
        scale *= 0.5
    return out


def hammersley_views(n: int, radius: float = 2.0, fov_deg: float = 40.0, offset=(0.0, 0.0)) -> list[Camera]:
    """``n`` views from a Hammersley point set on the sphere, as TRELLIS lays out its renders.

    Point ``i`` has ``u = (i + offset[0]) / n`` and ``v = radical_inverse_2(i) + offset[1]``
    (both taken modulo 1). The yaw is ``2π·v``. ``u`` is warped piecewise-linearly so that a
    quarter of the views fall below the equator and three quarters above it (``u < 1/4`` maps to
    ``2u``, the rest to ``(2u + 1)/3``), then turned into an area-uniform latitude,
    ``pitch = arcsin(2u' - 1)``. Yaw 0 is the +X axis, growing towards +Y (TRELLIS' convention);
    positions are ``r·(cos yaw·cos pitch, sin yaw·cos pitch, sin pitch)``.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"hammersley_views needs n >= 1, got {n}")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    idx = np.arange(n)
    u = np.mod((idx + float(offset[0])) / n, 1.0)
    v = np.mod(_radical_inverse_base2(idx) + float(offset[1]), 1.0)
    u = np.where(u < 0.25, 2.0 * u, (2.0 * u + 1.0) / 3.0)
    pitch = np.arcsin(np.clip(2.0 * u - 1.0, -1.0, 1.0))
    yaw = 2.0 * np.pi * v
    cams = []
    for i in range(n):
        cp = math.cos(pitch[i])
        pos = (radius * math.cos(yaw[i]) * cp, radius * math.sin(yaw[i]) * cp, radius * math.sin(pitch[i]))
        if cp > 1e-6:
            up = (0.0, 0.0, 1.0)
        else:  # straight above/below: keep image-up pointing along the yaw direction
            s = math.copysign(1.0, pitch[i])
            up = (-s * math.cos(yaw[i]), -s * math.sin(yaw[i]), 0.0)
        cams.append(Camera(position=pos, up=up, fov_deg=fov_deg, name=f"hammersley_{i:03d}"))
    return cams


ViewSpec = Union[str, int, Sequence[Camera]]


def parse_views(spec: ViewSpec, radius: float = 2.0, fov_deg: float = 40.0) -> list[Camera]:
    """Turn a view spec into cameras.

    * ``"six"`` (alias ``"octahedron"``): ``six_views``;
    * ``"ring:N"`` or ``"ring:N@ELEV"``: ``ring_views(N, ELEV)`` (default elevation 20°);
    * ``"hammersley:N"``: ``hammersley_views(N)``;
    * an int ``N`` (or a string of digits): ``ring_views(N)``;
    * a list of ``Camera``: returned as a list, unchanged (their own radius/fov win).
    """
    if isinstance(spec, (list, tuple)):
        cams = list(spec)
        if not cams or not all(isinstance(c, Camera) for c in cams):
            raise ValueError("a view list must be a non-empty list of Camera")
        return cams
    if isinstance(spec, (bool, np.bool_)):
        raise ValueError(f"not a view spec: {spec!r}")
    if isinstance(spec, (int, np.integer)):
        return ring_views(int(spec), radius=radius, fov_deg=fov_deg)
    if not isinstance(spec, str):
        raise ValueError(f"not a view spec: {spec!r}")
    s = spec.strip().lower()
    help_ = "use 'six', 'ring:N', 'ring:N@ELEVATION_DEG', 'hammersley:N' or an integer N (a ring)"
    if s in ("six", "octahedron"):
        return six_views(radius=radius, fov_deg=fov_deg)
    if s.isdigit():
        return ring_views(int(s), radius=radius, fov_deg=fov_deg)
    kind, sep, arg = s.partition(":")
    try:
        if kind == "ring" and sep:
            count, at, elev = arg.partition("@")
            return ring_views(int(count), float(elev) if at else 20.0, radius=radius, fov_deg=fov_deg)
        if kind == "hammersley" and sep:
            return hammersley_views(int(arg), radius=radius, fov_deg=fov_deg)
    except ValueError as e:
        raise ValueError(f"bad view spec {spec!r}: {e}; {help_}") from None
    raise ValueError(f"unknown view spec {spec!r}; {help_}")


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """3x3 pinhole matrix in pixels for a horizontal field of view ``fov_deg`` (square pixels)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    fx = 0.5 * width / math.tan(0.5 * math.radians(float(fov_deg)))
    return np.array([[fx, 0.0, 0.5 * width], [0.0, fx, 0.5 * height], [0.0, 0.0, 1.0]])


def transforms_json(cameras: Sequence[Camera], fov_deg: float, width: int, height: int, file_names: Sequence[str]) -> dict:
    """A NeRF ``transforms.json`` dict: ``camera_angle_x`` (radians, horizontal) and per-frame
    ``file_path`` / ``transform_matrix`` (camera-to-world, Blender/NeRF convention). Also carries
    the pinhole ``fl_x, fl_y, cx, cy, w, h`` fields nerfstudio/instant-ngp read, and each frame's
    camera ``name``."""
    if len(cameras) != len(file_names):
        raise ValueError(f"{len(cameras)} cameras but {len(file_names)} file names")
    k = intrinsics(fov_deg, width, height)
    return {
        "camera_angle_x": math.radians(float(fov_deg)),
        "fl_x": float(k[0, 0]),
        "fl_y": float(k[1, 1]),
        "cx": float(k[0, 2]),
        "cy": float(k[1, 2]),
        "w": int(width),
        "h": int(height),
        "frames": [
            {"file_path": str(f), "transform_matrix": c.c2w().tolist(), "name": c.name}
            for c, f in zip(cameras, file_names)
        ],
    }
