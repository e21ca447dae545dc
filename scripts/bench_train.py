"""One Hi-GRPO step at the real 7B shape (random weights), LoRA on one GPU: the time of each phase
and peak memory.

The policy is Qwen2.5-VL-7B + mesh tokens with random bf16 weights built on the GPU, the VQ-VAE
has the released shape (random fp16 weights); rollouts are G = 8 samples of one prompt, two
steps (plan → coarse, visual plan → refined), plans capped at ``--plan`` tokens. Rewards are the
weight-free geometry checks that read the decoded grid (fill, single part): bpy cannot run on
the GPU machines, so rendering is measured separately on the CPU (BENCHMARKS.md, issue #3).

    python scripts/bench_train.py --out train.json        # GPU, real shapes
    python scripts/bench_train.py --tiny                  # CPU smoke test

Generation per token: the trainer's rollout (LoRA adapters merged for it, ``lora.merge_rollouts``,
or 8-bit copies with ``--rollout-precision``) next to the same engine on the same bf16 weights with
the adapter switched off (the inference path), both as seconds per decode step of the whole group
(max completion length per call).

The step-time options (issue #16), each a flag so that one device call can run them side by side:
``--rollout-precision fp8`` (8-bit rollouts with truncated importance weights), ``--no-grad-ckpt``
with ``--rows-per-forward N`` (no recomputed forward; activations bounded by N rows), and
``--lora-dropout 0`` (then π_old comes from the first update's forward, one pass fewer).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import tempfile
import time
from pathlib import Path

from ar3d.core import threads  # before torch: OpenMP reads its wait policy when torch loads
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/ beside the package
from bench_generate import build_policy  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--model", help="a trained policy folder (e.g. models/demo) instead of random 7B-shape weights")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--plan", type=int, default=64, help="max plan tokens")
    ap.add_argument("--steps", type=int, default=2, help="training steps; the last is reported")
    ap.add_argument("--updates", type=int, default=2, help="updates per rollout batch (μ)")
    ap.add_argument("--lora-r", type=int, default=64)
    ap.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (ar3d's default 0.05)")
    ap.add_argument("--rollout-precision", default="default", choices=("default", "fp8", "int8"))
    ap.add_argument("--no-grad-ckpt", action="store_true", help="train without gradient checkpointing")
    ap.add_argument("--rows-per-forward", type=int, default=0, help="train.rows_per_forward (0: all rows at once)")
    ap.add_argument("--mesh-workers", type=int, default=None, help="render.mesh_workers (default: automatic)")
    ap.add_argument("--no-infer", action="store_true", help="skip the inference-engine comparison")
    ap.add_argument("--label", default="", help="a name for this configuration in the output")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", help="CPU threads for torch (default: $AR3D_THREADS, then auto; ar3d.core.threads)")
    args = ap.parse_args(argv)
    threads.apply(args.threads)

    from ar3d.core.pipeline import TextTo3D
    from ar3d.core.rewards import RewardConfig, RewardEnsemble, TermConfig
    from ar3d.core.vqvae import VQVAE3D, VQVAEConfig
    from ar3d.trainer.config import TrainConfig
    from ar3d.trainer.trainer import HiGRPOTrainer

    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    t0 = time.perf_counter()
    if args.model:  # a trained policy: how far 8-bit rollouts drift from it (tis_weight_mean, rollout_logp_gap)
        pipeline = TextTo3D.load(args.model, device=str(device), dtype=dtype, precision="default")
        policy = pipeline.policy
    else:
        policy, shape = build_policy(args.tiny, device, dtype, seed=0)
        vq_cfg = VQVAEConfig(num_embeddings=policy.vocab.num_codes)
        if args.tiny:
            vq_cfg = VQVAEConfig(num_embeddings=policy.vocab.num_codes, encoder_channels=(8, 16, 32),
                                 decoder_channels=(32, 16, 8), num_res_blocks=1, num_res_blocks_middle=1)  # fmt: skip
        vq = VQVAE3D(vq_cfg).to(device).eval()
        if device.type == "cuda":
            vq = vq.to_inference_dtype(torch.float16)
        pipeline = TextTo3D(policy, vq)
    build_s = time.perf_counter() - t0

    tmp = Path(tempfile.mkdtemp())
    (tmp / "prompts.txt").write_text("a wooden chair with four legs\na tall lamp\n")
    cfg = TrainConfig.from_dict({
        "model": {"dtype": "bf16", "gradient_checkpointing": not args.no_grad_ckpt,
                  "lora": {"enabled": True, "r": args.lora_r, "alpha": 2 * args.lora_r, "dropout": args.lora_dropout}},
        "data": {"path": str(tmp / "prompts.txt")},
        "rollout": {"group_size": args.group, "prompts_per_step": 1, "two_step": True,
                    "precision": args.rollout_precision,
                    "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_plan_tokens": args.plan}},
        "rewards": {"preset": "geometry"},
        "render": {"mesh_workers": args.mesh_workers},
        "algorithm": {"updates_per_batch": args.updates, "beta": 0.01, "dynamic_sampling": False},
        "optim": {"lr": 1e-6, "warmup_steps": 0},
        "train": {"steps": args.steps, "grad_accum": 1, "rows_per_forward": args.rows_per_forward},
        "checkpoint": {"dir": str(tmp / "ckpt"), "every": 10**6, "export_final": False},
        "logging": {"dir": str(tmp / "logs"), "tensorboard": False, "text_every": 0, "image_every": 0},
    }, validate=False)  # fmt: skip
    rewards = RewardConfig(step1=[TermConfig("geometry.fill"), TermConfig("geometry.single_part")],
                           step2=[TermConfig("geometry.fill"), TermConfig("geometry.single_part")])  # fmt: skip
    trainer = HiGRPOTrainer(cfg, ensemble=RewardEnsemble(rewards), pipeline=pipeline)
    rollouts = []
    run_rollout = trainer.runner.run

    def record(*a, **k):
        rollouts.append(run_rollout(*a, **k))
        return rollouts[-1]

    trainer.runner.run = record
    trainable = sum(p.numel() for p in trainer.trainable)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    history = []
    for _ in range(args.steps):
        t = time.perf_counter()
        stats = trainer.train_step()
        trainer.step += 1
        stats["time/step_s"] = time.perf_counter() - t
        history.append(stats)
        print(json.dumps({k: round(v, 3) for k, v in stats.items() if k.startswith("time/")}), flush=True)
    last = history[-1]
    train_ms = _ms_per_token(rollouts[-1].samples, rollouts[-1].timings, "generate_step")
    infer_ms = None
    peft_model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(peft_model, "disable_adapter") and not args.no_infer:
        sampling = cfg.rollout.sampling.to_sampling_config()
        for _ in range(2):  # the second is warm, as the trainer's rollout of the last step is
            with torch.no_grad(), peft_model.disable_adapter():
                gen = trainer.policy.generate(["a wooden chair with four legs"], args.group, True, sampling, seed=1)
        infer_ms = _ms_per_token(gen.samples, gen.timings, "step")
    tokens = last.get("loss/step1_tokens", 0) + last.get("loss/step2_tokens", 0)
    result = {
        "date": _dt.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "policy": args.model or ("tiny" if args.tiny else "qwen2.5-vl-7b shape, random bf16"),
        "label": args.label,
        "lora_r": args.lora_r,
        "lora_dropout": args.lora_dropout,
        "rollout_precision": args.rollout_precision,
        "gradient_checkpointing": not args.no_grad_ckpt,
        "rows_per_forward": args.rows_per_forward,
        "mesh_workers": trainer.runner.meshers.workers,
        "pi_old_from_first_update": trainer._old_from_update,
        "trainable_params": trainable,
        "group": args.group,
        "max_plan_tokens": args.plan,
        "updates_per_batch": args.updates,
        "build_s": round(build_s, 1),
        "phases_s": {k.removeprefix("time/"): round(v, 2) for k, v in last.items() if k.startswith("time/")},
        "loss_tokens_per_update": tokens,
        "tis": {k.removeprefix("loss/"): round(v, 4) for k, v in last.items()
                if k.endswith(("tis_weight_mean", "tis_capped_frac", "rollout_logp_gap"))},
        "generate_ms_per_token": {"trainer_rollout": train_ms, "inference_engine": infer_ms,
                                  "ratio": round(train_ms / infer_ms, 3) if train_ms and infer_ms else None},
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 1) if device.type == "cuda" else None,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


def _ms_per_token(samples, timings, prefix):
    """Milliseconds per decode step of one generation call (all rows of the group together)."""
    total_s = steps = 0
    for k in (1, 2):
        key = f"{prefix}{k}_seconds"
        if key in timings:
            total_s += timings[key]
            steps += max(len(s.steps[k - 1].completion_ids) for s in samples)
    return round(1000 * total_s / steps, 3) if steps else None


if __name__ == "__main__":
    raise SystemExit(main())
