"""Render-farm input handling: items, ids that cannot escape --out, shards, atomic writes."""

import json

import pytest

from ar3d.headless.farm import (
    FarmInputError,
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
    with pytest.raises(FarmInputError, match="same folder"):
        collect_items([str(meshes / "a.glb"), str(twin)])


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize("raw", ["../escape", "/etc/passwd", "a/../../b", "~/x", "", ".hidden/x", "C:/win", "a/./../.."])
def test_ids_cannot_escape(raw):
    with pytest.raises(FarmInputError):
        safe_id(raw)


def test_manifest_escape_is_refused(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"mesh": "a.glb", "id": "../../outside"}) + "\n")
    with pytest.raises(FarmInputError, match=r"'\.\.'"):
        collect_items([str(manifest)])


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

    (src / "broken.obj").unlink()
    shards = tmp_path / "shards"
    for i in range(2):
        assert main(["render", str(src), "--out", str(shards), "--resolution", "32", "--shard", f"{i}/2", "-q"]) == 0
    assert sorted(p.name for p in shards.iterdir()) == ["ball", "box"]
