"""scripts/setup_env.sh and scripts/generate.sh: pip runs only when something changed, and torch
comes from PyTorch's CPU index when that is reachable, else from pip's indexes with the
torchvision fix installed.

Test double: `.venv/bin/python` of a scratch copy of the scripts is a wrapper that records
`python -m pip …` and `python -m ar3d.core.fix_torchvision …` instead of running them (the
real installs download GBs) and runs everything else (the script's probes) with this
interpreter. A `torch.py` that raises ImportError, first on its path, plays "no torch yet".
"""

import functools
import http.server
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WRAPPER = """#!/usr/bin/env bash
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "pip ${*:3}" >> "$AR3D_TEST_LOG"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "ar3d.core.fix_torchvision" ]; then echo "fix ${*:3}" >> "$AR3D_TEST_LOG"; exit 0; fi
exec "$AR3D_TEST_PYTHON" "$@"
"""


@pytest.fixture
def scratch(tmp_path):
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for f in ("scripts/setup_env.sh", "scripts/generate.sh", "pyproject.toml"):
        shutil.copy(REPO / f, root / f)
    py = root / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(WRAPPER)
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return root


def _run(root: Path, *args, no_torch=False, torchvision=None, index="", script="scripts/setup_env.sh"):
    """Run a script; ``torchvision``: None (as installed here), "broken" (its import fails, as a
    CUDA build beside a CPU torch) or "fine"."""
    log = root / "calls.log"
    env = dict(os.environ, AR3D_TEST_LOG=str(log), AR3D_TEST_PYTHON=sys.executable, AR3D_TORCH_INDEX=index)
    blocker = root / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "torch.py").unlink(missing_ok=True)
    (blocker / "torchvision.py").unlink(missing_ok=True)
    if no_torch:
        (blocker / "torch.py").write_text("raise ImportError('no torch (test)')\n")
    if torchvision:
        fails = "raise RuntimeError('operator torchvision::nms does not exist')\n"
        (blocker / "torchvision.py").write_text(fails if torchvision == "broken" else "")
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env.get("PYTHONPATH", "")])
    log.unlink(missing_ok=True)
    done = subprocess.run(["bash", script, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else [], done.stderr


def _installs(calls):
    return [c for c in calls if c.startswith("pip install") and "--upgrade pip" not in c]


def test_second_call_installs_nothing_until_something_changes(scratch):
    first, _ = _run(scratch, "test")
    assert any("-e .[test]" in c for c in _installs(first))
    again, _ = _run(scratch, "test")
    assert again == []  # no pip at all: the stamp says everything is there
    assert _run(scratch)[0] == []  # fewer extras: still nothing
    more, _ = _run(scratch, "test,serve")  # a new extra: install
    assert any("-e .[test,serve]" in c for c in _installs(more))
    assert _run(scratch, "serve")[0] == []
    (scratch / "pyproject.toml").write_text((scratch / "pyproject.toml").read_text() + "\n# changed\n")
    assert any("-e ." in c for c in _installs(_run(scratch)[0]))  # pyproject changed: install again


def test_generate_sh_does_not_reinstall(scratch):
    (scratch / ".venv" / "bin" / "ar3d").write_text("#!/usr/bin/env bash\necho \"ar3d $*\" >> \"$AR3D_TEST_LOG\"\n")
    (scratch / ".venv" / "bin" / "ar3d").chmod(0o755)
    first, _ = _run(scratch, "a chair", "c.glb", script="scripts/generate.sh")
    assert _installs(first) and first[-1] == "ar3d generate a chair -o c.glb"
    second, _ = _run(scratch, "a chair", "c.glb", script="scripts/generate.sh")
    assert second == ["ar3d generate a chair -o c.glb"]


@pytest.fixture
def cpu_index(tmp_path):
    """A reachable stand-in for PyTorch's CPU index (only its layout is probed)."""
    (tmp_path / "index" / "torch").mkdir(parents=True)
    (tmp_path / "index" / "torch" / "index.html").write_text("<html></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "index"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_torch_and_torchvision_come_from_the_cpu_index_when_reachable(scratch, cpu_index):
    calls, err = _run(scratch, "eval", no_torch=True, index=cpu_index)
    torch_calls = [c for c in _installs(calls) if "torch==" in c]
    assert torch_calls, calls
    assert f"--index-url {cpu_index}" in torch_calls[0]
    assert "torch==2.13.0" in torch_calls[0] and "torchvision==0.28.*" in torch_calls[0]
    assert "CPU build" in err


def test_unreachable_index_falls_back_to_pip_and_installs_the_torchvision_fix(scratch):
    calls, err = _run(scratch, "eval", no_torch=True, torchvision="broken", index="http://127.0.0.1:9/")  # port 9: nothing
    torch_calls = [c for c in _installs(calls) if "torch==" in c]
    assert torch_calls and "--index-url" not in torch_calls[0] and "torch==2.13.0" in torch_calls[0]
    assert "not reachable" in err
    assert "fix --install" in calls  # torchvision does not import: the .pth fix for every importer
    (scratch / ".venv" / ".ar3d-setup-stamp").unlink()
    calls, _ = _run(scratch, "eval", torchvision="fine", index="http://127.0.0.1:9/")
    assert "fix --install" not in calls  # a matching torchvision needs no fix
