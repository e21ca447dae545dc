"""ar3d.core.mesh: occupancy <-> mesh, the public voxelisation convention, and file axes."""

import importlib.util
import os
import warnings

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from ar3d.core.errors import Ar3dError
from ar3d.core.mesh import (
    SUPPORTED_FORMATS,
    DegenerateOccupancyError,
    MeshConfig,
    MeshFileError,
    export_mesh,
    load_mesh,
    mesh_to_occupancy,
    normalize_to_unit_cube,
    occupancy_to_mesh,
)

R = 64
RAW = MeshConfig(smoothing_iterations=0)  # exact vertex positions, for coordinate checks


def centres(res=R):
    """Voxel-centre coordinates [R,R,R,3] under the convention (i + 0.5)/R - 0.5."""
    return (np.indices((res,) * 3).transpose(1, 2, 3, 0) + 0.5) / res - 0.5


def box_grid(lo, hi, res=R, shell=True):
    """Voxels lo..hi inclusive per axis; the box's outer layer only when shell."""
    g = np.zeros((res,) * 3, bool)
    g[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = True
    return g & ~ndimage.binary_erosion(g) if shell else g


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def assert_good_mesh(m):
    assert len(m.faces) > 0
    assert m.is_watertight and m.is_winding_consistent
    assert m.volume > 0  # outward normals
    assert (m.bounds >= -0.5).all() and (m.bounds <= 0.5).all()


# ---- occupancy -> mesh -----------------------------------------------------------------------


def test_sphere_shell_gives_watertight_mesh_with_analytic_volume():
    radius = 0.4
    shell = np.abs(np.linalg.norm(centres(), axis=-1) - radius) <= 0.5 / R
    for config in (MeshConfig(), RAW):
        m = occupancy_to_mesh(shell, config)
        assert_good_mesh(m)
        assert m.volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.05)
        assert m.bounds == pytest.approx(np.array([[-radius] * 3, [radius] * 3]), abs=1.5 / R)


def test_vertices_follow_the_voxel_centre_convention():
    lo, hi = (10, 20, 5), (40, 30, 60)
    for offset in (0.1, 0.5):
        m = occupancy_to_mesh(box_grid(lo, hi), MeshConfig(smoothing_iterations=0, surface_offset=offset))
        # the surface lies `offset` voxels outside the centres of the outermost voxels
        expect = np.array([[(i + 0.5 - offset) / R - 0.5 for i in lo], [(i + 0.5 + offset) / R - 0.5 for i in hi]])
        assert m.bounds == pytest.approx(expect, abs=1e-6)  # marching cubes works in float32
        side = (np.array(hi) - lo + 2 * offset) / R
        assert m.volume == pytest.approx(np.prod(side), rel=0.02)  # only the edges are chamfered


def test_solid_and_shell_give_the_same_mesh():
    lo, hi = (8, 12, 16), (50, 40, 60)
    shell = occupancy_to_mesh(box_grid(lo, hi, shell=True))
    solid = occupancy_to_mesh(box_grid(lo, hi, shell=False))
    assert np.array_equal(shell.vertices, solid.vertices) and np.array_equal(shell.faces, solid.faces)


def test_accepts_uint8_float01_and_torch_with_batch_dim():
    grid = box_grid((5, 5, 5), (30, 40, 50))
    ref = occupancy_to_mesh(grid, RAW)
    for other in (grid.astype(np.uint8), grid.astype(np.float32)[None]):
        assert np.array_equal(occupancy_to_mesh(other, RAW).vertices, ref.vertices)
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(grid)[None]
    assert np.array_equal(occupancy_to_mesh(t, RAW).vertices, ref.vertices)
    with pytest.raises(TypeError, match="logits > 0"):
        occupancy_to_mesh(torch.randn(R, R, R))
    with pytest.raises(ValueError, match="cubic"):
        occupancy_to_mesh(np.ones((4, 4, 5), bool))


def test_object_touching_the_grid_border_is_closed():
    m = occupancy_to_mesh(box_grid((0, 0, 0), (63, 63, 63)))
    assert_good_mesh(m)
    assert m.bounds == pytest.approx(np.array([[-0.5] * 3, [0.5] * 3]), abs=1 / R)


