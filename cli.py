"""`ar3d` command line: generate, decode, encode, render, info, judges, train, serve, eval.

Heavy imports (torch, transformers) happen inside the commands so `ar3d --help` is instant.
Every user-facing failure is an `Ar3dError`-like exception with a message that says what to do;
`main` prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from . import __version__

EXPORT_FORMATS = (".glb", ".obj", ".ply", ".stl")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


# --- helpers -------------------------------------------------------------------------------
def _sampling(args):
    from .core.engine import SamplingConfig

    return SamplingConfig(
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, max_plan_tokens=args.max_plan_tokens
    )


def _output_paths(out: Path, n: int) -> list[Path]:
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise CliError(f"cannot write '{out}': the output must end in one of {', '.join(EXPORT_FORMATS)}")
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(n)]


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


class _ProgressBar:
    """A tqdm bar per generation step: plan tokens first, then mesh codes of 1024."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.key = enabled, None, None

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        key = (p.step, p.stage)
        if key != self.key:
            self.close()
            label = f"step {p.step}/{p.steps} {p.stage}" if p.steps > 1 else p.stage
            self.bar = tqdm(total=p.total, desc=label, unit="tok", leave=True, file=sys.stderr)
            self.key = key
        self.bar.update(p.mesh_tokens - self.bar.n)  # tqdm throttles redraws (mininterval)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --- commands ----------------------------------------------------------------------------
def cmd_generate(args) -> int:
    from .core.hub import is_demo_model
    from .core.mesh import export_mesh
    from .core.pipeline import TextTo3D

    paths = _output_paths(Path(args.output), args.samples)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    sampling = _sampling(args)
    t0 = time.perf_counter()
    pipe = TextTo3D.load(args.model, args.vqvae, device=args.device, dtype=args.dtype, engine=args.engine)
    load_seconds = time.perf_counter() - t0
    if is_demo_model(pipe.policy.path):
        print("ar3d: using the bundled demo model (procedural shapes only); pass --model or set "
              "AR3D_MODEL for ShapeLLM-Omni / AR3D-R1", file=sys.stderr)  # fmt: skip
    bar = _ProgressBar(not args.quiet)
    try:
        out = pipe.generate(args.prompt, args.samples, args.two_step, sampling, args.seed, progress=bar)
    finally:
        bar.close()
    failures = 0
    for path, r in zip(paths, out.results):
        sidecar = {
            "ar3d_version": __version__,
            "prompt": r.sample.prompt,
            "sample": r.sample.group_index,
            "seed": out.generation.seed,
            "two_step": args.two_step,
            "model": pipe.policy.name,
            "vqvae": pipe.vqvae_path,
            "engine": out.generation.engine,
            "sampling": vars(sampling),
            "plans": r.sample.plans,
            "codes": [s.codes.tolist() for s in r.sample.steps],
            "timings": dict(out.timings, load_seconds=load_seconds),
            "threads": _threads_info(),
            "diagnostics": out.generation.diagnostics,
            "mesh": None,
        }
        if r.mesh is None:
            failures += 1
            sidecar["error"] = r.error
            print(f"ar3d: sample {r.sample.group_index}: no mesh: {r.error}", file=sys.stderr)
        else:
            export_mesh(r.mesh, path)
            sidecar["mesh"] = {"path": path.name, "vertices": len(r.mesh.vertices), "faces": len(r.mesh.faces),
                               "watertight": bool(r.mesh.is_watertight)}  # fmt: skip
            if args.keep_coarse and r.coarse_mesh is not None:
                coarse = path.with_name(f"{path.stem}_coarse{path.suffix}")
                export_mesh(r.coarse_mesh, coarse)
                sidecar["coarse_mesh"] = coarse.name
            if not args.quiet:
                print(f"wrote {path}")
        _write_json(path.with_suffix(".json"), sidecar)
    return 1 if failures else 0


def _read_codes(source: str, repair: bool):
    """Codes from a generate sidecar (.json), a .npy array, or mesh-token text (file or '-')."""
    import numpy as np

    from .core.tokens import codes_from_text

    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise CliError(f"no such file: '{source}'")
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False).reshape(-1), None
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
            codes = data["codes"][-1] if isinstance(data, dict) else data
            return np.asarray(codes, dtype=np.int64).reshape(-1), None
    codes, repair_done = codes_from_text(text, repair=repair)
    return codes, repair_done


