#!/usr/bin/env python3
"""Train the offline demo text-to-3D model (issue #7) on the procedural shapes.

It is the real architecture, only small: a :class:`ar3d.core.vqvae.VQVAE3D` with narrow widths and
a small codebook, and a Qwen2.5-VL policy built by :mod:`ar3d.core.factory` with a BPE tokenizer
trained on the captions and plans. Everything is saved the way ``ar3d generate --model`` loads it:

    models/demo/
        config.json, generation_config.json, model.safetensors     the policy (bf16 weights)
        tokenizer.json, tokenizer_config.json, ...                   its tokenizer (chat template)
        vqvae.safetensors, vqvae_config.json                         the bundled VQ-VAE
        training_report.json                                         settings, seeds, metrics

Stages (``--stages``, comma-separated, run in this order):

    refs     CPU: fresh procedural reference samples for the family judge  -> DATA/refs.npz
    vqvae    train the VQ-VAE (straight-through VQ, EMA codebook, k-means init, dead-code restarts)
             and measure held-out reconstruction IoU (surface shell and filled solid)
    encode   all samples -> codes with the trained VQ-VAE             -> DATA/codes_{train,test}.npy
    policy   train the policy on chat-templated sequences, exactly as Policy.generate prompts it:
             one-step (ONE_STEP -> plan1 + codes), two-step step 1 (STEP1_PLAN -> plan1 + codes)
             and step 2 (STEP2_VISUAL with plan1 -> plan2 + codes); the loss is on the completion
    decoder  fine-tune the VQ-VAE's decoder (encoder and codebook frozen) to decode corrupted codes,
             random and the policy's own confusions, to the clean shape (demo_training/decoder.py)
    eval     held-out test captions -> Policy.load(out).generate -> VQ-VAE decode -> family judge
             (procedural.evaluate.classify_batch) and attribute checkers

Data (made on a CPU; see scripts/make_demo_data.sh)::

    python -m ar3d.procedural --n 20000 --split train --seed 1 --workers 2 --out data/demo/train.npz
    python -m ar3d.procedural --n 1000 --split test --seed 2 --workers 2 --out data/demo/test.npz
    python scripts/train_demo.py --stages refs

On the GPU machine (ar3d importable through a symlink, trimesh carried as a wheel for the judge)::

    python3 scripts/train_demo.py --stages vqvae,encode --vq-seconds 240
    python3 scripts/train_demo.py --stages encode,policy,eval --policy-seconds 330

CPU smoke test (tiny data made on the fly, tiny models, every stage; a few minutes on 2 cores):
``python scripts/train_demo.py --smoke [--out DIR --data DIR]`` (default /tmp/ar3d_demo_smoke/).
Training is time-budgeted (``--vq-seconds``, ``--policy-seconds``) with step caps; the report
records the steps actually made, the seeds and the versions.

Each stage is a module of ``scripts/demo_training/``; the ``eval`` stage's judge is
:mod:`ar3d.procedural.judge`. This file holds the options and runs the stages in order.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # imported rather than run: find demo_training
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_training.data import stage_refs  # noqa: E402
from demo_training.decoder import stage_decoder  # noqa: E402
from demo_training.encode import stage_encode  # noqa: E402
from demo_training.evaluate import stage_eval  # noqa: E402
from demo_training.policy import stage_policy  # noqa: E402
from demo_training.report import Report, environment, log  # noqa: E402
from demo_training.vqvae import stage_vqvae  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", default="vqvae,encode,policy,eval")
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--out", type=Path, default=Path("models/demo"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--limit", type=int, default=None, help="use the first N training samples")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of every stage into /tmp/ar3d_demo_smoke")
    # references for the judge
    ap.add_argument("--refs-per-family", type=int, default=60)
    ap.add_argument("--refs-seed", type=int, default=10_000)
    # VQ-VAE
    ap.add_argument("--codes", type=int, default=1024, help="codebook size = mesh tokens")
    ap.add_argument("--vq-enc", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--vq-dec", type=int, nargs="+", default=[64, 32, 16])
    ap.add_argument("--vq-res-blocks", type=int, default=1)
    ap.add_argument("--vq-mid-blocks", type=int, default=2)
    ap.add_argument("--vq-seconds", type=float, default=300)
    ap.add_argument("--vq-max-steps", type=int, default=100_000)
    ap.add_argument("--vq-batch", type=int, default=32)
    ap.add_argument("--vq-lr", type=float, default=1e-3)
    ap.add_argument("--vq-warm-frac", type=float, default=0.15, help="plain-autoencoder share of the budget")
    ap.add_argument("--vq-decay", type=float, default=0.99)
    ap.add_argument("--kmeans-batches", type=int, default=4)
    ap.add_argument("--kmeans-iters", type=int, default=20)
    ap.add_argument("--dead-threshold", type=float, default=0.05)
    ap.add_argument("--pos-weight", type=float, default=2.0)
    ap.add_argument("--dice-weight", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=0.25, help="commitment loss weight")
    ap.add_argument("--eval-batch", type=int, default=64)
    # robust decoder (demo_training/decoder.py)
    ap.add_argument("--decoder-seconds", type=float, default=180)
    ap.add_argument("--decoder-max-steps", type=int, default=100_000)
    ap.add_argument("--decoder-lr", type=float, default=3e-4)
    ap.add_argument("--decoder-noise", choices=("random", "policy", "mixed"), default="mixed")
    ap.add_argument("--decoder-clean-frac", type=float, default=0.25, help="share of samples decoded from exact codes")
    ap.add_argument("--decoder-random-max", type=float, default=0.05, help="highest share of codes replaced at random")
    ap.add_argument("--decoder-batch", type=int, default=64, help="rows per teacher-forced policy forward")
    ap.add_argument("--decoder-eval-n", type=int, default=200, help="held-out shapes for the before/after defect counts")
    # policy
    ap.add_argument("--bpe-vocab", type=int, default=1536)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--policy-init", type=Path, default=None,
                    help="warm start: a policy folder (its tokenizer and weights, trained on this VQ-VAE's codes)")
    ap.add_argument("--policy-seconds", type=float, default=330)
    ap.add_argument("--policy-max-steps", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--caption-draws", type=int, default=1,
                    help="captions per training sample: its own + N-1 fresh draws in the training wording")
    ap.add_argument("--caption-wording", default="v2", help="wording of the extra caption draws (v1 or v2)")
    ap.add_argument("--caption-partial", type=float, default=0.0,
                    help="share of the extra draws that name each attribute with probability 1/2 (short prompts)")
    ap.add_argument("--format-weights", type=float, nargs=3, default=[0.5, 0.25, 0.25],
                    help="sampling weights of one-step, two-step step 1, two-step step 2")  # fmt: skip
    # eval
    ap.add_argument("--eval-n", type=int, default=1000)
    ap.add_argument("--eval-two-step-n", type=int, default=200)
    ap.add_argument("--eval-seed", type=int, default=1234)
    ap.add_argument("--eval-max-plan", type=int, default=None)
    ap.add_argument("--precision", default="default", help="eval: fp8 / int8 weights (core/quantize.py; GPU)")
    ap.add_argument("--gen-batch", type=int, default=1000)
    ap.add_argument("--save-eval", type=Path, default=None, help="npz of generated codes")
    ap.add_argument("--eval-thresholds", type=float, nargs="*", default=[],
                    help="eval: also judge the same codes decoded at these logit thresholds (default: the "
                         "VQ-VAE config's decode_threshold only), reported under eval.thresholds; e.g. 0 -3")  # fmt: skip
    ap.add_argument("--eval-vqvae", nargs="*", default=[], metavar="LABEL=PATH",
                    help="eval: also judge the same codes decoded by these VQ-VAEs (same codebook: e.g. a robust "
                         "decoder from the decoder stage), reported under eval.decoders")  # fmt: skip
    ap.add_argument("--skip-reference-eval", action="store_true",
                    help="eval: do not judge the ground-truth and VQ-VAE-reconstructed test grids (they depend only "
                         "on the data and the VQ-VAE: judge them once when several policies share one)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.smoke:
        # Never touch the shipped model: smoke runs write elsewhere unless told where.
        if args.out == ap.get_default("out"):
            args.out = Path("/tmp/ar3d_demo_smoke/model")
        if args.data == ap.get_default("data"):
            args.data = Path(os.environ.get("SMOKE_DATA", "/tmp/ar3d_demo_smoke/data"))
        args.device = args.device or "cpu"
        args.stages = "vqvae,encode,policy,eval" if args.stages == ap.get_default("stages") else args.stages
        args.vq_enc, args.vq_dec, args.vq_mid_blocks = [4, 8, 8], [8, 8, 4], 1
        args.vq_seconds, args.vq_max_steps, args.vq_batch = 600, 6, 2
        args.kmeans_batches, args.kmeans_iters, args.codes = 1, 3, 64
        args.hidden, args.layers, args.heads, args.kv_heads, args.intermediate = 64, 2, 4, 2, 128
        args.policy_seconds, args.policy_max_steps, args.batch, args.bpe_vocab = 600, 6, 2, 400
        args.eval_n, args.eval_two_step_n, args.gen_batch, args.eval_max_plan = 2, 1, 2, 8
        args.log_every, args.eval_batch, args.workers, args.warmup = 2, 2, 1, 2
        args.refs_per_family = 2
        args.decoder_seconds, args.decoder_max_steps, args.decoder_eval_n, args.decoder_batch = 600, 4, 2, 2
    return args


def make_smoke_data(args) -> None:
    """Tiny train/test files and judge references for --smoke, made once (seconds)."""
    from ar3d.procedural import generate_dataset, write_dataset

    for split, n, seed in (("train", 16, 1), ("test", 4, 2)):
        if not (args.data / f"{split}.npz").is_file():
            write_dataset(args.data / f"{split}.npz", generate_dataset(n, split, seed=seed), jsonl=False)
    if not (args.data / "refs.npz").is_file():
        stage_refs(args, None)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - {"refs", "vqvae", "encode", "policy", "decoder", "eval"}
    if unknown:
        raise SystemExit(f"unknown stages {sorted(unknown)}")
    args.data.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        make_smoke_data(args)
    report = None
    if set(stages) - {"refs"}:  # refs only make data: the model folder (the shipped one by default) is not touched
        args.out.mkdir(parents=True, exist_ok=True)
        report = Report(args.out / "training_report.json")
        runs = report.data.get("runs", [])
        runs.append({"argv": sys.argv[1:], "stages": stages, "env": environment(device),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})  # fmt: skip
        report.update("runs", runs)
    for name in ("refs", "vqvae", "encode", "policy", "decoder", "eval"):
        if name in stages:
            t = time.time()
            log(f"=== {name}")
            {"refs": lambda: stage_refs(args, report), "vqvae": lambda: stage_vqvae(args, device, report),
             "encode": lambda: stage_encode(args, device, report), "policy": lambda: stage_policy(args, device, report),
             "decoder": lambda: stage_decoder(args, device, report), "eval": lambda: stage_eval(args, device, report)}[name]()  # fmt: skip
            log(f"=== {name} done in {time.time() - t:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