def test_pinholes_are_sealed_before_filling():
    grid = box_grid((10, 10, 10), (50, 50, 50))
    grid[30, 30, 10] = grid[10, 20, 20] = False  # two holes through the shell
    m = occupancy_to_mesh(grid, RAW)
    assert_good_mesh(m)
    assert m.volume == pytest.approx((40.2 / R) ** 3, rel=0.03)  # filled, not a double wall
    leaky = occupancy_to_mesh(grid, MeshConfig(closing_iterations=0, seal_iterations=0, smoothing_iterations=0))
    assert leaky.volume < 0.3 * m.volume  # without the closing the fill leaks: only the wall is left


def _genus(solid):
    from ar3d.core.topology import topology

    return topology(solid).genus


def test_a_perforated_hollow_shell_meshes_as_a_solid():
    """Issue #21: decoded shells often leak through gaps wider than the 1-step closing seals
    (2-3 voxels); the fill then fails and a hollow double wall with tunnels is meshed. The
    wider seal fills the interior and plugs the gaps; without it the solid is only the wall."""
    from ar3d.core.mesh import mesh_solid

    grid = box_grid((10, 10, 10), (50, 50, 50))
    for y, z in ((20, 20), (30, 40), (42, 25)):  # three 3x3 gaps through the top wall
        grid[50, y : y + 3, z : z + 3] = False
    grid[10, 30:33, 30:33] = False  # and one through the bottom
    solid = mesh_solid(grid)
    assert solid.sum() > 0.99 * 41**3 and _genus(solid) == 0
    leaky = mesh_solid(grid, MeshConfig(seal_iterations=0))
    assert leaky.sum() < 0.3 * 41**3 and _genus(leaky) > 0
    m = occupancy_to_mesh(grid, RAW)
    assert_good_mesh(m)
    with pytest.raises(ValueError, match="seal_iterations"):
        MeshConfig(seal_iterations=-1)


def test_the_seal_bridges_no_opening_the_object_has():
    """A ladder's 3-voxel gaps between rungs and a window through a solid wall stay open: they
    open into no leaking cavity."""
    from ar3d.core.mesh import mesh_solid

    ladder = np.zeros((R, R, R), bool)
    ladder[20:23, 30:33, 5:60] = ladder[40:43, 30:33, 5:60] = True  # two side rails
    for z in range(8, 58, 5):  # rungs 2 voxels thick, 3-voxel gaps
        ladder[20:43, 30:33, z : z + 2] = True
    assert _genus(mesh_solid(ladder)) == _genus(mesh_solid(ladder, MeshConfig(seal_iterations=0))) == 9
    wall = box_grid((10, 10, 10), (50, 20, 50), shell=False)
    wall[28:32, 10:21, 28:32] = False  # a 4x4 window through a solid slab
    assert _genus(mesh_solid(wall)) == 1


# ---- degenerate grids -------------------------------------------------------------------------


def test_empty_grid_is_a_clear_error():
    with pytest.raises(DegenerateOccupancyError, match="empty.*resample"):
        occupancy_to_mesh(np.zeros((R, R, R), bool))


def test_full_grid_is_a_clear_error():
    with pytest.raises(DegenerateOccupancyError, match="100% of the grid is occupied"):
        occupancy_to_mesh(np.ones((R, R, R), bool))
    noisy = np.random.default_rng(0).random((R, R, R)) < 0.95
    with pytest.raises(DegenerateOccupancyError, match="occupied"):
        occupancy_to_mesh(noisy)


def test_dust_only_is_a_clear_error():
    dust = np.zeros((R, R, R), bool)
    dust[::8, ::8, ::8] = True  # 512 isolated voxels
    with pytest.raises(DegenerateOccupancyError, match="only dust: 512"):
        occupancy_to_mesh(dust)
    assert issubclass(DegenerateOccupancyError, Ar3dError) and issubclass(DegenerateOccupancyError, ValueError)


def test_dust_next_to_an_object_is_removed():
    grid = box_grid((10, 10, 10), (40, 40, 40))
    dusty = grid.copy()
    dusty[50:52, 50, 50] = dusty[60, 5, 5] = dusty[2, 60, 30] = True
    clean, cleaned = occupancy_to_mesh(grid, RAW), occupancy_to_mesh(dusty, RAW)
    assert np.array_equal(clean.vertices, cleaned.vertices)
    assert len(cleaned.split(only_watertight=False)) == 1


def test_keep_largest_only():
    grid = box_grid((2, 2, 2), (30, 30, 30)) | box_grid((40, 40, 40), (50, 50, 50))
    assert len(occupancy_to_mesh(grid, RAW).split(only_watertight=False)) == 2
    big = occupancy_to_mesh(grid, MeshConfig(keep_largest_only=True, smoothing_iterations=0))
    assert len(big.split(only_watertight=False)) == 1 and big.bounds[1, 0] < 0


