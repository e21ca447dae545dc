"""`ar3d eval` and `eval-compare`: benchmark runs and their reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import CliError, sampling_config


def _eval_config(args, out, model, vqvae, label):
    from ..evaluation.config import EvalConfig

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
        dtype=args.dtype, precision=args.precision, label=label, samples=args.samples, two_step=args.two_step, seed=args.seed,
        batch_size=args.batch_size, sampling=sampling_config(args), views=args.views, resolution=args.resolution,
        engine=args.engine, render_samples=args.render_samples, workers=args.workers,
        render_timeout_s=args.render_timeout, render_backend="ray" if args.ray else "local", ray_address=args.ray or "auto",
        rewards=args.rewards, reward_resolution=args.reward_resolution,
        metrics=chosen, clip_model=args.clip_model, clip_checkpoint=args.clip_checkpoint,
        inception_weights=args.inception_weights, dinov2=args.dinov2, feature_batch_size=args.feature_batch_size,
        inception_tv_weights=args.inception_tv_weights,
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
    from ..evaluation.comparison import run_comparison
    from ..evaluation.runner import run_eval

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
    from ..evaluation.comparison_report import write_comparison

    for run in (args.run_a, args.run_b):
        if not (Path(run) / "eval.json").is_file():
            raise CliError(f"'{run}' is not an evaluation folder (no eval.json); make it with `ar3d eval --out {run}`")
    labels = tuple(args.labels.split(",", 1)) if args.labels else (None, None)
    if len(labels) != 2:
        raise CliError("--labels takes two names separated by a comma, e.g. base,rl")
    paths = write_comparison(args.run_a, args.run_b, Path(args.out), top_k=args.top_k, labels=labels,
                             allow_feature_mismatch=args.allow_feature_mismatch)  # fmt: skip
    print(f"comparison: {paths['md']} and {paths['html']}")
    return 0
