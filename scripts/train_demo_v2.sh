#!/usr/bin/env bash
# The demo model v2 (issue #21) end to end on one GPU: data (v2 wording) -> VQ-VAE -> codes ->
# supervised policy -> Hi-GRPO with the strict reward -> held-out evaluation of the supervised
# ("before") and Hi-GRPO ("after") policies side by side. Each stage is time-boxed; the budgets
# below are the plan of models/demo/MODEL_CARD.md, and the card records the ones actually used.
#   bash scripts/train_demo_v2.sh    # env: V2=runs/demo_v2 WORKERS=16 VQ_SECONDS=900
#                                    #      POLICY_SECONDS=600 RL_BUDGET=1200 RL_STEPS=80
#                                    #      VQ_ARGS="..." (extra train_demo.py VQ-VAE options)
#                                    #      VQ_FROM=models/demo (reuse that VQ-VAE: no vqvae stage)
#                                    #      POLICY_INIT=models/demo (warm start the policy there;
#                                    #      its VQ-VAE must be this run's: use with VQ_FROM)
#                                    #      POLICY_ARGS="..." (extra train_demo.py policy options)
#                                    #      STAGES=data,vqvae,policy,eval,rl
#                                    #      BEFORE=models/demo (also evaluate that model: the one
#                                    #      being replaced; needs its VQ-VAE to be this run's)
#                                    #      EVAL_N=1000 EVAL_TWO_STEP_N=1000
# Evaluations (held-out, n = EVAL_N one-step + EVAL_TWO_STEP_N two-step, same prompts and seeds)
# run in the background next to the GPU training that follows them, so the GPU never waits on the
# CPU-bound judge: BEFORE during the policy stage, the supervised model during Hi-GRPO, the Hi-GRPO
# policy at the end. Each writes its folder's training_report.json (eval) and eval.log.
# The result is $V2/rl/policy (policy + VQ-VAE, bf16 policy weights), with the supervised model
# in $V2/supervised and BEFORE's evaluation in $V2/before; copy the folder that wins to
# models/demo after reading the evaluations.
set -euo pipefail
# shellcheck disable=SC2086  # VQ_ARGS and POLICY_ARGS are lists of options
cd "$(dirname "$0")/.."
export PY=${PY:-python3}
V2=${V2:-runs/demo_v2}
WORKERS=${WORKERS:-16}
VQ_SECONDS=${VQ_SECONDS:-900}
POLICY_SECONDS=${POLICY_SECONDS:-600}
RL_BUDGET=${RL_BUDGET:-1200}
RL_STEPS=${RL_STEPS:-80}
VQ_ARGS=${VQ_ARGS:-}
VQ_FROM=${VQ_FROM:-}
POLICY_INIT=${POLICY_INIT:-}
POLICY_ARGS=${POLICY_ARGS:-}
STAGES=${STAGES:-data,vqvae,policy,eval,rl}
BEFORE=${BEFORE:-}
EVAL_N=${EVAL_N:-1000}
EVAL_TWO_STEP_N=${EVAL_TWO_STEP_N:-1000}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
pids=()
# evaluate FOLDER WORKERS [extra train_demo.py options]: in the background, logged to FOLDER/eval.log
evaluate() {
  local folder=$1 workers=$2; shift 2
  stamp "evaluation of $folder (background, $workers judge processes)"
  $PY scripts/train_demo.py --stages eval --out "$folder" --workers "$workers" --gen-batch 500 \
    --eval-n "$EVAL_N" --eval-two-step-n "$EVAL_TWO_STEP_N" "$@" > "$folder/eval.log" 2>&1 &
  pids+=($!)
}

mkdir -p "$V2/supervised"
if has data; then
  stamp "data"
  PY=$PY WORKERS=$WORKERS WORDING=v2 bash scripts/make_demo_data.sh
fi
if [ -n "$VQ_FROM" ]; then
  stamp "VQ-VAE from $VQ_FROM"
  cp "$VQ_FROM/vqvae.safetensors" "$VQ_FROM/vqvae_config.json" "$V2/supervised/"
elif has vqvae; then
  stamp "vqvae (${VQ_SECONDS}s)"
  $PY scripts/train_demo.py --stages vqvae,encode --out "$V2/supervised" --workers "$WORKERS" \
    --vq-seconds "$VQ_SECONDS" $VQ_ARGS
fi
if [ -n "$BEFORE" ]; then
  if ! cmp -s "$BEFORE/vqvae.safetensors" "$V2/supervised/vqvae.safetensors"; then
    echo "error: BEFORE=$BEFORE has another VQ-VAE than this run; its reference grids would differ (use VQ_FROM=$BEFORE)" >&2
    exit 1
  fi
  mkdir -p "$V2/before" && cp -r "$BEFORE/." "$V2/before/"  # the eval writes its report into the folder
  evaluate "$V2/before" "$((WORKERS * 3 / 4))"  # the policy stage needs little CPU
fi
if has policy; then
  stamp "policy (${POLICY_SECONDS}s)"
  $PY scripts/train_demo.py --stages encode,policy --out "$V2/supervised" --workers "$WORKERS" \
    --policy-seconds "$POLICY_SECONDS" ${POLICY_INIT:+--policy-init "$POLICY_INIT"} $POLICY_ARGS
fi
# The ground truth and the VQ-VAE's reconstructions are judged once, with the first model evaluated.
skip=(); [ -n "$BEFORE" ] && skip=(--skip-reference-eval)
if has eval; then
  # next to Hi-GRPO (its reward workers take half the CPUs) it gets a quarter of them
  workers=$WORKERS; has rl && workers=$((WORKERS / 4))
  evaluate "$V2/supervised" "$workers" "${skip[@]}"
  skip=(--skip-reference-eval)
fi
if has rl; then
  stamp "Hi-GRPO (${RL_BUDGET}s)"
  STAGES=train START="$V2/supervised" RUN="$V2/rl" REWARDS=strict STEPS="$RL_STEPS" BUDGET="$RL_BUDGET" bash scripts/rl_demo.sh
  evaluate "$V2/rl/policy" "$WORKERS" "${skip[@]}"
fi
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
for f in "$V2/before" "$V2/supervised" "$V2/rl/policy"; do
  [ -f "$f/eval.log" ] && { echo "== $f"; tail -n 4 "$f/eval.log"; }
done
[ "$status" = 0 ] || { echo "error: an evaluation failed ($status); see the eval.log files above" >&2; exit "$status"; }
stamp "done"