def test_fragments_small_relative_to_the_object_are_removed():
    """Issue #21: a crumb of 5³ voxels (well above the 8-voxel dust limit) floating beside a
    big object is debris; a second object of comparable size is kept."""
    grid = box_grid((5, 5, 5), (45, 45, 45))  # ~9600 shell voxels
    crumbs = grid.copy()
    for x in (48, 57):
        crumbs[x : x + 5, 50:55, 50:55] = True  # 125 voxels each: 1.3% of the object
    assert len(occupancy_to_mesh(crumbs, RAW).split(only_watertight=False)) == 1
    keep_all = MeshConfig(min_fragment_fraction=0.0, smoothing_iterations=0)
    assert len(occupancy_to_mesh(crumbs, keep_all).split(only_watertight=False)) == 3
    two = grid | box_grid((50, 50, 50), (62, 62, 62))  # ~860 voxels: 9% of the big one
    assert len(occupancy_to_mesh(two, RAW).split(only_watertight=False)) == 2
    with pytest.raises(ValueError, match="min_fragment_fraction"):
        MeshConfig(min_fragment_fraction=1.0)


def test_mesh_solid_is_what_gets_meshed():
    from ar3d.core.mesh import mesh_solid

    shell = box_grid((10, 10, 10), (40, 40, 40))
    solid = mesh_solid(shell)
    assert solid.shape == shell.shape and solid[25, 25, 25] and solid.sum() == 31**3
    m = occupancy_to_mesh(shell, RAW)
    assert abs(m.volume - solid.sum() / R**3) < 0.1 * solid.sum() / R**3  # the surface sits 0.4 voxel inside


def test_smoothing_levels():
    from ar3d.core.mesh import SMOOTHING_LEVELS, smoothing_passes

    assert smoothing_passes("medium") == MeshConfig().smoothing_iterations  # today's default
    assert [smoothing_passes(k) for k in ("none", "low", "medium", "high")] == sorted(SMOOTHING_LEVELS.values())
    assert smoothing_passes("HIGH") == SMOOTHING_LEVELS["high"] and smoothing_passes(3) == 3
    with pytest.raises(ValueError, match="none, low, medium, high"):
        smoothing_passes("extreme")
    ball = np.abs(np.linalg.norm(centres(), axis=-1) - 0.3) <= 0.5 / R  # voxel steps to smooth
    meshes = {k: occupancy_to_mesh(ball, MeshConfig(smoothing_iterations=smoothing_passes(k))) for k in SMOOTHING_LEVELS}
    moved = [np.abs(meshes[k].vertices - meshes["none"].vertices).mean() for k in ("low", "medium", "high")]
    assert 0 < moved[0] < moved[1] < moved[2] and all(m.is_watertight for m in meshes.values())


def test_bad_config_values_are_refused():
    with pytest.raises(ValueError, match="surface_offset"):
        MeshConfig(surface_offset=0.0)
    with pytest.raises(ValueError, match="max_fill_fraction"):
        MeshConfig(max_fill_fraction=1.5)


def test_decimation_needs_its_backend_and_keeps_the_mesh_closed():
    grid = mesh_to_occupancy(trimesh.creation.torus(0.35, 0.12))
    config = MeshConfig(decimate_to_faces=2000)
    if importlib.util.find_spec("fast_simplification") is None:
        with pytest.raises(ImportError, match="pip install fast-simplification") as e:
            occupancy_to_mesh(grid, config)
        assert isinstance(e.value, Ar3dError)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = occupancy_to_mesh(grid, config)
        assert_good_mesh(m)


# ---- mesh -> occupancy ------------------------------------------------------------------------


def test_box_voxelises_to_the_expected_shell():
    grid = mesh_to_occupancy(trimesh.creation.box((1.0, 0.6, 0.3)))
    assert grid.dtype == bool and grid.shape == (R, R, R)
    # longest axis -> exactly 64 voxels; the others: floor((±e/2 + 0.5) * 64)
    expect = box_grid((0, 12, 22), (63, 51, 41))
    assert np.array_equal(grid, expect)


