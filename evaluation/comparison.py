"""Two checkpoints evaluated on the same prompts, seeds and views, then compared in one report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .comparison_report import write_comparison
from .components import load_features, load_rewards, ray_config
from .config import EvalConfig, EvalError
from .runner import EvalRunner, RunResult


def run_comparison(config_a: EvalConfig, config_b: EvalConfig, out: Path, *, pipelines=(None, None),
                   **components) -> tuple[RunResult, RunResult, dict]:  # fmt: skip
    """Evaluate two checkpoints on the same prompts, seeds and views (into their own ``out``
    folders) and write the comparison report into ``out``. Feature extractors, rewards and the
    render pool are loaded once and shared; the first model is released before the second loads."""
    out = Path(out)
    if Path(config_a.out).resolve() == Path(config_b.out).resolve():
        raise EvalError("the two runs of a comparison need different output folders")
    shared = dict(components)
    if shared.get("features") is None:
        shared["features"] = load_features(config_a)
    owned = []
    if shared.get("ensemble") is None:
        shared["ensemble"] = load_rewards(config_a)
        owned.append(shared["ensemble"])
    from ..headless.pool import PoolConfig, open_pool, renders_here_need_bpy

    pool_config = PoolConfig(workers=config_a.workers, timeout_s=config_a.render_timeout_s)
    if shared.get("pool") is None and (importlib.util.find_spec("bpy") is not None
                                       or not renders_here_need_bpy(pool_config, config_a.render_backend)):  # fmt: skip
        shared["pool"] = open_pool(pool_config, None, config_a.render_backend, ray_config(config_a))
        owned.append(shared["pool"])
    finished = False
    try:
        res_a = EvalRunner(config_a, pipeline=pipelines[0], **shared).run()
        _free_memory()  # the first model goes before the second loads
        res_b = EvalRunner(config_b, pipeline=pipelines[1], **shared).run()
        finished = True
    finally:
        for thing in owned:
            if thing is not None:
                thing.terminate() if not finished and hasattr(thing, "terminate") else thing.close()
    paths = write_comparison(config_a.out, config_b.out, out, top_k=config_a.top_k)
    return res_a, res_b, {k: str(v) for k, v in paths.items()}


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
