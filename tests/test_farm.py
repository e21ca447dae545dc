"""Render-farm input handling: items, ids that cannot escape --out, shards, atomic writes."""

import json

import pytest

from ar3d.headless.farm import (
    FarmInputError,
    clean_partials,
    prune_error_log,
    settings_of,
    RenderItem,
    collect_items,
    is_done,
    item_dir,
    parse_shard,
    safe_id,
    shard,
    write_item,
)


@pytest.fixture()
def meshes(tmp_path):
    root = tmp_path / "in"
    for rel in ["a.glb", "b.obj", "sub/c.ply", "sub/deeper/d.stl", "notes.txt"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    return root


def test_files_globs_dirs(meshes):
    assert [i.id for i in collect_items([str(meshes)])] == ["a", "b", "sub/c", "sub/deeper/d"]
    assert [i.id for i in collect_items([str(meshes / "a.glb"), str(meshes / "*.obj")])] == ["a", "b"]
    assert [i.id for i in collect_items([str(meshes / "**" / "*.ply")])] == ["c"]
    with pytest.raises(FarmInputError, match="matches no file"):
        collect_items([str(meshes / "*.fbx")])
    with pytest.raises(FarmInputError, match="no such file"):
        collect_items([str(meshes / "missing.glb")])


def test_manifest_and_collisions(meshes, tmp_path):
    manifest = tmp_path / "m.jsonl"
    rows = [{"mesh": "in/a.glb", "id": "chairs/0001"}, {"mesh": str(meshes / "b.obj")}]
    manifest.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    items = collect_items([str(manifest)])
    assert [(i.id, i.mesh) for i in items] == [("b", meshes / "b.obj"), ("chairs/0001", tmp_path / "in" / "a.glb")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.glb"}\n')
    with pytest.raises(FarmInputError, match=r"bad.jsonl:1: .*\"mesh\""):
        collect_items([str(bad)])
    twin = _copy(meshes / "a.glb", tmp_path / "other" / "a.glb")
    first, second = collect_items([str(meshes / "a.glb"), str(twin)])  # the second is that item's error
    assert first.error is None and first.mesh == meshes / "a.glb"
    assert second.id == "a" and "same folder" in second.error


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize("raw", ["../escape", "/etc/passwd", "a/../../b", "~/x", "", ".hidden/x", "C:/win", "a/./../.."])
def test_ids_cannot_escape(raw):
    with pytest.raises(FarmInputError):
        safe_id(raw)


def test_bad_manifest_ids_are_item_errors_not_a_failed_run(tmp_path):
    manifest = tmp_path / "m.jsonl"
    rows = [{"mesh": "a.glb", "id": "../../outside"}, {"mesh": "b.glb", "id": "/abs/b"}, {"mesh": "c.glb", "id": "ok"},
            {"mesh": "d.glb", "id": "ok"}, {"mesh": "e.glb", "id": "errors.jsonl"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = {(i.id, i.mesh.name): i.error for i in collect_items([str(manifest)])}
    assert items[("ok", "c.glb")] is None
    assert "'..'" in items[("../../outside", "a.glb")] and "relative" in items[("/abs/b", "b.glb")]
    assert "same folder" in items[("ok", "d.glb")] and "errors.jsonl" in items[("errors.jsonl", "e.glb")]


def test_symlink_out_of_out_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)
    with pytest.raises(FarmInputError, match="outside --out"):
        item_dir(out, RenderItem("link/x", tmp_path / "a.glb"))


def test_shards_partition_the_items():
    items = [RenderItem(f"m{i:03d}", None) for i in range(10)]
    parts = [shard(items, i, 3) for i in range(3)]
    assert sorted(x.id for p in parts for x in p) == [x.id for x in items]
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) == (0, 1)
    for bad in ["3/3", "a/b", "1", "-1/2"]:
        with pytest.raises(FarmInputError):
            parse_shard(bad)


class _FailingResult:
    """Test double for a RenderResult whose write dies half way (a full disk, say)."""

    engine, device, cameras, seconds = "workbench", "cpu", [], 0.0

    def write(self, out_dir, grid=True):
        out_dir.mkdir(parents=True)
        (out_dir / "view_000.png").write_bytes(b"partial")
        raise OSError("No space left on device")


def test_partial_output_never_looks_done(tmp_path):
    out = tmp_path / "out"
    item = RenderItem("x", tmp_path / "x.glb")
    with pytest.raises(OSError):
        write_item(out, item, _FailingResult())
    assert not is_done(out, item) and not (out / "x").exists()
    assert not list(out.iterdir())  # the temporary folder was removed too


# --- `ar3d render` end to end: real bpy workers ------------------------------------------------
def test_render_cli_resumes_and_reports_failures(tmp_path, capsys):
    pytest.importorskip("bpy")
    import trimesh

    from ar3d.cli import main

    src = tmp_path / "meshes"
    src.mkdir()
    trimesh.creation.box((1, 1, 2)).export(src / "box.glb")
    trimesh.creation.icosphere(2).export(src / "ball.ply")
    (src / "broken.obj").write_text("this is not an OBJ file\nf 1 2 3\n")
    out = tmp_path / "out"
    argv = ["render", str(src), "--out", str(out), "--resolution", "48", "--workers", "1", "-q"]

    assert main(argv) == 1  # one item failed → non-zero exit
    err = capsys.readouterr().err
    assert "2 rendered, 0 already done, 1 failed of 3" in err and "failed broken" in err
    for name in ("box", "ball"):
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == ["grid.png", "render.json", "transforms.json"] + [f"view_{i:03d}.png" for i in range(6)]
    log = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in log] == ["broken"] and "broken.obj" in log[0]["mesh"]
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no partial folders left
    stamp = (out / "box" / "render.json").stat().st_mtime_ns

    assert main(argv) == 1  # rerun: finished items skipped, the failed one tried again
    assert "0 rendered, 2 already done, 1 failed of 3" in capsys.readouterr().err
    assert (out / "box" / "render.json").stat().st_mtime_ns == stamp

    # other settings: "already done" no longer; the items are rendered again at the new size
    argv40 = ["render", str(src), "--out", str(out), "--resolution", "40", "--workers", "1", "-q"]
    assert main(argv40) == 1
    assert "2 rendered (2 with changed settings), 0 already done, 1 failed of 3" in capsys.readouterr().err
    assert json.loads((out / "box" / "render.json").read_text())["settings"]["resolution"] == 40
    from PIL import Image

    assert Image.open(out / "box" / "view_000.png").size == (40, 40)

    (src / "broken.obj").unlink()  # fixed: the rerun takes it out of errors.jsonl
    trimesh.creation.box((2, 1, 1)).export(src / "broken.obj")
    assert main(argv40) == 0
    assert "1 rendered, 2 already done, 0 failed of 3" in capsys.readouterr().err
    assert not (out / "errors.jsonl").exists()
    (src / "broken.obj").unlink()
    shards = tmp_path / "shards"
    for i in range(2):
        assert main(["render", str(src), "--out", str(shards), "--resolution", "32", "--shard", f"{i}/2", "-q"]) == 0
    assert sorted(p.name for p in shards.iterdir()) == ["ball", "box"]


def _result(views=2, side=8, value=100):
    """A real RenderResult built from arrays (no Blender needed to write one)."""
    import numpy as np

    from ar3d.headless.render_result import RenderResult
    from ar3d.headless.views import parse_views

    cams = parse_views(views)
    images = np.full((views, side, side, 4), value, np.uint8)
    return RenderResult(images=images, mask=images[..., 3] > 0, depth=None, normal=None, cameras=cams,
                        intrinsics=np.eye(3), extrinsics=np.stack([np.eye(4)] * views), engine="workbench",
                        device="CPU", seconds=0.1)  # fmt: skip


def test_nested_ids_never_delete_each_other(tmp_path):
    """Ids `a` and `a/b`: writing (or --force re-writing) `a` keeps `a/b`, done or in progress."""
    out = tmp_path / "out"
    a, ab = RenderItem("a", tmp_path / "a.glb"), RenderItem("a/b", tmp_path / "b.glb")
    write_item(out, ab, _result())
    in_progress = out / "a" / ".c.partial-0123456789ab"  # another worker writing `a/c` right now
    in_progress.mkdir()
    (in_progress / "view_000.png").write_bytes(b"x")
    write_item(out, a, _result(views=3))
    assert is_done(out, a) and is_done(out, ab) and (in_progress / "view_000.png").is_file()
    write_item(out, a, _result(views=1))  # --force on `a`: its old views go, `a/b` stays
    assert sorted(p.name for p in (out / "a").iterdir() if p.is_file()) == [
        "grid.png", "render.json", "transforms.json", "view_000.png"]
    assert is_done(out, ab) and sorted(p.name for p in (out / "a" / "b").iterdir())[:2] == ["grid.png", "render.json"]


def test_a_second_write_of_the_same_run_keeps_the_first(tmp_path):
    """A retry after a node was lost with the item already written does not write it again."""
    out = tmp_path / "out"
    item = RenderItem("x", tmp_path / "x.glb")
    write_item(out, item, _result(value=100), run="run1")
    inode = (out / "x").stat().st_ino, (out / "x" / "view_000.png").stat().st_ino
    write_item(out, item, _result(value=200), run="run1")
    assert ((out / "x").stat().st_ino, (out / "x" / "view_000.png").stat().st_ino) == inode
    write_item(out, item, _result(value=200), run="run2")  # a later run (e.g. --force) replaces it
    assert (out / "x" / "view_000.png").stat().st_ino != inode[1]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_settings_are_recorded_and_compared(tmp_path):
    from ar3d.headless.render_config import RenderConfig

    out = tmp_path / "out"
    item = RenderItem("x", tmp_path / "x.glb")
    s32, s64 = settings_of(RenderConfig(resolution=32)), settings_of(RenderConfig(resolution=64))
    assert s32 != s64 and s32 == settings_of(RenderConfig(resolution=32, device="cpu"))
    write_item(out, item, _result(), settings=s32)
    assert is_done(out, item, s32) and not is_done(out, item, s64)


def test_partials_of_a_killed_run_are_removed_and_error_log_pruned(tmp_path):
    out = tmp_path / "out"
    items = [RenderItem("x", tmp_path / "x.glb"), RenderItem("sub/y", tmp_path / "y.glb")]
    for p in (out / ".x.partial-aaaa", out / "sub" / ".y.partial-bbbb", out / ".other.partial-cccc"):
        p.mkdir(parents=True)
    assert clean_partials(out, items) == 2
    assert sorted(p.name for p in out.iterdir()) == [".other.partial-cccc", "sub"]  # not ours: kept
    log = out / "errors.jsonl"
    log.write_text("".join(json.dumps({"id": i, "error": e}) + "\n" for i, e in
                           [("x", "old"), ("sub/y", "crash"), ("x", "new"), ("../z", "bad id")]))  # fmt: skip
    write_item(out, items[1], _result())  # `sub/y` was fixed by a rerun
    prune_error_log(out)
    assert [(r["id"], r["error"]) for r in map(json.loads, log.read_text().splitlines())] == [
        ("x", "new"), ("../z", "bad id")]


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers must be >= 1"),
    (["--resolution", "0"], "--resolution must be >= 1"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--views", "bogus"], "bogus"),
    (["--background", "2,2,2"], "background must be three floats in [0, 1]"),
    (["--timeout", "0"], "--timeout must be > 0"),
    (["--ray", "auto", "--workers-per-node", "0"], "--workers-per-node must be >= 1"),
])
def test_render_usage_errors_are_one_line_and_exit_2_before_work(tmp_path, capsys, args, message):
    from ar3d.cli import main

    mesh = tmp_path / "a.ply"
    mesh.write_text("x")
    out = tmp_path / "out"
    assert main(["render", str(mesh), "--out", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing started


def test_an_empty_shard_is_not_a_failure(tmp_path, capsys):
    from ar3d.cli import main

    mesh = tmp_path / "a.ply"
    mesh.write_text("x")
    assert main(["render", str(mesh), "--out", str(tmp_path / "out"), "--shard", "3/4", "-q"]) == 0
    assert "no meshes in this shard" in capsys.readouterr().err


def test_render_nested_and_bad_ids_with_two_workers(tmp_path, capsys):
    """Ids `a`, `a/b`, `a/b/c` rendered at once by two workers; a bad id in the manifest is that
    item's error, every other item is rendered."""
    pytest.importorskip("bpy")
    import trimesh

    from ar3d.cli import main

    box = tmp_path / "box.ply"
    trimesh.creation.box().export(box)
    ids = ["a", "a/b", "a/b/c", "a/d", "../escape", "e"]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"mesh": "box.ply", "id": i}) + "\n" for i in ids))
    out = tmp_path / "out"
    assert main(["render", str(manifest), "--out", str(out), "--resolution", "24", "--views", "1", "--workers", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert "5 rendered, 0 already done, 1 failed of 6" in err and "failed ../escape" in err
    for i in ids:
        if i != "../escape":
            assert is_done(out, RenderItem(i, box)), i
    assert [json.loads(x)["id"] for x in (out / "errors.jsonl").read_text().splitlines()] == ["../escape"]
    assert main(["render", str(manifest), "--out", str(out), "--resolution", "24", "--views", "1", "--workers", "2",
                 "--force", "-q"]) == 1  # fmt: skip
    assert "5 rendered, 0 already done, 1 failed of 6" in capsys.readouterr().err
    assert all(is_done(out, RenderItem(i, box)) for i in ids if i != "../escape")


TERM_CALLER = """
import sys
from ar3d.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_and_leftover_partials_leave_no_partial_folders(tmp_path):
    """A run killed earlier left `.m3.partial-*`; the next run removes it, and a run stopped
    with SIGTERM (a farm manager cancelling the task) removes its own and stops its workers."""
    pytest.importorskip("bpy")
    import signal
    import subprocess
    import sys
    import time

    import trimesh

    src = tmp_path / "meshes"
    src.mkdir()
    for i in range(8):
        trimesh.creation.icosphere(3).export(src / f"m{i}.ply")
    out = tmp_path / "out"
    (out / ".m3.partial-deadbeef0000").mkdir(parents=True)
    script = tmp_path / "run.py"
    script.write_text(TERM_CALLER)
    proc = subprocess.Popen([sys.executable, str(script), "render", str(src), "--out", str(out), "--resolution", "160",
                             "--views", "ring:12", "--workers", "1", "-q"], stderr=subprocess.PIPE, text=True)  # fmt: skip
    end = time.monotonic() + 120
    while not (out / "m0" / "render.json").exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    assert not (out / ".m3.partial-deadbeef0000").exists()  # cleaned when the run started
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not [p.name for p in out.rglob(".*partial*")]
    assert not (out / "m7" / "render.json").exists()