def test_normalisation_is_one_scalar_min_max():
    box = trimesh.creation.box(bounds=[[0, 0, 0], [1, 1, 3]])
    n = normalize_to_unit_cube(box)
    assert n.bounds == pytest.approx(np.array([[-0.5, -0.5, -0.5], [-1 / 6, -1 / 6, 0.5]]))
    assert box.bounds[1, 2] == 3  # input untouched
    grid = mesh_to_occupancy(box)
    occupied = np.argwhere(grid)
    assert occupied.min(0).tolist() == [0, 0, 0] and occupied.max(0).tolist() == [21, 21, 63]
    with pytest.raises(ValueError, match="zero"):
        normalize_to_unit_cube(trimesh.Trimesh([[0, 0, 0]] * 3, [[0, 1, 2]]))


@pytest.mark.parametrize("mesh", [trimesh.creation.icosphere(3, 0.5), trimesh.creation.torus(0.35, 0.12)])
def test_closed_surfaces_give_closed_shells(mesh):
    mesh = mesh.copy()
    mesh.apply_transform(trimesh.transformations.random_rotation_matrix(seed=1))
    shell = mesh_to_occupancy(mesh)
    assert ndimage.label(shell, np.ones((3, 3, 3)))[1] == 1  # one 26-connected shell
    empty_parts = ndimage.label(~shell)[1]  # 6-connected: a hole would merge inside and outside
    assert empty_parts == 2


def test_thin_tilted_plate_is_a_hole_free_sheet():
    # A zero-thickness sheet z = 0.3x + 0.2y across the whole cube: it must split the empty
    # voxels into exactly two 6-connected parts (above and below), i.e. have no pinholes.
    xy = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    verts = np.column_stack([xy, xy @ [0.3, 0.2]])
    sheet = trimesh.Trimesh(verts, [[0, 1, 2], [0, 2, 3]])
    shell = mesh_to_occupancy(sheet)
    assert ndimage.label(shell, np.ones((3, 3, 3)))[1] == 1
    assert ndimage.label(~shell)[1] == 2
    assert shell.sum() < 1.5 * R * R  # a sheet, not a slab


def test_round_trip_mesh_occupancy_mesh_occupancy():
    box = trimesh.creation.box((1.0, 0.6, 0.3))
    g1 = mesh_to_occupancy(box)
    g2 = mesh_to_occupancy(occupancy_to_mesh(g1))
    assert iou(g1, g2) >= 0.9
    torus = trimesh.creation.torus(0.35, 0.12)
    g1 = mesh_to_occupancy(torus)
    g2 = mesh_to_occupancy(occupancy_to_mesh(g1))
    # Compared as solids: the shells of a curved surface are one voxel thick, so a shift of a
    # fraction of a voxel already halves their IoU (see the module's surface_offset notes).
    assert iou(ndimage.binary_fill_holes(g1), ndimage.binary_fill_holes(g2)) >= 0.9


def test_y_up_meshes_are_rotated_plus_90_about_x():
    # glTF-style: tall along +y, a bump on +z (glTF's front). In the grid: tall along z, the
    # bump toward -y (Blender's front), exactly as the public code's +90° rotation about x.
    tall = trimesh.creation.box((0.2, 1.0, 0.2))
    bump = trimesh.creation.box((0.1, 0.1, 0.1))
    bump.apply_translation((0, 0, 0.15))
    gltf_style = trimesh.util.concatenate([tall, bump])
    grid = mesh_to_occupancy(gltf_style, up="y")
    ext = np.ptp(np.argwhere(grid), axis=0)
    assert ext[2] == 63 and ext[1] < 32
    bump_voxels = np.argwhere(grid & (np.abs(centres()[..., 1]) > 0.15))
    assert len(bump_voxels) and (bump_voxels[:, 1] < R // 2).all()
    assert np.array_equal(grid, mesh_to_occupancy(gltf_style.copy().apply_transform(
        trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))))


# ---- files and axes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tall_mesh():
    """Tall in z, off-centre toward +x and -y (Blender's front), from a grid."""
    return occupancy_to_mesh(box_grid((40, 10, 2), (50, 20, 61)))


