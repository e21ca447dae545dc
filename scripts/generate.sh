#!/usr/bin/env bash
# Set up .venv and generate a mesh from a prompt: scripts/generate.sh "a wooden chair" chair.glb [ar3d generate options]
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-"a wooden chair with four legs"}
out=${2:-chair.glb}
shift $(( $# > 2 ? 2 : $# ))
bash scripts/setup_env.sh
exec .venv/bin/ar3d generate "$prompt" -o "$out" "$@"
