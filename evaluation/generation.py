"""Stage 1 of a prompt: generate its samples in a batch and save them so a rerun need not redo it.

Each mesh is written as ``sample_<s>.glb``, the decoded grids as ``occupancy.npz``, and
``generation.json`` (plans, codes, seed, batch) last: a rerun that finds it does not generate
again. A batch whose generation raises is retried prompt by prompt, so one bad prompt does not
sink its batch-mates.

Seeds: batch ``[id₁, …]`` is sampled with seed ``(seed + crc32("id₁,id₂,…")) mod 2³¹``, so a
rerun with the same settings reproduces it; with ``batch_size = 1`` every prompt's seed depends
on its id alone (the way to get per-prompt results that do not depend on the selection or on
what an interrupted run had already done).
"""

from __future__ import annotations

import shutil
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from .benchmark import BenchmarkItem
from .config import EvalConfig
from .files import GENERATION, save_npz, write_json


def batch_seed(seed: int, ids: list[str]) -> int:
    return (int(seed) + zlib.crc32(",".join(ids).encode())) % 2**31


def generate(pipe, batch: list[BenchmarkItem], config: EvalConfig, item_dir: Callable[[BenchmarkItem], Path],
             fail: Callable[[str, str, str], None], bar=None) -> dict[str, dict]:  # fmt: skip
    """Generate a batch; if it raises, each prompt alone. Returns id → generation record; each
    failed prompt goes to ``fail(id, stage, error)``."""
    c = config
    ids = [i.id for i in batch]
    seed = batch_seed(c.seed, ids)
    progress = token_progress(bar)
    try:
        out = pipe.generate([i.prompt for i in batch], c.samples, c.two_step, c.sampling, seed, progress=progress)
    except Exception as e:
        if len(batch) == 1:
            fail(batch[0].id, "generate", f"{type(e).__name__}: {e}")
            return {}
        gens: dict[str, dict] = {}
        for item in batch:
            gens.update(generate(pipe, [item], config, item_dir, fail, bar))
        return gens
    gens = {}
    for k, item in enumerate(batch):
        results = out.results[k * c.samples : (k + 1) * c.samples]
        try:
            gens[item.id] = save_generation(item_dir(item), item, results, seed, ids, out, pipe, c)
        except Exception as e:
            fail(item.id, "generate", f"saving the meshes: {type(e).__name__}: {e}")
    return gens


def token_progress(bar):
    if bar is None:
        return None
    last = [None]

    def on(p) -> None:
        key = (p.step, p.stage, p.mesh_tokens // 64)
        if key != last[0]:
            last[0] = key
            step = f"step {p.step}/{p.steps} " if p.steps > 1 else ""
            bar.set_postfix_str(f"{step}{p.stage} {p.mesh_tokens}/{p.total} tokens")

    return on


def save_generation(d: Path, item, results, seed, ids, out, pipe, config: EvalConfig) -> dict:
    from ..core.mesh import export_mesh

    if d.exists():  # leftovers of an interrupted or stale attempt
        shutil.rmtree(d)
    d.mkdir(parents=True)
    samples = []
    for s, r in enumerate(results):
        entry = {"index": s, "mesh": None, "error": r.error, "plans": r.sample.plans,
                 "codes": [st.codes.tolist() for st in r.sample.steps]}  # fmt: skip
        if r.mesh is not None:
            export_mesh(r.mesh, d / f"sample_{s}.glb")
            entry["mesh"] = f"sample_{s}.glb"
        samples.append(entry)
    save_npz(d / "occupancy.npz", packed=np.packbits(np.stack([r.occupancy for r in results]).astype(bool)),
             shape=np.asarray(np.stack([r.occupancy for r in results]).shape))  # fmt: skip
    gen = {
        "id": item.id, "prompt": item.prompt, "category": item.category, "seed": seed, "batch": ids,
        "model": pipe.policy.name, "vqvae": pipe.vqvae_path, "engine": out.generation.engine,
        "two_step": config.two_step, "sampling": asdict(config.sampling),
        "timings": {k: round(float(v), 4) for k, v in out.timings.items()}, "samples": samples,
    }  # fmt: skip
    write_json(d / GENERATION, gen)
    return gen


def load_occupancy(d: Path) -> np.ndarray | None:
    """The decoded grids ``save_generation`` packed into ``d/occupancy.npz`` (None if unreadable)."""
    try:
        with np.load(d / "occupancy.npz") as z:
            shape = tuple(int(x) for x in z["shape"])
            return np.unpackbits(z["packed"])[: int(np.prod(shape))].reshape(shape).astype(bool)
    except (OSError, KeyError, ValueError):
        return None