@pytest.mark.parametrize("fmt, up", [("glb", 1), ("obj", 1), ("ply", 2), ("stl", 2)])
def test_tall_in_the_grid_is_tall_in_each_file(tmp_path, tall_mesh, fmt, up):
    path = export_mesh(tall_mesh, tmp_path / f"tall.{fmt}")
    raw = trimesh.load(path, force="mesh")  # raw file coordinates: trimesh never changes axes
    assert np.argmax(np.ptp(raw.vertices, axis=0)) == up
    # The file holds exactly the documented mapping of our coordinates.
    x, y, z = tall_mesh.bounds.T
    mapped = np.column_stack([x, z, -y[::-1]]) if up == 1 else tall_mesh.bounds
    assert raw.bounds == pytest.approx(mapped, abs=1e-6)
    if fmt == "glb":
        # Blender's glTF import: (x, y, z) -> (x, -z, y). Tall in z, and front still -y.
        bx, by, bz = raw.bounds.T
        blender = np.column_stack([bx, -bz[::-1], by])
        assert blender == pytest.approx(tall_mesh.bounds, abs=1e-6)
        assert blender[1, 1] < 0


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_exported_files_load_back_watertight_and_z_up(tmp_path, tall_mesh, fmt):
    path = export_mesh(tall_mesh, tmp_path / "sub" / f"out.{fmt.upper()}")
    assert path.exists() and path.stat().st_size > 0
    back = load_mesh(path)
    assert back.is_watertight and back.is_winding_consistent and back.volume > 0
    assert back.bounds == pytest.approx(tall_mesh.bounds, abs=1e-6)
    assert back.volume == pytest.approx(tall_mesh.volume, rel=1e-4)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not mkstemp's 0600


def test_format_argument_overrides_extension(tmp_path, tall_mesh):
    path = export_mesh(tall_mesh, tmp_path / "mesh.bin", format="GLB")
    assert path.read_bytes()[:4] == b"glTF"


def test_glb_path_voxelises_as_y_up(tmp_path):
    box = trimesh.creation.box((0.3, 0.5, 1.0))  # centred, tall in z
    path = export_mesh(box, tmp_path / "box.glb")  # stored tall in y
    assert np.array_equal(mesh_to_occupancy(path), mesh_to_occupancy(box))
    assert not np.array_equal(mesh_to_occupancy(path, up="z"), mesh_to_occupancy(box))


def test_a_failed_write_leaves_no_file(tmp_path, tall_mesh, monkeypatch):
    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        export_mesh(tall_mesh, tmp_path / "mesh.glb")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_clear_error(tmp_path, tall_mesh):
    with pytest.raises(MeshFileError, match="'fbx'.*glb, obj, ply, stl"):
        export_mesh(tall_mesh, tmp_path / "mesh.fbx")
    with pytest.raises(MeshFileError, match="no extension"):
        export_mesh(tall_mesh, tmp_path / "mesh")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(MeshFileError, match="no such mesh file"):
        mesh_to_occupancy(tmp_path / "missing.glb")
    (tmp_path / "broken.glb").write_bytes(b"not a glb")
    with pytest.raises(MeshFileError, match="could not read .*broken.glb"):
        load_mesh(tmp_path / "broken.glb")


def test_empty_mesh_is_never_written(tmp_path):
    with pytest.raises(MeshFileError, match="empty"):
        export_mesh(trimesh.Trimesh(), tmp_path / "empty.glb")
    assert not (tmp_path / "empty.glb").exists()


def _parity_grids(fixtures_dir):
    """The shared fixture's voxel grids and its decoder's occupancy (logits > 0): real shells,
    and decoded ones with the leaks and pinholes the closings and fills exist for."""
    with np.load(fixtures_dir / "vqvae" / "small_parity.npz") as d:
        return [v[0] != 0 for v in d["voxels"]] + [v[0] > 0 for v in d["decoded_logits"]]


def test_fast_morphology_equals_scipy(fixtures_dir):
    """The separable closing and the label-based fill (the meshing's hot path) give exactly
    scipy's binary_closing(·, 3x3x3 cube, k) and binary_fill_holes, on fixture shells, their
    decodes and random grids from dust to near-solid, padded as the pipeline pads them."""
    from ar3d.core import mesh as M

    rng = np.random.default_rng(0)
    grids = _parity_grids(fixtures_dir) + [rng.random((40, 40, 40)) < p for p in (0.01, 0.05, 0.2, 0.5, 0.8)]
    grids.append(box_grid((10, 10, 10), (40, 40, 40)))
    for g in grids:
        for pad in (0, 3):
            a = np.pad(g, pad)
            for k in (1, 2, 3):
                assert np.array_equal(M._cube_closing(a, k), ndimage.binary_closing(a, np.ones((3, 3, 3), bool), k))
            assert np.array_equal(M._cube_dilate(a, 1), ndimage.binary_dilation(a, np.ones((3, 3, 3), bool)))
            assert np.array_equal(M._fill_holes(a), ndimage.binary_fill_holes(a))
            assert np.array_equal(M.fill_holes(a), ndimage.binary_fill_holes(a))  # the occupied box's
    for fill in (M._fill_holes, M.fill_holes):
        assert np.array_equal(fill(np.zeros((5, 5, 5), bool)), np.zeros((5, 5, 5), bool))
        assert fill(np.ones((5, 5, 5), bool)).all()


