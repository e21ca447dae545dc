#!/usr/bin/env bash
# Set up .venv and run the test suite (offline: HF_HUB_OFFLINE=1 is set by the tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test,render,rewards,serve,train,eval,procedural,farm
# The Ray tests run their clusters in a network namespace (unshare -n, ip): install them if missing.
if [ "$(id -u)" = 0 ] && ! { command -v unshare && command -v ip; } >/dev/null 2>&1 && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq util-linux iproute2 >/dev/null || echo "warning: could not install unshare/ip; the Ray tests will be skipped" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest "$@"
