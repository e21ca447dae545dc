#!/usr/bin/env bash
# Hi-GRPO on the bundled demo model, then the held-out evaluation of the model before and after
# (issue #7). One GPU; the run is time-boxed and exports its policy where it stops.
#   bash scripts/rl_demo.sh     # env: STEPS=60 BUDGET=330 (s) RUN=runs/demo PROMPTS=16 GROUP=8 EVAL_N=1000
# Needs data/demo/{train.jsonl,test.npz,refs.npz} (scripts/make_demo_data.sh) and trimesh for
# the family judge. Rewards: the prompt's family and attributes checked on the decoded grid +
# the fill band (occupancy only: no Blender needed, so it runs on GPU machines without bpy).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
STEPS=${STEPS:-60}
BUDGET=${BUDGET:-330}
RUN=${RUN:-runs/demo}
EVAL_N=${EVAL_N:-1000}
PROMPTS=${PROMPTS:-16}  # prompts per step (x 8 samples each)
GROUP=${GROUP:-8}
LR=${LR:-3e-5}
EXTRA=${EXTRA:-3}      # dynamic sampling: extra rollouts per step to refill dropped groups
EVAL_BEFORE=${EVAL_BEFORE:-1}
rewards='[{reward="procedural.family",options={references="data/demo/refs.npz"}},{reward="procedural.attributes"},{reward="geometry.fill",weight=0.25}]'
timeout -s INT --kill-after=120 "$BUDGET" "$PY" -m ar3d.cli train --config trainer/configs/demo.toml \
  --set data.path=data/demo/train.jsonl --set "rewards.step1=$rewards" --set "rewards.step2=$rewards" \
  --set rollout.prompts_per_step="$PROMPTS" --set rollout.group_size="$GROUP" --set optim.lr="$LR" --set algorithm.max_extra_batches="$EXTRA" --set optim.warmup_steps=5 \
  --set train.steps="$STEPS" --set checkpoint.every=20 --set logging.tensorboard=false \
  --set checkpoint.dir="$RUN/checkpoints" --set checkpoint.export_dir="$RUN/policy" --set logging.dir="$RUN/logs" \
  || echo "training stopped with status $? (a signal exports the policy where it stopped)"
cp models/demo/vqvae.safetensors models/demo/vqvae_config.json "$RUN/policy/"
models=("$RUN/policy")
if [ "$EVAL_BEFORE" = 1 ]; then
  mkdir -p "$RUN/eval_before"
  cp -r models/demo/. "$RUN/eval_before/"  # evaluate a copy: the eval writes its report into the folder
  models=("$RUN/eval_before" "$RUN/policy")
fi
for m in "${models[@]}"; do
  "$PY" scripts/train_demo.py --stages eval --out "$m" --data data/demo --eval-n "$EVAL_N" \
    --eval-two-step-n "$EVAL_N" --gen-batch 500
done
