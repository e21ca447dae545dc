"""torchvision imports for every program of the environment, not only for ar3d.

Where torchvision matches torch (the cause fixed: CPU builds from PyTorch's index), a plain
`import torchvision` works and the hook does nothing. Where it does not (PyPI's CUDA
torchvision beside a CPU torch, as on machines that reach only PyPI), the .pth hook that
scripts/setup_env.sh installs makes plain `python -c "import torchvision"`, timm, and a script
run by `accelerate launch` work. Both are checked in a fresh venv that reuses this
interpreter's packages as plain path entries (so no .pth of this environment runs there).
"""

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from ar3d.core import torchvision_compat

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torchvision") is None, reason="torchvision is not installed"
)


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    return env


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """(python, its site-packages) of a venv without ar3d's hook, seeing this env's packages."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    (Path(purelib) / "deps.pth").write_text("\n".join(sorted(p for p in ours if Path(p).is_dir())) + "\n")
    return python, Path(purelib)


def _imports(python, code="import torchvision"):
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=_env(), timeout=600)


def test_every_importer_gets_torchvision(fresh, tmp_path):
    python, purelib = fresh
    before = _imports(python)
    matching = before.returncode == 0
    if not matching:  # the symptom this fixes, as this machine has it
        assert "torchvision::nms does not exist" in before.stderr, before.stderr[-2000:]
    files = torchvision_compat.install_pth(str(purelib))
    try:
        assert all(Path(f).is_file() for f in files)
        after = _imports(python, "import torchvision, torchvision.transforms, torch; print(hasattr(torch.ops.torchvision, 'nms'))")
        assert after.returncode == 0, after.stderr[-2000:]
        assert _imports(python, "import timm; timm.create_model('resnet18', pretrained=False)").returncode == 0
        if matching:  # the cause is fixed: the real kernels, no declared schemas
            assert _imports(python, "import torch, torchvision; torch.ops.torchvision.nms(torch.zeros(0, 4), "
                                    "torch.zeros(0), 0.5)").returncode == 0  # fmt: skip
        # the hook costs nothing until torchvision is imported
        idle = _imports(python, "import sys; print('torch' in sys.modules)")
        assert idle.returncode == 0 and idle.stdout.strip() == "False"
    finally:
        for f in files:
            Path(f).unlink()


@pytest.mark.skipif(__import__("importlib").util.find_spec("accelerate") is None, reason="needs accelerate (train extra)")
def test_accelerate_launch_of_a_timm_script(fresh, tmp_path):
    python, purelib = fresh
    script = tmp_path / "uses_timm.py"
    script.write_text("import timm, torchvision\nprint('timm', timm.__version__)\n")
    cmd = [str(python), "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]  # fmt: skip
    files = torchvision_compat.install_pth(str(purelib))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path)
        assert done.returncode == 0 and "timm" in done.stdout, done.stderr[-3000:]
    finally:
        for f in files:
            Path(f).unlink()


def test_the_fix_command_runs_without_a_runpy_warning():
    """`python -m ar3d.core.fix_torchvision` is what setup prints to a newcomer: no "found in
    sys.modules … unpredictable behaviour" warning (running torchvision_compat itself gave one,
    because `import ar3d.core` imports it first)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-W", "default", "-m", "ar3d.core.fix_torchvision"], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() in ("torchvision imports", "torchvision does not import")
    assert "RuntimeWarning" not in run.stderr, run.stderr
