"""ar3d.headless.views (numpy only) and ar3d.headless.render (real bpy, CPU, tiny images).

The layout tests need only numpy. Everything that renders asks for the ``renderer`` fixture,
which skips cleanly (pytest.importorskip) where bpy is not installed. One Renderer serves the
whole module: bpy has one scene per process.
"""

import json
import math
import re
import sys

import numpy as np
import pytest
import trimesh

from ar3d.core.errors import Ar3dError
from ar3d.core.mesh import MeshFileError, OptionalDependencyError, export_mesh
from ar3d.headless import render as render_mod
from ar3d.headless.mesh_input import MeshImportError, normalize_mesh
from ar3d.headless.render import RenderError
from ar3d.headless.render_config import RenderConfig
from ar3d.headless.render_result import grid_image
from ar3d.headless.views import (
    SIX_VIEW_NAMES,
    Camera,
    hammersley_views,
    intrinsics,
    parse_views,
    ring_views,
    six_views,
    transforms_json,
)

FRONT = [Camera(position=(0.0, -2.0, 0.0), fov_deg=40.0, name="front")]


def unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def project(point, cam: Camera, size: int) -> np.ndarray:
    """Pixel (x right, y down) of a world point under the pinhole model of views.intrinsics."""
    p = cam.w2c() @ np.append(point, 1.0)
    x, y, z = p[:3]
    k = intrinsics(cam.fov_deg, size, size)
    return np.array([k[0, 0] * x / -z + k[0, 2], k[1, 1] * -y / -z + k[1, 2]])


