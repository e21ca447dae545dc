#!/usr/bin/env bash
# Create .venv (Python 3.11) and install ar3d into it, editable, with the given extras.
# Usage: scripts/setup_env.sh [extras]   e.g. scripts/setup_env.sh test
# torch is installed first and pinned: a bare `torch` requirement pulls GBs of CUDA wheels on a
# CPU machine. GPU users: install your CUDA build of torch into .venv first; it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${AR3D_TORCH_VERSION:-2.13.0}"
fi
extras=${1:-}
# open_clip (the "rewards" and "eval" extras) needs torchvision; pin the one built for the installed
# torch (torchvision minor = torch minor + 15), or pip would replace torch with another build.
if [[ ",$extras," == *",rewards,"* || ",$extras," == *",eval,"* ]] && ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torchvision') is None)"; then
  tv=$(.venv/bin/python -c "import torch; a,b=torch.__version__.split('+')[0].split('.')[:2]; print(f'0.{int(b)+15}.*' if a=='2' else '')")
  [ -n "$tv" ] && .venv/bin/python -m pip install -q "torchvision==$tv" || true
fi
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
