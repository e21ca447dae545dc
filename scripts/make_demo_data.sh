#!/usr/bin/env bash
# Data for the demo model (issue #7): procedural train/test splits and the family judge's
# reference samples, under data/demo/ (git-ignored). About 8 minutes on 2 CPU cores.
# Then train on a GPU machine: see scripts/train_demo.py and models/demo/MODEL_CARD.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
N_TRAIN=${N_TRAIN:-20000}
N_TEST=${N_TEST:-1000}
WORDING=${WORDING:-v2}   # caption wording; v1 remakes the shipped demo model's data exactly (issue #21)
mkdir -p data/demo
$PY -m ar3d.procedural --n "$N_TRAIN" --split train --seed 1 --wording "$WORDING" --workers "$WORKERS" --out data/demo/train.npz
$PY -m ar3d.procedural --n "$N_TEST" --split test --seed 2 --wording "$WORDING" --workers "$WORKERS" --out data/demo/test.npz
$PY scripts/train_demo.py --stages refs --workers "$WORKERS"   # 60 per family, seed 10000
ls -la data/demo
