#!/usr/bin/env bash
# Create .venv (Python 3.11) and install ar3d into it, editable, with the given extras.
# Usage: scripts/setup_env.sh [extras]   e.g. scripts/setup_env.sh test,render
#
# Runs pip only when needed: a stamp in .venv records a hash of pyproject.toml and this script
# and the extras installed; a later call with nothing new returns at once.
#
# torch (kept if .venv already has one, e.g. your CUDA build: install it first):
#  - where PyTorch's CPU index is reachable (AR3D_TORCH_INDEX, default
#    https://download.pytorch.org/whl/cpu; empty = never try), matching CPU builds of torch and,
#    for the rewards/eval extras, torchvision come from it (~200 MB on Linux x86-64);
#  - otherwise torch==$AR3D_TORCH_VERSION (2.13.0) from pip's configured indexes: from PyPI on
#    Linux that is a CUDA build (~900 MB plus ~3 GB of nvidia-* wheels); a CPU wheel where pip's
#    find-links has one. torchvision then comes from PyPI (a CUDA build); if it cannot import
#    beside a CPU torch, ar3d's torchvision fix is installed into .venv (a .pth hook, see
#    core/torchvision_compat.py) so every importer of torchvision works (timm, accelerate launch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VPY=.venv/bin/python
extras=${1:-}
stamp=.venv/.ar3d-setup-stamp
hash=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)

# --- nothing to do? (same hash, every requested extra already installed, ar3d importable) ---
if [ -x "$VPY" ] && [ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "$hash" ]; then
  have=",$(sed -n 2p "$stamp"),"
  missing=0
  IFS=',' read -ra want <<< "$extras"
  for e in "${want[@]}"; do [ -z "$e" ] || [[ "$have" == *",$e,"* ]] || missing=1; done
  if [ "$missing" = 0 ] && "$VPY" -c "import ar3d" 2>/dev/null; then
    exit 0
  fi
fi

if [ ! -x "$VPY" ]; then
  "$PY" -m venv .venv
fi
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
pip_install() { "$VPY" -m pip install -q "$@"; }

TORCH_VERSION=${AR3D_TORCH_VERSION:-2.13.0}
INDEX=${AR3D_TORCH_INDEX-https://download.pytorch.org/whl/cpu}
index_reachable() {
  [ -n "$INDEX" ] && "$VPY" - "$INDEX" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10).close()
EOF
}
# torchvision minor = torch minor + 15 (torch 2.13 <-> torchvision 0.28)
tv_of() { "$VPY" -c "import sys; a,b=sys.argv[1].split('+')[0].split('.')[:2]; print(f'0.{int(b)+15}.*' if a=='2' else '')" "$1"; }
needs_tv=0
[[ ",$extras," == *",rewards,"* || ",$extras," == *",eval,"* ]] && needs_tv=1
has() { "$VPY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$1') is None)" 2>/dev/null; }

if ! "$VPY" -c "import torch" 2>/dev/null; then
  if index_reachable; then
    echo "setup_env: torch $TORCH_VERSION (CPU build) from $INDEX" >&2
    pkgs=("torch==$TORCH_VERSION")
    [ "$needs_tv" = 1 ] && pkgs+=("torchvision==$(tv_of "$TORCH_VERSION")")
    pip_install --index-url "$INDEX" "${pkgs[@]}"
  else
    echo "setup_env: PyTorch's CPU index is not reachable; torch==$TORCH_VERSION from pip's indexes" >&2
    pip_install "torch==$TORCH_VERSION"
  fi
fi
# open_clip (rewards, eval) needs torchvision: pin the build of the installed torch, or pip
# would replace torch with another build.
if [ "$needs_tv" = 1 ] && ! has torchvision; then
  torch_v=$("$VPY" -c "import torch; print(torch.__version__)")
  tv=$(tv_of "$torch_v")
  if [ -n "$tv" ]; then
    if [[ "$torch_v" == *+cpu* ]] && index_reachable; then
      pip_install --index-url "$INDEX" "torchvision==$tv" || pip_install "torchvision==$tv" || true
    else
      pip_install "torchvision==$tv" || true
    fi
  fi
fi
pip_install -e ".${extras:+[$extras]}"
# A torchvision built for another torch (PyPI's CUDA build beside a CPU torch) fails at import:
# install the import fix for every program of this environment.
if has torchvision && ! "$VPY" -c "import torchvision" 2>/dev/null; then
  "$VPY" -m ar3d.core.fix_torchvision --install >&2
fi
# record what is installed (a later call with a subset of these extras does nothing)
prev=""
[ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "$hash" ] && prev=$(sed -n 2p "$stamp")
all=$(printf '%s\n' ${prev//,/ } ${extras//,/ } | sort -u | paste -sd, -)
printf '%s\n%s\n' "$hash" "$all" > "$stamp"
