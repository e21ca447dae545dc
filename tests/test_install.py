"""A clean install: the wheel `pip wheel . --no-deps` builds holds every package and data file,
and `ar3d generate` runs from it in a fresh virtual environment (not from this checkout).

To stay fast and offline, the fresh venv reuses this interpreter's installed dependencies (a
.pth line naming its site-packages: torch, transformers… are not reinstalled), but ar3d itself
comes only from the wheel: the test asserts where `ar3d` and the demo model are loaded from.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Folders of the package that ship (tests/ and scripts/ are the repo's, not the package's).
SHIPPED = ("addon", "commands", "core", "evaluation", "headless", "models", "procedural", "server", "trainer")
NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    "data", "runs", "out", ".wheels", ".gl")  # fmt: skip


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
    return env


def _can_build_here() -> bool:
    try:
        import setuptools

        return int(setuptools.__version__.split(".")[0]) >= 77
    except ImportError:
        return False


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel path, pip's output) of `pip wheel . --no-deps` run on a copy of this checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=NOT_COPIED)
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(tmp / "dist"), "-v"]
    if _can_build_here():  # offline and quick; otherwise pip fetches setuptools into an isolated build
        cmd.append("--no-build-isolation")
    done = subprocess.run(cmd, cwd=src, capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = list((tmp / "dist").glob("ar3d-*.whl"))
    assert len(wheels) == 1
    return wheels[0], done.stdout + done.stderr


def test_wheel_declares_every_package_and_its_data(built):
    wheel, log = built
    assert "Package would be ignored" not in log and "as an importable package" not in log
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"ar3d/__init__.py", "ar3d/cli.py", "ar3d/blender_manifest.toml"}
    for folder in SHIPPED:
        for f in (REPO / folder).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                expected.add("ar3d/" + f.relative_to(REPO).as_posix())
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    for must in ("ar3d/addon/__init__.py", "ar3d/models/demo/model.safetensors", "ar3d/models/demo/vqvae.safetensors",
                 "ar3d/trainer/configs/paper.toml", "ar3d/trainer/configs/accelerate/ddp.yaml",
                 "ar3d/evaluation/benchmarks/ar3d-reason.jsonl"):  # fmt: skip
        assert must in names
    assert not any(n.startswith(("ar3d/tests/", "ar3d/scripts/", "ar3d/build/")) for n in names)
    licence = [n for n in names if n.endswith("licenses/LICENSE")]
    assert licence, "the wheel carries no LICENSE"
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta


def test_licence_file_matches_the_declared_licence():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert manifest["license"] == ["SPDX:MIT"]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def _fresh_venv(root: Path) -> Path:
    """A venv without pip whose .pth line reuses this interpreter's site-packages (dependencies)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=_env()).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    # Plain sys.path entries: the .pth files there (an editable ar3d's finder) are not run.
    (Path(purelib) / "deps_of_the_test_env.pth").write_text("\n".join(sorted(p for p in ours if Path(p).is_dir())) + "\n")
    return python


def test_wheel_installs_and_generates_in_a_fresh_venv(built, tmp_path):
    wheel, _ = built
    python = _fresh_venv(tmp_path / "venv")
    env = _env()
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "work"  # not the checkout: nothing can be imported from the current folder
    work.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import ar3d, ar3d.commands, ar3d.core.hub as h, importlib.util as u;"
         "print(ar3d.__file__); print(u.find_spec('ar3d.addon').origin); print(h.DEMO_MODEL)"],
        cwd=work, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr[-3000:]
    venv = (tmp_path / "venv").resolve()
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(venv), f"{line} is not from the wheel installed in {venv}"
        assert not Path(line).resolve().is_relative_to(REPO.resolve())
    out = work / "chair.glb"
    gen = subprocess.run([str(tmp_path / "venv" / "bin" / "ar3d"), "generate", "a wooden chair with four legs", "-o",
                          str(out), "--seed", "0", "-q"], cwd=work, capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert gen.returncode == 0, gen.stderr[-3000:]
    side = json.loads(out.with_suffix(".json").read_text())
    assert Path(side["model"]).resolve().is_relative_to(venv) and Path(side["vqvae"]).resolve().is_relative_to(venv)
    assert side["mesh"]["watertight"] and out.stat().st_size > 1000
