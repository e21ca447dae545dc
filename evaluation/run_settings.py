"""The settings a run records in ``eval.json``, and the refusal to resume an OUT made with others.

A rerun adds to the records already in OUT: records made with other generation settings or other
feature weights would mix into one set of numbers, so such a rerun stops before it starts.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..core.prequantized import effective_precision
from .benchmark import Benchmark
from .config import EvalConfig, EvalError
from .files import SETTINGS_FILE, read_json

# Settings a resumed run must share with the run that wrote OUT, or its records would mix.
RESUME_KEYS = ("model_path", "vqvae", "precision", "samples", "two_step", "seed", "batch_size", "sampling", "views",
               "resolution", "engine", "render_samples", "rewards")  # fmt: skip
_OLD_DEFAULTS = {"precision": "default"}  # keys older runs did not record, with the value they ran with


def run_settings(config: EvalConfig, bench: Benchmark, model_path: str, vqvae: str) -> dict:
    c = config
    return {
        "ar3d_version": __version__,
        "label": c.label or Path(model_path).name,
        "model": c.model or model_path,
        "model_path": model_path,
        "vqvae": vqvae,
        "precision": effective_precision(model_path, c.precision),  # a folder from `ar3d quantize`: its own
        "benchmark": {"name": bench.name, "path": str(bench.path)},
        "samples": c.samples,
        "two_step": c.two_step,
        "seed": c.seed,
        "batch_size": c.batch_size,
        "sampling": asdict(c.sampling),
        "views": c.views,
        "resolution": c.resolution,
        "engine": c.engine,
        "render_samples": c.render_samples,
        "rewards": c.rewards,
        "kd": {"subsets": c.kd_subsets, "subset_size": c.kd_subset_size},
    }


def check_resume(out: Path, settings: dict) -> None:
    old = read_json(out / SETTINGS_FILE)
    if old is None:
        return
    old = {**_OLD_DEFAULTS, **old}
    diff = [k for k in RESUME_KEYS if old.get(k) != settings.get(k)]
    if diff:
        details = "; ".join(f"{k}: {old.get(k)!r} there, {settings.get(k)!r} now" for k in diff)
        raise EvalError(
            f"'{out}' holds an evaluation with other settings ({details}). Its records would mix with "
            "this run's: pass another --out, or delete that folder to start over."
        )


def check_features(out: Path, features) -> None:
    """Records and reference features of OUT must come from the extractors loaded now."""
    old = read_json(out / SETTINGS_FILE)
    if old is None or features is None:
        return
    from .features import feature_mismatches

    diff = feature_mismatches(old.get("features") or {}, features.describe())
    if diff:
        raise EvalError(
            f"'{out}' holds features from other extractors or weights ({'; '.join(diff)}, there vs now). "
            "Its records would mix with this run's: pass the same weights, another --out, or delete that folder."
        )