def mask_centroid(mask: np.ndarray) -> np.ndarray:
    """(x, y) centroid in pixel units, pixel i centred at i + 0.5."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def bumpy_box() -> trimesh.Trimesh:
    """A unit cube with a big bump on +X and a small one on -Y (the front): no mirror symmetry
    across the X or Y planes, so every view of the six-view layout shows a different picture."""
    cube = trimesh.creation.box((1.0, 1.0, 1.0))
    bump_x = trimesh.creation.box((0.5, 0.5, 0.5))
    bump_x.apply_translation((0.75, 0.0, 0.0))
    bump_front = trimesh.creation.box((0.3, 0.3, 0.3))
    bump_front.apply_translation((0.0, -0.65, 0.0))
    return trimesh.util.concatenate([cube, bump_x, bump_front])


# ---- views: layouts in numpy ---------------------------------------------------------------


def test_six_views_are_the_documented_octahedron():
    cams = six_views(radius=2.0, fov_deg=40.0)
    assert [c.name for c in cams] == list(SIX_VIEW_NAMES)
    positions = np.array([c.position for c in cams])
    expected = 2.0 * np.array([[0, -1, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]])
    np.testing.assert_allclose(positions, expected, atol=1e-12)
    # exactly uniform: every view's nearest neighbours are 90° away, its antipode 180°
    cosines = unit(positions) @ unit(positions).T
    assert np.allclose(np.sort(cosines, axis=1)[:, :5], [[-1, 0, 0, 0, 0]] * 6, atol=1e-12)
    # image right (c2w column 0) and image up (column 1) as the table in views says
    right = {"front": (1, 0, 0), "right": (0, 1, 0), "back": (-1, 0, 0), "left": (0, -1, 0), "top": (1, 0, 0), "bottom": (1, 0, 0)}
    up = {"front": (0, 0, 1), "right": (0, 0, 1), "back": (0, 0, 1), "left": (0, 0, 1), "top": (0, 1, 0), "bottom": (0, -1, 0)}
    for cam in cams:
        m = cam.c2w()
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
        np.testing.assert_allclose(m[:3, 0], right[cam.name], atol=1e-12)
        np.testing.assert_allclose(m[:3, 1], up[cam.name], atol=1e-12)
        np.testing.assert_allclose(-m[:3, 2], unit(-np.asarray(cam.position)), atol=1e-12)  # looks at the origin
        np.testing.assert_allclose(m[:3, 3], cam.position)
        np.testing.assert_allclose(cam.w2c() @ m, np.eye(4), atol=1e-12)
        assert cam.fov_deg == 40.0


def test_ring_views_start_at_the_front_and_turn_towards_the_right():
    cams = ring_views(8, elevation_deg=30.0, radius=3.0)
    assert len(cams) == 8
    pos = np.array([c.position for c in cams])
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 3.0)
    np.testing.assert_allclose(np.degrees(np.arcsin(pos[:, 2] / 3.0)), 30.0)
    azimuth = np.degrees(np.arctan2(pos[:, 0], -pos[:, 1])) % 360
    np.testing.assert_allclose(azimuth, np.arange(8) * 45.0, atol=1e-9)
    # a level 4-ring is the first four of the six views, matrices included
    for a, b in zip(ring_views(4, elevation_deg=0.0), six_views()[:4]):
        np.testing.assert_allclose(a.c2w(), b.c2w(), atol=1e-12)
    # straight above still gives a valid, right-handed camera
    top = ring_views(1, elevation_deg=90.0)[0]
    np.testing.assert_allclose(top.c2w()[:3, 2], (0, 0, 1), atol=1e-12)


def test_hammersley_views_follow_the_trellis_distribution():
    n = 200
    cams = hammersley_views(n, radius=2.0)
    pos = np.array([c.position for c in cams])
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 2.0)
    assert len({tuple(np.round(p, 9)) for p in pos}) == n
    # a quarter of the views below the equator, three quarters above it
    assert np.mean(pos[:, 2] < 0) == pytest.approx(0.25, abs=0.01)
    # heights area-uniform within each part: z/r = 2u' - 1 is evenly spread
    upper = np.sort(pos[pos[:, 2] >= 0, 2] / 2.0)
    np.testing.assert_allclose(upper, np.linspace(0, 1, len(upper), endpoint=False) + 0.5 / len(upper), atol=0.01)
    # the yaw is the base-2 radical inverse of the index: 0, 1/2, 1/4, 3/4 turn, ...
    yaw = np.arctan2(pos[1:4, 1], pos[1:4, 0]) % (2 * np.pi)
    np.testing.assert_allclose(yaw, [np.pi, np.pi / 2, 3 * np.pi / 2], atol=1e-9)
    for cam in cams:
        np.testing.assert_allclose(cam.c2w()[:3, 3] - 2.0 * cam.c2w()[:3, 2], 0.0, atol=1e-9)  # looks at 0
    shifted = hammersley_views(n, offset=(0.5, 0.25))
    assert not np.allclose([c.position for c in shifted], pos)
    assert [c.position for c in hammersley_views(n)] == [c.position for c in cams]


def test_parse_views_specs():
    assert [c.name for c in parse_views("six", 2.0, 40.0)] == list(SIX_VIEW_NAMES)
    ring = parse_views("ring:4@30", 1.5, 30.0)
    assert len(ring) == 4 and ring[0].fov_deg == 30.0
    assert ring[0].position[2] == pytest.approx(1.5 * math.sin(math.radians(30)))
    assert len(parse_views("ring:8", 2.0, 40.0)) == 8
    assert parse_views("ring:8", 2.0, 40.0)[0].position[2] == pytest.approx(2.0 * math.sin(math.radians(20)))
    assert len(parse_views("hammersley:150", 2.0, 40.0)) == 150
    assert len(parse_views(12, 2.0, 40.0)) == 12
    assert parse_views(FRONT, 9.0, 10.0) == FRONT
    for bad in ("seven", "ring:", "ring:x", "hammersley:0", 0, "ring:4@up", True):
        with pytest.raises(ValueError):
            parse_views(bad, 2.0, 40.0)


def test_intrinsics_and_transforms_json_round_trip():
    k = intrinsics(40.0, 200, 100)
    f = 100.0 / math.tan(math.radians(20.0))
    np.testing.assert_allclose(k, [[f, 0, 100], [0, f, 50], [0, 0, 1]])
    cams = six_views()
    names = [f"view_{i:03d}.png" for i in range(6)]
    data = json.loads(json.dumps(transforms_json(cams, 40.0, 64, 64, names)))
    assert data["camera_angle_x"] == pytest.approx(math.radians(40.0))
    assert (data["w"], data["h"], data["cx"]) == (64, 64, 32.0)
    assert [fr["file_path"] for fr in data["frames"]] == names
    for fr, cam in zip(data["frames"], cams):
        np.testing.assert_allclose(fr["transform_matrix"], cam.c2w())
    # the NeRF reading of the json: focal = 0.5 W / tan(camera_angle_x / 2) == intrinsics' fx
    assert 0.5 * 64 / math.tan(data["camera_angle_x"] / 2) == pytest.approx(intrinsics(40.0, 64, 64)[0, 0])
    with pytest.raises(ValueError):
        transforms_json(cams, 40.0, 64, 64, names[:2])


def test_grid_image_tiles_row_major():
    images = np.arange(6 * 2 * 3 * 4, dtype=np.uint8).reshape(6, 2, 3, 4)
    g = grid_image(images)
    assert g.shape == (2 * 2, 3 * 3, 4)  # 6 views: 3 columns, 2 rows
    for i in range(6):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(g[r * 2 : r * 2 + 2, c * 3 : c * 3 + 3], images[i])
    g4 = grid_image(images[:5], cols=2)  # 3 rows, the last cell empty
    assert g4.shape == (6, 6, 4) and not g4[4:, 3:].any()
    assert grid_image(images[:, :, :, 0] > 10).shape == (4, 9)  # masks tile too
    assert grid_image(np.zeros((8, 2, 2, 4), np.uint8)).shape == (4, 8, 4)


def test_normalize_mesh_centres_the_bbox_and_scales_the_longest_side_to_one():
    box = trimesh.creation.box((4.0, 2.0, 1.0))
    box.apply_translation((10.0, -3.0, 7.0))
    out, scale, offset = normalize_mesh(box)
    assert scale == pytest.approx(0.25)
    np.testing.assert_allclose(offset, -0.25 * np.array([10.0, -3.0, 7.0]))
    np.testing.assert_allclose(out.bounds, [[-0.5, -0.25, -0.125], [0.5, 0.25, 0.125]], atol=1e-12)
    np.testing.assert_allclose(out.vertices, box.vertices * scale + offset)
    assert box.bounds[0, 0] == pytest.approx(8.0)  # input untouched
    with pytest.raises(ValueError):
        normalize_mesh(trimesh.Trimesh(vertices=np.zeros((3, 3)), faces=[[0, 1, 2]], process=False))


def test_render_config_validation_needs_no_bpy():
    RenderConfig().validate()
    for bad in (
        dict(engine="unreal"),
        dict(passes=("normal",)),  # Workbench has no normal pass
        dict(passes="depth"),
        dict(background="pink"),
        dict(background=(1.0, 2.0, 0.0)),
        dict(device="tpu"),
        dict(views="ring:"),
        dict(lighting="moody"),
        dict(workbench_aa="7"),
    ):
        with pytest.raises(ValueError):
            RenderConfig(**bad).validate()


def test_missing_bpy_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "bpy", None)
    with pytest.raises(OptionalDependencyError, match=r"ar3d\[render\]"):
        render_mod._import_bpy()


# ---- rendering with bpy -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer():
    pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")
    r = render_mod.Renderer(RenderConfig(resolution=64))
    yield r
    r.close()


@pytest.fixture(scope="module")
def six(renderer):
    """The bumpy box from the six default views, Workbench 64², not normalised (so that the
    cube, not the bounding box, stays centred on the view axes) and from radius 3 to fit."""
    return renderer.render(bumpy_box(), RenderConfig(engine="workbench", resolution=64, views="six", radius=3.0, normalize=False))


def test_sphere_silhouette_matches_the_pinhole_model(renderer):
    size = 128
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=3.0)
    sphere.apply_translation((10.0, -5.0, 2.0))  # normalisation must bring it back to r = 0.5 at 0
    off_axis = Camera(position=(0.0, -2.0, 0.0), target=(0.2, 0.0, 0.0), fov_deg=40.0)
    res = renderer.render(sphere, RenderConfig(engine="workbench", resolution=size, views=FRONT + [off_axis]))
    assert res.scale == pytest.approx(1 / 6)
    np.testing.assert_allclose(res.offset, -np.array([10.0, -5.0, 2.0]) / 6)
    assert res.images.shape == (2, size, size, 4) and res.images.dtype == np.uint8
    assert res.mask.shape == (2, size, size) and res.mask.dtype == bool
    np.testing.assert_array_equal(res.mask, res.images[..., 3] >= 128)

    f = intrinsics(40.0, size, size)[0, 0]
    r, d = 0.5, 2.0
    alpha = math.asin(r / d)  # the silhouette cone's half angle
    radius_px = f * math.tan(alpha)
    assert res.mask[0].sum() == pytest.approx(math.pi * radius_px**2, rel=0.02)
    np.testing.assert_allclose(mask_centroid(res.mask[0]), [size / 2, size / 2], atol=0.25)

    # off axis: the sphere's centre is theta to the left of the view axis; its silhouette spans
    # tan(-theta ± alpha) horizontally (exact for a pinhole), the centre row being its widest.
    theta = math.atan2(0.2, 2.0)
    lo, hi = (size / 2 + f * math.tan(-theta - alpha), size / 2 + f * math.tan(-theta + alpha))
    cy = int(round(project((0.0, 0.0, 0.0), off_axis, size)[1]))
    cols = np.nonzero(res.mask[1, cy])[0]
    assert cols.min() == pytest.approx(lo, abs=1.0)
    assert cols.max() + 1 == pytest.approx(hi, abs=1.0)
    assert mask_centroid(res.mask[1])[0] == pytest.approx((lo + hi) / 2, abs=0.5)


def test_six_views_show_the_bumps_where_the_layout_says(six):
    size = 64
    c = size / 2
    dx, dy = np.array([mask_centroid(m) for m in six.mask]).T - c
    sides = dict(zip(SIX_VIEW_NAMES, zip(dx, dy)))
    # x: + means the right of the image; y: + means down the image
    assert sides["front"][0] > 1.5 and abs(sides["front"][1]) < 0.5  # +X bump on the right
    assert sides["back"][0] < -1.5  # +X bump on the left
    assert sides["right"][0] < -0.5  # front (-Y) bump on the left: +Y is on the right
    assert sides["left"][0] > 0.5  # front bump on the right
    assert sides["top"][0] > 1.5 and sides["top"][1] > 0.5  # +X right, front at the bottom
    assert sides["bottom"][0] > 1.5 and sides["bottom"][1] < -0.5  # +X right, front at the top
    assert len({m.tobytes() for m in six.mask}) == 6
    assert six.engine == "workbench" and six.device
    np.testing.assert_allclose(six.extrinsics, [cam.c2w() for cam in six_views(radius=3.0)])
    assert six.scale == 1.0 and not six.offset.any()
    np.testing.assert_allclose(six.intrinsics, intrinsics(40.0, size, size))


def test_write_pngs_grid_and_transforms(six, tmp_path):
    from PIL import Image

    paths = six.write(tmp_path / "out")
    names = [p.name for p in paths]
    assert names == [f"view_{i:03d}.png" for i in range(6)] + ["grid.png", "transforms.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # no temp leftovers
    for i in range(6):
        np.testing.assert_array_equal(np.array(Image.open(paths[i])), six.images[i])
    grid = np.array(Image.open(tmp_path / "out" / "grid.png"))
    assert grid.shape == (2 * 64, 3 * 64, 4)
    np.testing.assert_array_equal(grid, grid_image(six.images))
    np.testing.assert_array_equal(grid[64:, 64:128], six.images[4])  # the top view, row 2 column 2
    data = json.loads((tmp_path / "out" / "transforms.json").read_text())
    assert data["camera_angle_x"] == pytest.approx(math.radians(40.0))
    frames = data["frames"]
    assert [fr["file_path"] for fr in frames] == names[:6]
    np.testing.assert_allclose([fr["transform_matrix"] for fr in frames], six.extrinsics)
    for fr in frames:
        assert (tmp_path / "out" / fr["file_path"]).is_file()


def test_workbench_is_deterministic_and_backgrounds_composite(renderer):
    mesh = bumpy_box()
    cfg = RenderConfig(engine="workbench", resolution=48, views="ring:2@20")
    a = renderer.render(mesh, cfg)
    b = renderer.render(mesh, cfg)
    np.testing.assert_array_equal(a.images, b.images)
    assert 0 < a.mask.mean() < 1
    white = renderer.render(mesh, RenderConfig(engine="workbench", resolution=48, views="ring:2@20", background="white"))
    np.testing.assert_array_equal(white.alpha, a.alpha)  # coverage is kept apart
    assert (white.images[..., 3] == 255).all()
    assert (white.images[~white.mask.any(0)[None].repeat(2, 0) & (white.alpha == 0)][:, :3] == 255).all()
    np.testing.assert_array_equal(white.images[a.alpha == 255], a.images[a.alpha == 255])


def test_cycles_cpu_is_deterministic_and_passes_are_sane(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    size = 64
    cfg = RenderConfig(engine="cycles", resolution=size, samples=4, seed=7, device="auto", views=FRONT, passes=("depth", "normal"))
    a = renderer.render(sphere, cfg)
    b = renderer.render(sphere, cfg)
    assert a.engine == "cycles"
    assert a.device == "CPU" or re.match(r"(OPTIX|CUDA|HIP|METAL|ONEAPI): ", a.device)
    if a.device == "CPU":  # bit-reproducible on the CPU
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.depth, b.depth)
    other_seed = renderer.render(sphere, RenderConfig(**{**cfg.__dict__, "seed": 8, "passes": ()}))
    assert not np.array_equal(other_seed.images, a.images)
    assert other_seed.depth is None and other_seed.normal is None

    depth, normal, mask = a.depth[0], a.normal[0], a.mask[0]
    assert depth.dtype == np.float32 and normal.shape == (size, size, 3)
    c = size // 2
    # the centre pixel looks straight at the sphere: depth = camera distance - r
    assert depth[c - 1 : c + 1, c - 1 : c + 1].mean() == pytest.approx(2.0 - 0.5, abs=0.005)
    assert np.isinf(depth[0, 0]) and not normal[0, 0].any()
    np.testing.assert_allclose(normal[c, c], (0, -1, 0), atol=0.05)
    assert normal[c, 10][0] < -0.5  # the left of the image sees the sphere's -X side
    assert normal[10, c][2] > 0.5  # the top of the image sees its +Z side
    np.testing.assert_allclose(np.linalg.norm(normal[mask], axis=-1), 1.0, atol=1e-3)
    # back-project every interior pixel with intrinsics + extrinsics + depth: all on the sphere
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    inner[[0, -1], :] = inner[:, [0, -1]] = False
    ys, xs = np.nonzero(inner)
    k = a.intrinsics
    z = depth[ys, xs]
    cam_pts = np.stack([(xs + 0.5 - k[0, 2]) / k[0, 0] * z, -(ys + 0.5 - k[1, 2]) / k[1, 1] * z, -z, np.ones_like(z)])
    world = (a.extrinsics[0] @ cam_pts)[:3].T
    np.testing.assert_allclose(np.linalg.norm(world, axis=1), 0.5, atol=0.01)
    # the normal pass agrees with the geometry: on a sphere it is the position's direction
    radial = world / np.linalg.norm(world, axis=1, keepdims=True)
    cos = np.sum(radial * normal[ys, xs], axis=1)
    assert np.median(cos) > 0.99


def test_cycles_gpu_demand_fails_clearly_without_one(renderer):
    gpu = renderer._probe_gpu()
    if gpu is not None:
        pytest.skip(f"this machine has a Cycles GPU ({gpu[0]})")
    with pytest.raises(RenderError, match="no GPU"):
        renderer.render(bumpy_box(), RenderConfig(engine="cycles", resolution=16, samples=1, views=FRONT, device="gpu"))


def test_eevee_renders_one_small_view(renderer):
    """The one Eevee test (software GL: ~15-20 s, mostly shader compilation)."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    cfg = RenderConfig(engine="eevee", resolution=64, samples=1, views=FRONT, passes=("depth",))
    try:
        res = renderer.render(sphere, cfg)
    except RenderError as e:
        if re.search(r"GPU|OpenGL|EGL|context|display", str(e), re.I):
            pytest.skip(f"Eevee cannot render headless here (no usable GPU/OpenGL context): {e}")
        raise
    assert res.engine == "eevee"
    f = res.intrinsics[0, 0]
    assert res.mask[0].sum() == pytest.approx(math.pi * (f * math.tan(math.asin(0.25))) ** 2, rel=0.05)
    np.testing.assert_allclose(mask_centroid(res.mask[0]), [32, 32], atol=0.5)
    assert res.depth[0, 31:33, 31:33].mean() == pytest.approx(1.5, abs=0.01)
    assert np.isinf(res.depth[0, 0, 0])
    lit = res.images[0][res.mask[0]][:, :3]
    assert 20 < lit.mean() < 250  # lit by the rig, neither black nor blown out


