#!/usr/bin/env bash
# Set up .venv and run the test suite (offline: HF_HUB_OFFLINE=1 is set by the tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test,render,rewards,serve,train,eval,procedural
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest "$@"