def test_mesh_solid_reuse_is_exact_and_private(monkeypatch):
    """A grid's solid is reused between the rewards and checks that ask for it (configs differing
    only in debris removal the grid passes unchanged), but each caller gets its own writable copy,
    and a config that removes a fragment, or other morphology, gets its own solid."""
    from ar3d.core import mesh as M

    shell = box_grid((10, 10, 10), (40, 40, 40))
    first = M.mesh_solid(shell, M.MeshConfig())
    first[:] = False  # the caller's copy: the next caller must not see this
    again = M.mesh_solid(shell, M.MeshConfig(min_fragment_fraction=0.0))
    assert again.flags.writeable and again.sum() == 31**3
    crumb = shell.copy()
    crumb[50:53, 50:53, 50:53] = True  # 27 voxels: kept at fraction 0, dropped at 0.05
    raw, delivered = M.mesh_solid(crumb, M.MeshConfig(min_fragment_fraction=0.0)), M.mesh_solid(crumb, M.MeshConfig())
    assert raw.sum() == 31**3 + 27 and delivered.sum() == 31**3
    hollow = M.mesh_solid(shell, M.MeshConfig(fill_interior=False))
    assert hollow.sum() == shell.sum()
    assert M._SOLIDS_KEPT >= 256  # a reward batch's solids: asked again term by term
    monkeypatch.setattr(M, "_SOLIDS_KEPT", 8)
    M._SOLIDS.clear()
    for k in range(M._SOLIDS_KEPT + 3):  # bounded
        M.mesh_solid(box_grid((10, 10, 10), (30 + k, 30, 30)))
    assert len(M._SOLIDS) == M._SOLIDS_KEPT
    M._SOLIDS.clear()


def test_solid_of_the_occupied_box_equals_the_whole_grid(fixtures_dir):
    """mesh_solid closes, fills and seals only the occupied box plus the pad (a third of a decoded
    grid's voxels), then puts it back in place: exactly the whole grid's solid, for fixture shells
    and their decodes, random grids from dust to near-solid, objects touching the grid's faces, and
    every closing / seal width; the topology of the box is the whole solid's."""
    from ar3d.core import mesh as M
    from ar3d.core.topology import topology

    rng = np.random.default_rng(1)
    grids = _parity_grids(fixtures_dir) + [rng.random((40, 40, 40)) < p for p in (0.01, 0.05, 0.2, 0.5)]
    grids += [box_grid((0, 5, 9), (30, 40, 40)), box_grid((3, 3, 3), (12, 40, 20))]
    corner = np.zeros((40, 40, 40), bool)
    corner[:6, 30:, :4] = True  # touches three faces
    grids.append(corner)
    configs = [M.MeshConfig(), M.MeshConfig(closing_iterations=0, seal_iterations=0),
               M.MeshConfig(closing_iterations=2, seal_iterations=4), M.MeshConfig(fill_interior=False)]  # fmt: skip
    for g in grids:
        for config in configs:
            try:
                grid = M._clean(g, config)
            except M.DegenerateOccupancyError:
                continue
            labels, _ = ndimage.label(g, structure=np.ones((3, 3, 3), bool))  # the whole grid's pieces
            assert np.array_equal(grid, np.isin(labels, np.unique(labels[grid])) & g)
            solid, pad = M._solid_padded(grid, config)
            whole = M._solid_window(np.pad(grid, pad), config)
            assert np.array_equal(solid, whole)
            inner = whole[pad:-pad, pad:-pad, pad:-pad]
            assert topology(inner) == _topology_of_whole(inner)


def _topology_of_whole(solid):
    """ar3d.core.topology.topology without the crop to the occupied box."""
    from skimage.measure import euler_number

    from ar3d.core.topology import Topology

    s = np.pad(np.asarray(solid, bool), 1)
    if not s.any():
        return Topology(0, (), 0, 0, 0)
    labels, b0 = ndimage.label(s, structure=ndimage.generate_binary_structure(3, 1))
    sizes = tuple(sorted(np.bincount(labels.ravel())[1:].tolist(), reverse=True))
    b2 = ndimage.label(~s, structure=np.ones((3, 3, 3), bool))[1] - 1
    chi = int(euler_number(s, connectivity=1))
    return Topology(int(b0), sizes, int(b0 + b2 - chi), int(b2), chi)