def cmd_decode(args) -> int:
    from .core.mesh import export_mesh, occupancy_to_mesh
    from .core.tokens import MeshTokenError
    from .core.vqvae import load_vqvae
    from .core.hub import resolve_vqvae

    try:
        codes, repair = _read_codes(args.input, args.repair)
    except MeshTokenError as e:
        raise CliError(f"'{args.input}': {e}") from e
    if repair:
        print(f"ar3d: repaired the mesh tokens: {repair.describe()}", file=sys.stderr)
    vq = load_vqvae(resolve_vqvae(args.vqvae, _model_dir_or_none(args.model)), device=args.device or "cpu")
    import torch

    out = Path(args.output)
    _output_paths(out, 1)
    try:
        occ = vq.decode_occupancy(torch.as_tensor(codes)[None])
    except ValueError as e:  # wrong count or codes outside this VQ-VAE's codebook
        raise CliError(f"'{args.input}': {e}") from e
    mesh = occupancy_to_mesh(occ[0, 0].cpu().numpy())
    export_mesh(mesh, out)
    print(f"wrote {out} ({len(mesh.faces)} faces)")
    return 0


def cmd_encode(args) -> int:
    import numpy as np
    import torch

    from .core.hub import resolve_vqvae
    from .core.mesh import mesh_to_occupancy
    from .core.vqvae import load_vqvae

    if not Path(args.mesh).is_file():
        raise CliError(f"no such mesh file: '{args.mesh}'")
    occ = mesh_to_occupancy(args.mesh)
    vq = load_vqvae(resolve_vqvae(args.vqvae, _model_dir_or_none(args.model)), device=args.device or "cpu")
    codes = vq.encode(torch.as_tensor(occ[None, None])).cpu().numpy()[0]
    out = Path(args.output) if args.output else None
    if out is None or out.suffix == ".txt":
        from .core.tokens import text_from_codes

        text = text_from_codes(codes)
        if out is None:
            print(text)
        else:
            out.write_text(text + "\n")
    elif out.suffix == ".npy":
        np.save(out, codes)
    elif out.suffix == ".json":
        _write_json(out, {"source": str(args.mesh), "codes": [codes.tolist()], "occupied_voxels": int(occ.sum())})
    else:
        raise CliError(f"cannot write codes to '{out}': use .json, .npy or .txt")
    if out is not None:
        print(f"wrote {out} ({int(occ.sum())} occupied voxels → {codes.size} codes)")
    return 0


def _model_dir_or_none(spec):
    from .core.hub import ModelNotFoundError, resolve_policy

    if spec is None:
        return None
    try:
        return resolve_policy(spec)
    except ModelNotFoundError:
        return None


def cmd_info(args) -> int:
    import os

    import torch
    import transformers

    from .core.hub import DEFAULT_VQVAE, cached_models, data_dir, default_policy, offline

    info = {
        "ar3d": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "devices": ["cpu"] + [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())],
        "bpy": _bpy_version(),
        "default_model": default_policy(),
        "default_vqvae": os.environ.get("AR3D_VQVAE") or DEFAULT_VQVAE,
        "hf_hub_offline": offline(),
        "data_dir": str(data_dir()),
        "models_found": cached_models(),
        "threads": _threads_info(),
    }
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for k, v in info.items():
            if k == "models_found":
                print(f"{k}:" + ("" if v else " none"))
                for m in v:
                    print(f"  {m['id']}  {m['bytes'] / 1e9:.2f} GB  {m['path']}")
            else:
                print(f"{k}: {v}")
    return 0


