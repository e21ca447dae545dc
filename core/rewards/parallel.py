"""Scores the CPU-bound rewards of a batch in worker processes.

The demo's strict rewards read the decoded grid with scipy (meshed solid, genus, counts): about
95 ms a grid on one core, so a Hi-GRPO step's 2 × 256 grids took ~50 s in the trainer process —
more than generation and the update together. Rewards that read only the occupancy grid and
are built from the registry are pure functions of (grid, prompt, plan, metadata): each worker
process builds its own copies from the same (name, options) and scores a contiguous chunk of the
batch, so the scores are the ones the trainer process would give, in the same order.

Workers are fresh interpreters (forkserver, as the trainer's mesh workers: no fork of a process
holding a GPU context), started at the first large batch and kept until ``close``. A broken
pool falls back to scoring in the calling process, with a warning, rather than failing a step.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from ..threads import helper_pool, helper_processes
from .base import RewardBatch, SampleScore

log = logging.getLogger(__name__)

# Below this many samples the pickling and hand-off cost more than the scoring saves.
MIN_PARALLEL_SAMPLES = 8

_WORKER_REWARDS: dict[tuple, Any] = {}  # in a worker: (name, options repr) → the built reward


def _score_chunk(specs: list[tuple[str, str, dict]], judge: dict, fields: dict) -> tuple[list[list[SampleScore]], float, float]:
    """In a worker: score one chunk with each (name, key, options) reward, built once per worker;
    also the chunk's wall and CPU seconds (wall ≫ CPU: the worker waited for a core)."""
    from . import registry

    wall, cpu = time.perf_counter(), time.process_time()

    packed = fields.pop("packed")
    occupancy = [None if p is None else np.unpackbits(p[0], count=int(np.prod(p[1]))).reshape(p[1]).astype(bool)
                 for p in packed]  # fmt: skip
    batch = RewardBatch(occupancy=occupancy, **fields)
    out = []
    for name, key, options in specs:
        if (name, key) not in _WORKER_REWARDS:
            _WORKER_REWARDS[(name, key)] = registry.build(name, options, registry.Context(judge=judge))
        out.append(_WORKER_REWARDS[(name, key)].score(batch))
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _pack(grid) -> tuple[np.ndarray, tuple] | None:
    if grid is None:
        return None
    g = np.asarray(grid, dtype=bool)
    return np.packbits(g.reshape(-1)), g.shape


class RewardWorkers:
    """A process pool for the occupancy-only rewards of an ensemble (``workers`` ≤ 1: none)."""

    def __init__(self, workers: int | None = None, judge: dict | None = None) -> None:
        self.workers = helper_processes() if workers is None else int(workers)
        self.judge = dict(judge or {})
        self._pool: ProcessPoolExecutor | None = None
        self._stats = {"busy_s": 0.0, "cpu_s": 0.0, "slowest_chunk_s": 0.0, "wall_s": 0.0}

    def pop_stats(self) -> dict[str, float]:
        """Work done in the workers since the last call, for the trainer's step log: summed wall
        and CPU seconds of the chunks, the slowest chunk, and the caller's wall time waiting."""
        out, self._stats = self._stats, dict.fromkeys(self._stats, 0.0)
        return out

    def usable(self, n: int) -> bool:
        return self.workers > 1 and n >= MIN_PARALLEL_SAMPLES

    def score(self, specs: list[tuple[str, str, dict]], batch: RewardBatch) -> list[list[SampleScore]] | None:
        """Per spec, the scores of every sample of ``batch``; None when the pool is broken (the
        caller then scores in its own process)."""
        n = len(batch)
        bounds = np.linspace(0, n, min(self.workers, n) + 1).astype(int)
        chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        try:
            if self._pool is None:
                self._pool = helper_pool(self.workers)
            t = time.perf_counter()
            futures = [self._pool.submit(_score_chunk, specs, self.judge, self._fields(batch, a, b)) for a, b in chunks]
            done = [f.result() for f in futures]
            parts = [d[0] for d in done]
            self._stats["busy_s"] += sum(d[1] for d in done)
            self._stats["cpu_s"] += sum(d[2] for d in done)
            self._stats["slowest_chunk_s"] = max(self._stats["slowest_chunk_s"], *(d[1] for d in done))
            self._stats["wall_s"] += time.perf_counter() - t
        except (BrokenProcessPool, OSError, ValueError) as e:  # ValueError: no forkserver (Windows)
            log.warning("reward worker processes failed (%s); scoring in this process from now on", e)
            self.close()
            self.workers = 1
            return None
        return [[s for part in parts for s in part[k]] for k in range(len(specs))]

    @staticmethod
    def _fields(batch: RewardBatch, a: int, b: int) -> dict:
        def cut(seq):
            return None if seq is None else list(seq[a:b])

        return {
            "prompts": list(batch.prompts[a:b]),
            "plans": cut(batch.plans),
            "step": batch.step,
            "step1_plans": cut(batch.step1_plans),
            "metadata": cut(batch.metadata),
            "view_names": list(batch.view_names),
            "packed": [_pack(g) for g in (batch.occupancy[a:b] if batch.occupancy is not None else [None] * (b - a))],
        }

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