def test_mesh_files_and_unreadable_files(renderer, tmp_path):
    mesh = bumpy_box()
    cfg = RenderConfig(engine="workbench", resolution=32, views="ring:3@20")
    direct = renderer.render(mesh, cfg)
    for fmt in ("glb", "ply"):  # y-up and z-up files both come back in ar3d's z-up frame
        path = export_mesh(mesh, tmp_path / f"bumpy.{fmt}")
        np.testing.assert_array_equal(renderer.render(path, cfg).mask, direct.mask)
        np.testing.assert_array_equal(renderer.render(str(path), cfg).mask, direct.mask)

    garbage = tmp_path / "broken.glb"
    garbage.write_bytes(b"this is not a glTF file")
    for bad in (garbage, tmp_path / "missing.obj", tmp_path / "notes.txt"):
        with pytest.raises(MeshImportError) as info:
            renderer.render(bad, cfg)
        assert isinstance(info.value, Ar3dError) and isinstance(info.value, MeshFileError)
        assert bad.name in str(info.value) or "format" in str(info.value)
    with pytest.raises(MeshImportError, match="no faces"):
        renderer.render(trimesh.Trimesh(vertices=np.eye(3), faces=np.zeros((0, 3), int)), cfg)


def test_reset_keeps_blender_data_flat_and_output_quiet(renderer, capfd):
    import bpy

    mesh = trimesh.creation.icosphere(subdivisions=3)
    cfg = RenderConfig(engine="workbench", resolution=16, views=FRONT)

    def counts():
        return {name: len(getattr(bpy.data, name)) for name in ("meshes", "materials", "objects", "images", "node_groups", "lights", "cameras", "worlds")}

    renderer.render(mesh, cfg)
    renderer.render(mesh, RenderConfig(engine="cycles", resolution=16, samples=1, views=FRONT, passes=("depth", "normal")))
    before = counts()
    for _ in range(4):
        renderer.render(mesh, cfg)
        renderer.render(mesh, RenderConfig(engine="cycles", resolution=16, samples=1, views=FRONT, passes=("depth",)))
        assert counts() == before
    assert not any(o.name.startswith("ar3d_job") for o in bpy.data.objects)
    renderer.reset()  # idempotent
    assert counts() == before
    out, err = capfd.readouterr()
    assert "Fra:" not in out and "Saved:" not in out + err


def test_a_superseded_renderer_refuses_instead_of_crashing(renderer, monkeypatch):
    # a newer Renderer in the same process resets bpy's scene; the old one must not touch it
    monkeypatch.setattr(render_mod.Renderer, "_owner", None)
    with pytest.raises(RenderError, match="taken over"):
        renderer.render(bumpy_box(), RenderConfig(engine="workbench", resolution=16, views=FRONT))