def cmd_render(args) -> int:
    from .headless.farm import collect_items, parse_shard, run_farm, shard
    from .headless.pool import PoolConfig
    from .headless.render import RenderConfig

    i, n = parse_shard(args.shard)
    items = shard(collect_items(args.inputs), i, n)
    if not items:
        raise CliError("no meshes to render in this shard")
    background = args.background
    if background not in ("transparent", "white"):
        try:
            background = tuple(float(c) for c in background.split(","))
            assert len(background) == 3
        except (ValueError, AssertionError):
            raise CliError(f"--background takes transparent, white or r,g,b in 0..1, not {args.background!r}") from None
    render_config = RenderConfig(engine=args.engine, resolution=args.resolution, samples=args.samples,
                                 views=args.views, device=args.device, background=background)  # fmt: skip
    pool_config = PoolConfig(workers=args.workers, timeout_s=args.timeout, max_retries=args.retries)
    out = Path(args.out)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="render", unit="mesh", file=sys.stderr)

    def progress(done, total):
        if bar is not None:
            bar.update(done - bar.n)

    try:
        summary = run_farm(items, out, render_config, pool_config, force=args.force, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    shard_note = f" (shard {i}/{n})" if n > 1 else ""
    print(f"ar3d render{shard_note}: {summary.line()}", file=sys.stderr)
    for f in summary.failures:
        print(f"  failed {f['id']}: {f['error']}", file=sys.stderr)
    if summary.failed:
        print(f"  details in {out / 'errors.jsonl'}", file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_judges(args) -> int:
    """Print (or run) the `vllm serve` commands of the default VLM judges."""
    from .core.rewards import vllm_serve

    judges = vllm_serve.plan(gpus=vllm_serve.parse_gpus(args.gpus), host=args.host, port_base=args.port_base)
    if args.run:
        return vllm_serve.run(judges)
    for j in judges:
        print(f"# {j.served_name} ({j.role}) → {j.base_url}")
        print(j.shell())
    return 0


def cmd_train(args) -> int:
    """Hi-GRPO training (one process here; `accelerate launch -m ar3d.cli train …` for several)."""
    from .trainer.config import config_from_args
    from .trainer.trainer import HiGRPOTrainer

    cfg = config_from_args(args)
    if args.print_config:
        from .trainer.config import dumps_toml

        print(dumps_toml(cfg.to_dict()))
        return 0
    HiGRPOTrainer(cfg).train()
    return 0


def cmd_serve(args) -> int:
    """The HTTP job server (see ar3d.server): the model loads once, jobs run in order."""
    try:
        from .server.app import serve
    except ImportError as e:
        raise CliError(f"ar3d serve needs FastAPI and uvicorn ({e.name or e} is missing): pip install 'ar3d[serve]'") from None
    return serve(args)


def _eval_config(args, out, model, vqvae, label):
    from .evaluation.runner import EvalConfig

    metrics = args.metrics.strip().lower()
    if metrics == "auto":
        chosen = None
    elif metrics == "none":
        chosen = []
    else:
        chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    return EvalConfig(
        out=Path(out), benchmark=args.benchmark, limit=args.limit, model=model, vqvae=vqvae, device=args.device,
        categories=[c.strip() for c in args.categories.split(",") if c.strip()] if args.categories else None,
        dtype=args.dtype, label=label, samples=args.samples, two_step=args.two_step, seed=args.seed,
        batch_size=args.batch_size, sampling=_sampling(args), views=args.views, resolution=args.resolution,
        engine=args.engine, render_samples=args.render_samples, workers=args.workers,
        render_timeout_s=args.render_timeout, rewards=args.rewards, reward_resolution=args.reward_resolution,
        metrics=chosen, clip_model=args.clip_model, clip_checkpoint=args.clip_checkpoint,
        inception_weights=args.inception_weights, dinov2=args.dinov2, feature_batch_size=args.feature_batch_size,
        kd_subsets=args.kd_subsets, kd_subset_size=args.kd_subset_size, top_k=args.top_k_report, progress=not args.quiet,
    )


def _print_run(res, label: str | None = None) -> None:
    name = f" {label}" if label else ""
    print(f"ar3d eval{name}: {res.line()}", file=sys.stderr)
    for f in res.failed:
        print(f"  failed {f['id']} ({f['stage']}): {f['error']}", file=sys.stderr)
    if res.failed:
        print(f"  details in {res.out / 'errors.jsonl'}; rerun the same command to retry them", file=sys.stderr)


def cmd_eval(args) -> int:
    """Evaluate a checkpoint on a benchmark (resumable); with --compare-model, two of them."""
    from .evaluation.runner import run_comparison, run_eval

    out = Path(args.out)
    if args.compare_model is None and args.compare_vqvae is None:
        cfg = _eval_config(args, out, args.model, args.vqvae, args.label)
        res = run_eval(cfg)
        _print_run(res)
        _print_unavailable(out)
        print(f"report: {res.report.get('md')} and {res.report.get('html')}")
        return 1 if res.failed else 0
    cfg_a = _eval_config(args, out / "a", args.model, args.vqvae, args.label)
    cfg_b = _eval_config(args, out / "b", args.compare_model or args.model, args.compare_vqvae or args.vqvae,
                         args.compare_label)  # fmt: skip
    res_a, res_b, paths = run_comparison(cfg_a, cfg_b, out)
    _print_run(res_a, "A")
    _print_run(res_b, "B")
    _print_unavailable(out / "a")
    print(f"reports: {res_a.report.get('md')}, {res_b.report.get('md')}; comparison: {paths['md']} and {paths['html']}")
    return 1 if res_a.failed or res_b.failed else 0


def _print_unavailable(run_dir: Path) -> None:
    settings = json.loads((run_dir / "eval.json").read_text())
    for name, f in settings.get("features", {}).items():
        if not f.get("available") and "not requested" not in f.get("reason", ""):
            print(f"ar3d eval: {name} not available: {f.get('reason')}", file=sys.stderr)


def cmd_eval_compare(args) -> int:
    """Compare two finished evaluation folders (no generation): one report, B against A."""
    from .evaluation.report import write_comparison

    for run in (args.run_a, args.run_b):
        if not (Path(run) / "eval.json").is_file():
            raise CliError(f"'{run}' is not an evaluation folder (no eval.json); make it with `ar3d eval --out {run}`")
    labels = tuple(args.labels.split(",", 1)) if args.labels else (None, None)
    if len(labels) != 2:
        raise CliError("--labels takes two names separated by a comma, e.g. base,rl")
    paths = write_comparison(args.run_a, args.run_b, Path(args.out), top_k=args.top_k, labels=labels)
    print(f"comparison: {paths['md']} and {paths['html']}")
    return 0


def _threads_info() -> dict:
    from .core.threads import describe

    return describe()


def _apply_threads(args) -> None:
    """The CPU thread policy (core/threads.py) for commands that run torch, before they start."""
    if hasattr(args, "threads"):
        from .core.threads import apply

        apply(args.threads)


def _bpy_version():
    import importlib.util

    return "installed (not imported)" if importlib.util.find_spec("bpy") else "not installed"


# --- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .core.engine import SamplingConfig

    d = SamplingConfig()
    parser = argparse.ArgumentParser(prog="ar3d", description="Text-to-3D with ShapeLLM-Omni / AR3D-R1.")
    parser.add_argument("--version", action="version", version=f"ar3d {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def engine_arg(p):
        p.add_argument("--engine", choices=["auto", "graph", "transformers"],
                       help="generation engine (default: $AR3D_ENGINE, then auto = the graph engine for "
                            "Qwen2 / Qwen2.5-VL policies, transformers' generate otherwise)")  # fmt: skip

    def threads_arg(p):
        p.add_argument("--threads", help="CPU threads for torch: a number or auto (default: $AR3D_THREADS, then "
                                         "$OMP_NUM_THREADS, then auto = one per core, waiting passively)")  # fmt: skip

    def model_args(p, policy=True):
        threads_arg(p)
        if policy:
            p.add_argument("--model", help="policy folder or Hugging Face id (default: $AR3D_MODEL, then the default model)")
        p.add_argument("--vqvae", help="VQ-VAE weights file/folder or Hugging Face id (default: $AR3D_VQVAE, the one bundled with the model, then yejunliang23/3DVQVAE)")
        p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")

    g = sub.add_parser("generate", help="prompt → mesh file (+ a JSON sidecar)")
    g.add_argument("prompt")
    g.add_argument("-o", "--output", default="ar3d.glb", help="output mesh: .glb, .obj, .ply or .stl (default ar3d.glb)")
    model_args(g)
    engine_arg(g)
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: bf16 on GPU, fp32 on CPU")
    g.add_argument("--two-step", action="store_true", help="Hi-GRPO two-step generation: plan → coarse, visual plan → refined")
    g.add_argument("--keep-coarse", action="store_true", help="with --two-step, also write the coarse mesh (*_coarse.*)")
    g.add_argument("--samples", type=int, default=1, help="number of samples (files get _0, _1, … suffixes)")
    g.add_argument("--seed", type=int, help="random seed (default: random, recorded in the sidecar)")
    g.add_argument("--temperature", type=float, default=d.temperature, help=f"0 = greedy (default {d.temperature})")
    g.add_argument("--top-p", type=float, default=d.top_p, help=f"default {d.top_p}")
    g.add_argument("--top-k", type=int, default=d.top_k, help=f"default {d.top_k}")
    g.add_argument("--max-plan-tokens", type=int, default=d.max_plan_tokens, help=f"plan length cap (default {d.max_plan_tokens})")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
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
    r.add_argument("--retries", type=int, default=2, help="retries of a mesh whose worker crashed or hung")
    r.add_argument("--force", action="store_true", help="re-render items that are already done")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(func=cmd_render)

    inf = sub.add_parser("info", help="versions, devices and models found locally")
    inf.add_argument("--json", action="store_true")
    threads_arg(inf)
    inf.set_defaults(func=cmd_info)

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
    ev.add_argument("--label", help="the run's name in reports (default: the model folder's name)")
    ev.add_argument("--compare-model", help="also evaluate this checkpoint (into OUT/b; the first goes to OUT/a) and write OUT/comparison.{md,html}")
    ev.add_argument("--compare-vqvae", help="VQ-VAE of --compare-model (default: as for --model)")
    ev.add_argument("--compare-label", help="name of the second run in reports")
    ev.add_argument("--samples", type=int, default=1, help="samples per prompt (default 1)")
    ev.add_argument("--two-step", action="store_true", help="Hi-GRPO two-step generation; the refined mesh is scored")
    ev.add_argument("--seed", type=int, default=0, help="base seed; batch seeds derive from it and the prompt ids (default 0)")
    ev.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8; 1 = per-prompt seeds)")
    ev.add_argument("--temperature", type=float, default=d.temperature, help=f"0 = greedy (default {d.temperature})")
    ev.add_argument("--top-p", type=float, default=d.top_p, help=f"default {d.top_p}")
    ev.add_argument("--top-k", type=int, default=d.top_k, help=f"default {d.top_k}")
    ev.add_argument("--max-plan-tokens", type=int, default=d.max_plan_tokens, help=f"plan length cap (default {d.max_plan_tokens})")
    ev.add_argument("--views", default="ring:8@30", help="evaluation views: ring:8@30 (default, TRELLIS-style: 8 views at 30°), ring:4@30, or any `ar3d render --views` spec")
    ev.add_argument("--resolution", type=int, default=512, help="render side in pixels (default 512)")
    ev.add_argument("--engine", default="workbench", choices=["workbench", "eevee", "cycles"], help="default workbench")
    ev.add_argument("--render-samples", type=int, default=16, help="Cycles/Eevee samples (default 16)")
    ev.add_argument("--workers", type=int, help="Blender worker processes (default: min(4, CPUs))")
    ev.add_argument("--render-timeout", type=float, default=300, help="seconds per mesh before its worker is replaced")
    ev.add_argument("--rewards", default="geometry", help="reward preset (geometry, demo, paper), a TOML file, or none (default geometry)")
    ev.add_argument("--reward-resolution", type=int, default=256, help="side of the six reward views (default 256)")
    ev.add_argument("--metrics", default="auto", help="auto (every extractor with weights; others reported unavailable), none, or a list of clip,inception,dinov2 (required)")
    ev.add_argument("--clip-model", default="ViT-L-14", help="open_clip architecture or model-config JSON (default ViT-L-14, OpenAI weights)")
    ev.add_argument("--clip-checkpoint", help="CLIP weights file (default: $AR3D_CLIP_CHECKPOINT, then the HF cache); given → required")
    ev.add_argument("--inception-weights", help="Inception-v3 weights (default: $AR3D_INCEPTION_WEIGHTS, then the torch hub cache); given → required")
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
    ec.set_defaults(func=cmd_eval_compare)

    from .trainer.config import add_cli_arguments

    tr = sub.add_parser("train", help="Hi-GRPO training from a config file (see trainer/configs/)")
    add_cli_arguments(tr)
    threads_arg(tr)
    tr.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    tr.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
