"""The command line never shows a traceback: bad input is one line on stderr and exit status 2,
found before any model loads; the defaults (the bundled demo model and its VQ-VAE) work for
every command; `--help` stays free of torch; the README's add-on build command runs as written.

"Before any model loads" is checked by making the loaders raise (a test double for loading
only: the argument checks, file readers and messages are the real ones).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from ar3d.cli import main
from ar3d.core.hub import DEMO_MODEL

REPO = Path(__file__).resolve().parents[1]
needs_demo = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file(), reason="no bundled demo model")


@pytest.fixture
def no_loading(monkeypatch):
    """Any model or VQ-VAE load fails the test: the checks must come first."""

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")

    import ar3d.core.pipeline
    import ar3d.core.vqvae

    monkeypatch.setattr(ar3d.core.pipeline.TextTo3D, "load", classmethod(boom))
    monkeypatch.setattr(ar3d.core.vqvae, "load_vqvae", boom)


def _one_line_error(capsys, code, *expected):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert len(lines) == 1 and len(err.strip().splitlines()) <= 2, err  # the error (+ at most the demo notice)
    for e in expected:
        assert e in lines[0], err
    return lines[0]


def test_help_and_version_do_not_import_torch():
    code = ("import json, sys, time; t = time.perf_counter(); from ar3d.cli import main\n"
            "codes = [main(['--help']), main(['--version']), main(['generate', '--help']), main(['train', '--help'])]\n"
            "print(json.dumps({'codes': codes, 'seconds': time.perf_counter() - t,"
            " 'heavy': [m for m in ('torch', 'numpy', 'transformers', 'trimesh') if m in sys.modules]}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0, 0] and report["heavy"] == [], report


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--samples", "0"], "--samples: 0 is out of range"),
        (["--temperature", "-1"], "--temperature: -1 is out of range"),
        (["--top-p", "0"], "--top-p: 0 is out of range"),
        (["--top-p", "1.5"], "--top-p: 1.5 is out of range"),
        (["--top-k", "lots"], "'lots' is not a whole number"),
        (["-o", "/dev/null/x.glb"], "'/dev/null' is a file, not a folder"),
        (["-o", "{tmp}/a_file/x.glb"], "is a file, not a folder"),
        (["-o", "{tmp}/folder.glb"], "it is a folder"),
        (["-o", "{tmp}/x.fbx"], "must end in one of .glb"),
        (["--smoothing", "extreme"], "--smoothing: invalid choice: 'extreme'"),
    ],
)
def test_generate_rejects_bad_arguments_before_loading(extra, expected, tmp_path, capsys, no_loading):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "folder.glb").mkdir()
    argv = ["generate", "a chair", "-o", str(tmp_path / "c.glb")] + [a.replace("{tmp}", str(tmp_path)) for a in extra]
    _one_line_error(capsys, main(argv), expected)


def test_empty_prompt_before_loading(capsys, no_loading, tmp_path):
    _one_line_error(capsys, main(["generate", "  ", "-o", str(tmp_path / "c.glb")]), "the prompt is empty")


BAD_CODE_FILES = {
    "binary.txt": (b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "is a binary file"),
    "empty.txt": (b"", "is empty"),
    "words.txt": (b"a wooden chair", "no <mesh-start>"),
    "empty.json": (b"", "is not valid JSON"),
    "broken.json": (b'{"codes": [1, 2', "is not valid JSON"),
    "strings.json": (json.dumps({"codes": [["12"] * 1024]}).encode(), "code 0 is '12'"),
    "floats.json": (json.dumps([1.5] * 1024).encode(), "code 0 is 1.5"),
    "nocodes.json": (b'{"prompt": "a chair"}', 'no "codes" field'),
    "garbage.npy": (b"not numpy at all", "is not a NumPy .npy array"),
    "empty.npy": (b"", "is not a NumPy .npy array"),
    "binary.glb": (b"glTF\x02\x00\x00\x00\xff\xff", "is a binary file"),
}


@pytest.mark.parametrize("name", sorted(BAD_CODE_FILES))
def test_decode_rejects_bad_code_files(name, tmp_path, capsys, no_loading):
    data, expected = BAD_CODE_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    _one_line_error(capsys, main(["decode", str(path), "-o", str(tmp_path / "x.ply")]), expected)


def test_decode_rejects_float_npy_and_bad_output(tmp_path, capsys, no_loading):
    floats = tmp_path / "codes.npy"
    np.save(floats, np.full(1024, 1.5))
    _one_line_error(capsys, main(["decode", str(floats), "-o", str(tmp_path / "x.ply")]), "float64 values")
    ints = tmp_path / "ints.npy"
    np.save(ints, np.zeros(1024, dtype=np.int64))
    _one_line_error(capsys, main(["decode", str(ints), "-o", "/dev/null/x.glb"]), "not a folder")
    _one_line_error(capsys, main(["encode", str(ints), "-o", "/dev/null/c.json"]), "not a folder")
    _one_line_error(capsys, main(["encode", str(ints), "-o", str(tmp_path / "c.csv")]), "use .json, .npy or .txt")


def test_old_transformers_is_one_line(monkeypatch, tmp_path, capsys, tiny_policy_dir):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "4.51.3")
    line = _one_line_error(capsys, main(["generate", "a cup", "-o", str(tmp_path / "c.glb"), "--model", str(tiny_policy_dir)]))
    assert "needs transformers >= 5.0" in line and "4.51.3" in line and "pip install -U" in line


def test_declared_transformers_bound_is_the_checked_one():
    import tomllib

    from ar3d.core.versions import MINIMUM, DependencyError, require

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"transformers>={MINIMUM['transformers']}" in deps and MINIMUM["transformers"] == "5.0"
    assert "huggingface-hub>=1.3" in deps  # what transformers 5.0 itself requires
    with pytest.raises(DependencyError):
        require("transformers", "4.57.6")  # checked: cannot load the demo model's tokenizer
    require("transformers", "5.0.0")


def test_keep_coarse_warns_and_quiet_silences_every_bar(monkeypatch, tmp_path, capsys, small_pair):
    import huggingface_hub.utils
    import transformers.utils.logging

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # restored after the test, as below
    monkeypatch.setenv("TQDM_DISABLE", "0")
    try:
        code = main(["generate", "a chair", "-o", str(tmp_path / "c.glb"), "--model", str(small_pair), "--seed", "0",
                     "--max-plan-tokens", "2", "--keep-coarse", "-q"])  # fmt: skip
    finally:
        transformers.utils.logging.enable_progress_bar()
        huggingface_hub.utils.enable_progress_bars()
    err = capsys.readouterr().err
    assert code in (0, 1), err  # 1 = the random tiny model made no mesh; the bars are what is checked
    assert "--keep-coarse does nothing without --two-step" in err
    assert not re.search(r"\d+%\||it/s|Loading weights", err), err


def test_vqvae_beside_a_policy_never_reads_the_policy_config(tmp_path):
    from ar3d.core.vqvae import VQVAEConfig, _resolve_config

    weights = tmp_path / "vqvae.safetensors"
    weights.write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "architectures": ["X"], "hidden_size": 8}))
    assert _resolve_config(None, weights) == VQVAEConfig()
    (tmp_path / "config.json").write_text(json.dumps({"num_embeddings": 64}))  # a VQ-VAE folder's own config
    assert _resolve_config(None, weights).num_embeddings == 64


@needs_demo
def test_encode_and_decode_use_the_default_demo_vqvae(monkeypatch, tmp_path, capsys, small_pair):
    monkeypatch.delenv("AR3D_MODEL", raising=False)
    monkeypatch.delenv("AR3D_VQVAE", raising=False)
    box = tmp_path / "box.glb"
    trimesh.creation.box(extents=(0.6, 0.4, 0.9)).export(box)
    codes = tmp_path / "codes.json"
    assert main(["encode", str(box), "-o", str(codes)]) == 0, capsys.readouterr().err
    record = json.loads(codes.read_text())
    assert record["vqvae"] == str(DEMO_MODEL / "vqvae.safetensors") and len(record["codes"][0]) == 1024
    assert main(["decode", str(codes), "-o", str(tmp_path / "box.ply")]) == 0, capsys.readouterr().err
    assert (tmp_path / "box.ply").stat().st_size > 0
    # The sidecar's VQ-VAE (the demo's, 1024 codes) wins over $AR3D_MODEL's (64 codes): codes of
    # 64 and more decode only with the right one.
    monkeypatch.setenv("AR3D_MODEL", str(small_pair))
    assert max(record["codes"][0]) >= 64
    assert main(["decode", str(codes), "-o", str(tmp_path / "again.ply")]) == 0, capsys.readouterr().err
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"codes": record["codes"]}))  # no record of its VQ-VAE: $AR3D_MODEL's
    _one_line_error(capsys, main(["decode", str(bare), "-o", str(tmp_path / "x.ply")]), "codes must lie in [0, 64)")


@needs_demo
def test_info_shows_the_bundled_demo_model_and_vqvae(monkeypatch, capsys):
    monkeypatch.delenv("AR3D_MODEL", raising=False)
    monkeypatch.delenv("AR3D_VQVAE", raising=False)
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["default_model"] == str(DEMO_MODEL)
    assert info["default_vqvae"] == str(DEMO_MODEL / "vqvae.safetensors")
    assert any(m["path"] == str(DEMO_MODEL) for m in info["models_found"])
    assert main(["info"]) == 0
    assert "vqvae.safetensors (the bundled demo model)" in capsys.readouterr().out


@needs_demo
@pytest.mark.parametrize("prompt, warned", [("a dragon", True), ("asdkjh", True), ("a wooden chair with four legs", False),
                                            ("two pine trees", False)])  # fmt: skip
def test_out_of_family_prompts_warn_with_the_demo_model(prompt, warned, monkeypatch, tmp_path, capsys, no_loading):
    monkeypatch.delenv("AR3D_MODEL", raising=False)
    with pytest.raises(AssertionError, match="a model was loaded"):  # the warning comes before loading
        main(["generate", prompt, "-o", str(tmp_path / "x.glb")])
    err = capsys.readouterr().err
    assert ("names none of them" in err) == warned, err
    if warned:
        assert all(f in err for f in ("chair", "pine tree", "windmill", "rocket")) and "25 shape families" in err


def test_procedural_booleans_need_the_extra_and_say_so(monkeypatch):
    import tomllib

    from ar3d.core.errors import Ar3dError
    from ar3d.procedural.families import get_family

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("manifold3d") for d in project["dependencies"])
    assert any(d.startswith("manifold3d") for d in project["optional-dependencies"]["procedural"])
    monkeypatch.setitem(sys.modules, "manifold3d", None)  # as if not installed
    family = get_family("chair")
    _, shape = family.sample_params(np.random.default_rng(0), family.combos()[0])  # no booleans yet
    with pytest.raises(Ar3dError, match=r"pip install 'ar3d\[procedural\]'"):
        shape.mesh()


def _readme_addon_command() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line for b in blocks for line in b.splitlines() if "blender_ext.py" in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.skipif(__import__("importlib").util.find_spec("bpy") is None, reason="needs bpy (the render extra)")
def test_readme_addon_build_command_runs_as_written(tmp_path):
    src = tmp_path / "repo"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info",
                                                             "__pycache__", "models", "tests"))  # fmt: skip
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    done = subprocess.run(["bash", "-c", _readme_addon_command()], cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    zips = list((src / "dist").glob("ar3d-*.zip"))
    assert len(zips) == 1
    import zipfile

    names = set(zipfile.ZipFile(zips[0]).namelist())
    assert {"__init__.py", "blender_manifest.toml", "addon/__init__.py", "addon/client.py"} <= names
    assert all(n in ("__init__.py", "blender_manifest.toml") or n.startswith("addon/") for n in names), names


@pytest.mark.parametrize("level, passes", [(None, 10), ("none", 0), ("high", 30)])
def test_generate_smoothing_reaches_the_mesh_settings(level, passes, monkeypatch, tmp_path):
    """`--smoothing` picks the mesh's Taubin passes (issue #21); the pipeline gets them at load.
    The load is a test double that records its arguments and stops the command."""
    from ar3d.core.mesh import SMOOTHING_LEVELS
    from ar3d.cli import SMOOTHING_CHOICES
    import ar3d.core.pipeline

    assert SMOOTHING_CHOICES == tuple(SMOOTHING_LEVELS)
    seen = {}

    class Stop(Exception):
        pass

    def record(cls, *a, **k):
        seen.update(k)
        raise Stop

    monkeypatch.setattr(ar3d.core.pipeline.TextTo3D, "load", classmethod(record))
    argv = ["generate", "a chair", "-o", str(tmp_path / "c.glb"), "-q"] + (["--smoothing", level] if level else [])
    with pytest.raises(Stop):
        main(argv)
    assert seen["mesh_config"].smoothing_iterations == passes
