"""`ar3d` command line: generate, decode, encode, render, info, quantize, judges, train, serve, eval.

This module is the entry point (``ar3d.cli:main``) and the argument parser; the commands live in
``ar3d.commands`` and are imported only when they run, so ``ar3d --help`` and ``--version`` never
import torch. Every user-facing failure is an `Ar3dError`-like exception with a message that says
what to do; `main` prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands.common import CliError  # noqa: F401  (re-exported: the commands' user error)


def _command(module: str, name: str):
    """The function ``name`` of ``ar3d.commands.<module>``, imported when the command runs."""

    def run(args):
        return getattr(importlib.import_module(f"ar3d.commands.{module}"), name)(args)

    run.__name__ = name
    return run


cmd_generate = _command("generate", "cmd_generate")
SMOOTHING_CHOICES = ("none", "low", "medium", "high")  # = ar3d.core.mesh.SMOOTHING_LEVELS (not imported: no torch for --help)
cmd_decode = _command("codes", "cmd_decode")
cmd_encode = _command("codes", "cmd_encode")
cmd_info = _command("info", "cmd_info")
cmd_quantize = _command("quantize", "cmd_quantize")
cmd_render = _command("render", "cmd_render")
cmd_judges = _command("services", "cmd_judges")
cmd_train = _command("services", "cmd_train")
cmd_serve = _command("services", "cmd_serve")
cmd_eval = _command("evaluate", "cmd_eval")
cmd_eval_compare = _command("evaluate", "cmd_eval_compare")


# --- argument checks (before any model loads) ------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to read more, no usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(kind, what: str, ok):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if value != value or value in (float("inf"), float("-inf")) or not ok(value):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


_count = _number(int, "must be 1 or more", lambda v: v >= 1)
_non_negative_int = _number(int, "must be 0 or more", lambda v: v >= 0)
_temperature = _number(float, "must be 0 (greedy) or more", lambda v: v >= 0)
_top_p = _number(float, "must be in (0, 1]", lambda v: 0 < v <= 1)


# --- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .core.sampling import SamplingConfig

    d = SamplingConfig()
    parser = _Parser(prog="ar3d", description="Text-to-3D with ShapeLLM-Omni / AR3D-R1.")
    parser.add_argument("--version", action="version", version=f"ar3d {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def engine_arg(p):
        p.add_argument("--engine", choices=["auto", "graph", "transformers"],
                       help="generation engine (default: $AR3D_ENGINE, then auto = the graph engine for "
                            "Qwen2 / Qwen2.5-VL policies, transformers' generate otherwise)")  # fmt: skip
        precision_arg(p)

    def precision_arg(p):
        p.add_argument("--precision", choices=["default", "fp8", "int8"],
                       help="8-bit weights for generation on a CUDA GPU (fp8 needs Hopper/Ada; default: "
                            "$AR3D_PRECISION, then the model's dtype)")  # fmt: skip

    def threads_arg(p):
        p.add_argument("--threads", help="CPU threads for torch: a number or auto (default: $AR3D_THREADS, then "
                                         "$OMP_NUM_THREADS, then auto = one per core, waiting passively)")  # fmt: skip

    def model_args(p, policy=True):
        threads_arg(p)
        if policy:
            p.add_argument("--model", help="policy folder or Hugging Face id (default: $AR3D_MODEL, then the default model)")
        p.add_argument("--vqvae", help="VQ-VAE weights file/folder or Hugging Face id (default: the one bundled with --model; "
                                       "for decode, the sidecar's; $AR3D_VQVAE; the one bundled with $AR3D_MODEL or the "
                                       "default model; then yejunliang23/3DVQVAE)")  # fmt: skip
        p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")

    g = sub.add_parser("generate", help="prompt → mesh file (+ a JSON sidecar)")
    g.add_argument("prompt")
    g.add_argument("-o", "--output", default="ar3d.glb", help="output mesh: .glb, .obj, .ply or .stl (default ar3d.glb)")
    model_args(g)
    engine_arg(g)
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: bf16 on GPU, fp32 on CPU")
    g.add_argument("--two-step", action="store_true", help="Hi-GRPO two-step generation: plan → coarse, visual plan → refined")
    g.add_argument("--keep-coarse", action="store_true", help="with --two-step, also write the coarse mesh (*_coarse.*)")
    g.add_argument("--samples", type=_count, default=1, help="number of samples (files get _0, _1, … suffixes)")
    g.add_argument("--best-of", type=_count, default=1,
                   help="generate N candidates per sample and keep the best by --rank-rewards (default 1: no ranking)")
    g.add_argument("--rank-rewards", help="with --best-of: a reward preset or TOML file that ranks the candidates "
                                          "(default: demo_strict for the demo model, else geometry)")  # fmt: skip
    g.add_argument("--seed", type=int, help="random seed (default: random, recorded in the sidecar)")
    g.add_argument("--temperature", type=_temperature, default=d.temperature, help=f"0 = greedy (default {d.temperature})")
    g.add_argument("--top-p", type=_top_p, default=d.top_p, help=f"default {d.top_p}")
    g.add_argument("--top-k", type=_non_negative_int, default=d.top_k, help=f"default {d.top_k}")
    g.add_argument("--max-plan-tokens", type=_non_negative_int, default=d.max_plan_tokens, help=f"plan length cap (default {d.max_plan_tokens})")
    g.add_argument("--smoothing", choices=SMOOTHING_CHOICES, default="medium",
                   help="mesh smoothing: none (voxel steps), low, medium (default), high (rounder, thin parts thinner)")  # fmt: skip
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars (model loading included)")
    g.set_defaults(func=cmd_generate)

    dec = sub.add_parser("decode", help="codes (sidecar .json, .npy, or mesh-token text; '-' = stdin) → mesh")
    dec.add_argument("input")
    dec.add_argument("-o", "--output", required=True)
    dec.add_argument("--repair", action="store_true", help="pad/truncate malformed token text (reported)")
    model_args(dec)
    dec.set_defaults(func=cmd_decode)

    enc = sub.add_parser("encode", help="mesh file → 1024 codes (.json, .npy, .txt; default: print token text)")
    enc.add_argument("mesh")
    enc.add_argument("-o", "--output")
    model_args(enc)
    enc.set_defaults(func=cmd_encode)

    r = sub.add_parser("render", help="render meshes into views (+ grid.png, transforms.json), resumable")
    r.add_argument("inputs", nargs="+", help="mesh files, globs, directories, or JSONL manifests ({\"mesh\": path, \"id\": out/sub/dir})")
    r.add_argument("--out", required=True, help="output folder: one sub-folder per mesh")
    r.add_argument("--views", default="six", help="six (default), ring:N[@elevation], hammersley:N")
    r.add_argument("--engine", default="workbench", choices=["workbench", "eevee", "cycles"])
    r.add_argument("--resolution", type=int, default=512)
    r.add_argument("--samples", type=int, default=16, help="Cycles/Eevee samples (default 16)")
    r.add_argument("--background", default="transparent", help="transparent, white, or r,g,b")
    r.add_argument("--workers", type=int, default=None, help="Blender worker processes (default: see PoolConfig)")
    r.add_argument("--device", default="auto", help="Cycles device: auto (OPTIX → CUDA → HIP → Metal → CPU), gpu, cpu")
    r.add_argument("--shard", help="i/n: render only every n-th item starting at i (for farm job arrays)")
    r.add_argument("--timeout", type=float, default=300, help="seconds per mesh before its worker is replaced")
    r.add_argument("--retries", type=int, default=2, help="retries of a mesh whose worker crashed (a timed-out mesh is not retried)")
    r.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS", help="render on a Ray cluster: auto (the cluster of this node, else a local Ray) or the head's host:port")
    r.add_argument("--workers-per-node", type=int, help="with --ray: Blender workers per node (default: the node's CPUs)")
    r.add_argument("--force", action="store_true", help="re-render items that are already done")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(func=cmd_render)

    inf = sub.add_parser("info", help="versions, devices and models found locally")
    inf.add_argument("--json", action="store_true")
    inf.add_argument("--model", help="describe this policy folder or id instead of the default (its precision too)")
    threads_arg(inf)
    inf.set_defaults(func=cmd_info)

    qz = sub.add_parser("quantize", help="write a copy of a policy with 8-bit weights (fp8/int8) for GPU generation")
    qz.add_argument("model", help="policy folder or Hugging Face id (the full-precision source)")
    qz.add_argument("--precision", required=True, choices=["fp8", "int8"],
                    help="fp8 (e4m3, GPUs with compute capability 8.9+) or int8 (any recent CUDA GPU)")  # fmt: skip
    qz.add_argument("-o", "--output", required=True, help="the new model folder (pass it to --model)")
    qz.add_argument("--force", action="store_true", help="replace the output folder when it exists")
    qz.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    threads_arg(qz)
    qz.set_defaults(func=cmd_quantize)

    jd = sub.add_parser("judges", help="print (or --run) the `vllm serve` commands of the reward judges")
    jd.add_argument("--gpus", help="GPU indices, e.g. 0,1,2: one judge per GPU, round-robin (default: all share one)")
    jd.add_argument("--port-base", type=int, default=8000, help="first port; judges take consecutive ports (default 8000)")
    jd.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: local only)")
    jd.add_argument("--run", action="store_true", help="start the judges and wait; Ctrl-C stops them all")
    jd.set_defaults(func=cmd_judges)

    sv = sub.add_parser("serve", help="HTTP job server for the Blender add-on and scripts (needs ar3d[serve])")
    model_args(sv)
    engine_arg(sv)
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: local only; any other needs a token)")
    sv.add_argument("--port", type=int, default=8765, help="default 8765")
    sv.add_argument("--token", help="bearer token every request but /v1/health must carry (default: $AR3D_SERVER_TOKEN)")
    sv.add_argument("--max-queue", type=int, default=8, help="jobs allowed to wait; more get 429 (default 8)")
    sv.add_argument("--keep-jobs", type=int, default=64, help="finished jobs remembered with their GLBs (default 64)")
    sv.add_argument("--rank-rewards", help="best-of-N: a reward preset (geometry, demo, paper) or TOML file that ranks the samples")
    sv.set_defaults(func=cmd_serve)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on a benchmark: generate, render, metrics, report (resumable)")
    ev.add_argument("--out", default="ar3d-eval", help="output folder; rerunning on it resumes (default ar3d-eval)")
    ev.add_argument("--benchmark", help="JSONL benchmark file or bundled suite name (default: ar3d-reason, 5 categories x 42)")
    ev.add_argument("--categories", help="comma-separated categories to evaluate (default: all)")
    ev.add_argument("--limit", type=int, help="only the first N prompts of each category (quick runs)")
    model_args(ev)
    ev.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: bf16 on GPU, fp32 on CPU")
    precision_arg(ev)
    ev.add_argument("--label", help="the run's name in reports (default: the model folder's name)")
    ev.add_argument("--compare-model", help="also evaluate this checkpoint (into OUT/b; the first goes to OUT/a) and write OUT/comparison.{md,html}")
    ev.add_argument("--compare-vqvae", help="VQ-VAE of --compare-model (default: as for --model)")
    ev.add_argument("--compare-label", help="name of the second run in reports")
    ev.add_argument("--samples", type=_count, default=1, help="samples per prompt (default 1)")
    ev.add_argument("--two-step", action="store_true", help="Hi-GRPO two-step generation; the refined mesh is scored")
    ev.add_argument("--seed", type=int, default=0, help="base seed; batch seeds derive from it and the prompt ids (default 0)")
    ev.add_argument("--batch-size", type=_count, default=8, help="prompts per generate call (default 8; 1 = per-prompt seeds)")
    ev.add_argument("--temperature", type=_temperature, default=d.temperature, help=f"0 = greedy (default {d.temperature})")
    ev.add_argument("--top-p", type=_top_p, default=d.top_p, help=f"default {d.top_p}")
    ev.add_argument("--top-k", type=_non_negative_int, default=d.top_k, help=f"default {d.top_k}")
    ev.add_argument("--max-plan-tokens", type=_non_negative_int, default=d.max_plan_tokens, help=f"plan length cap (default {d.max_plan_tokens})")
    ev.add_argument("--views", default="ring:8@30", help="evaluation views: ring:8@30 (default, TRELLIS-style: 8 views at 30°), ring:4@30, or any `ar3d render --views` spec")
    ev.add_argument("--resolution", type=int, default=512, help="render side in pixels (default 512)")
    ev.add_argument("--engine", default="workbench", choices=["workbench", "eevee", "cycles"], help="default workbench")
    ev.add_argument("--render-samples", type=int, default=16, help="Cycles/Eevee samples (default 16)")
    ev.add_argument("--workers", type=int, help="Blender worker processes (default: min(4, CPUs))")
    ev.add_argument("--render-timeout", type=float, default=300, help="seconds per mesh before its worker is replaced")
    ev.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS", help="render on a Ray cluster (auto, local or the head's host:port); see ar3d render --ray")
    ev.add_argument("--rewards", default="geometry", help="reward preset (geometry, demo, paper), a TOML file, or none (default geometry)")
    ev.add_argument("--reward-resolution", type=int, default=256, help="side of the six reward views (default 256)")
    ev.add_argument("--metrics", default="auto", help="auto (clip, inception, dinov2 when their weights are found; others reported unavailable), none, or a list of clip,inception,inception_tv,dinov2 (required)")
    ev.add_argument("--clip-model", default="ViT-L-14", help="open_clip architecture or model-config JSON (default ViT-L-14, OpenAI weights)")
    ev.add_argument("--clip-checkpoint", help="CLIP weights file (default: $AR3D_CLIP_CHECKPOINT, then the HF cache); given → required")
    ev.add_argument("--inception-weights", help="FID Inception weights, pt_inception-2015-12-05-6726825d.pth (default: $AR3D_INCEPTION_WEIGHTS, then the torch hub cache); given → required")
    ev.add_argument("--inception-tv-weights", help="torchvision's Inception-v3 weights for the inception_tv features (default: $AR3D_INCEPTION_TV_WEIGHTS, then the torch hub cache); given → required")
    ev.add_argument("--dinov2", help="DINOv2 folder or HF id (default: $AR3D_DINOV2, then facebook/dinov2-base in the HF cache); given → required")
    ev.add_argument("--feature-batch-size", type=int, default=32, help="images per forward pass of the feature extractors")
    ev.add_argument("--kd-subsets", type=int, default=100, help="KD random subsets (default 100)")
    ev.add_argument("--kd-subset-size", type=int, default=1000, help="KD subset size, shrunk to the smaller set (default 1000)")
    ev.add_argument("--grid-samples", dest="top_k_report", type=int, default=4, help="samples in the report's best/worst grids (default 4)")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_eval)

    ec = sub.add_parser("eval-compare", help="compare two `ar3d eval` folders in one report (no generation)")
    ec.add_argument("run_a", help="the baseline run folder")
    ec.add_argument("run_b", help="the run compared against it (Δ = B − A)")
    ec.add_argument("--out", required=True, help="folder for comparison.md, comparison.html and its images")
    ec.add_argument("--labels", help="names of the two runs, e.g. base,rl (default: their labels)")
    ec.add_argument("--grid-samples", dest="top_k", type=int, default=4, help="prompts in the gained/lost grids (default 4)")
    ec.add_argument("--allow-feature-mismatch", action="store_true", help="compare runs whose features differ (their KD/FD are left out)")
    ec.set_defaults(func=cmd_eval_compare)

    from .trainer.config import add_cli_arguments

    tr = sub.add_parser("train", help="Hi-GRPO training from a config file (see trainer/configs/)")
    add_cli_arguments(tr)
    threads_arg(tr)
    tr.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    tr.set_defaults(func=cmd_train)
    return parser


def _apply_threads(args) -> None:
    """The CPU thread policy (core/threads.py) for commands that run torch, before they start."""
    if hasattr(args, "threads"):
        from .core.threads import apply

        apply(args.threads)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (2, one line): a status, not an exit
        return e.code if isinstance(e.code, int) else 2
    from .core.errors import Ar3dError

    try:
        _apply_threads(args)
        return args.func(args)
    except (CliError, Ar3dError) as e:
        print(f"ar3d: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ar3d: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
