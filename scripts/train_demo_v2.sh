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
#                                    #      STAGES=data,vqvae,policy,eval,rl (eval: the supervised
#                                    #      model alone; rl evaluates before and after side by side)
# The result is $V2/rl/policy (policy + VQ-VAE, bf16 policy weights), with the supervised model
# in $V2/supervised; copy the folder that wins to models/demo after reading both evaluations.
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
has() { [[ ",$STAGES," == *",$1,"* ]]; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

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
if has policy; then
  stamp "policy (${POLICY_SECONDS}s)"
  $PY scripts/train_demo.py --stages encode,policy --out "$V2/supervised" --workers "$WORKERS" \
    --policy-seconds "$POLICY_SECONDS" ${POLICY_INIT:+--policy-init "$POLICY_INIT"} $POLICY_ARGS
fi
if has eval; then
  stamp "evaluation of the supervised model"
  $PY scripts/train_demo.py --stages eval --out "$V2/supervised" --workers "$WORKERS" --gen-batch 500
fi
if has rl; then
  stamp "Hi-GRPO (${RL_BUDGET}s), then the evaluation of before and after"
  START="$V2/supervised" RUN="$V2/rl" REWARDS=strict STEPS="$RL_STEPS" BUDGET="$RL_BUDGET" bash scripts/rl_demo.sh
fi
stamp "done"
