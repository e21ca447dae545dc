"""The ensemble scores its grid-only rewards in worker processes (``rewards.workers``): the same
scores, in the same order, as the calling process gives; other rewards stay in the caller; a
broken pool falls back to the caller rather than failing the step."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from ar3d.core.rewards import RewardBatch, RewardConfig, RewardConfigError, RewardEnsemble, SampleScore, TermConfig


@pytest.fixture(scope="module")
def demo_batch(tmp_path_factory):
    from ar3d.core.rewards.procedural import save_references
    from ar3d.procedural.dataset import iter_samples
    from ar3d.procedural.evaluate import build_references

    families = ("chair", "stairs", "mug", "fence")
    refs = tmp_path_factory.mktemp("refs") / "refs.npz"
    save_references(build_references(per_family=3, families=families), refs)
    samples = list(iter_samples(8, "train", 5, 1, families=families))
    grids = [s.occupancy for s in samples]
    rng = np.random.default_rng(0)
    for g in grids[:4]:  # perforated copies: quality and counts differ from the clean ones
        h = g.copy()
        h[tuple(rng.integers(0, 64, (3, 400)))] = False
        grids.append(h)
    grids += [None, np.zeros((64,) * 3, bool)]
    meta = [{"family": s.family, "attributes": s.attributes} for s in samples]
    meta += meta[:4] + [meta[0], None]
    prompts = [s.caption for s in samples] + [s.caption for s in samples[:4]] + ["a chair", "a glass of water"]
    return refs, RewardBatch(prompts, occupancy=grids, metadata=meta, step=2)


def _config(refs, workers):
    terms = [TermConfig("procedural.family", options={"references": str(refs)}), TermConfig("procedural.attributes_strict"),
             TermConfig("procedural.quality", weight=0.5), TermConfig("geometry.fill", weight=0.25)]  # fmt: skip
    return RewardConfig(step1=terms, step2=terms, workers=workers)


def _plain(scores):
    return {name: [(s.value, s.missing, s.details) for s in per] for name, per in scores.terms.items()}


def test_worker_processes_give_the_callers_scores_in_order(demo_batch):
    refs, batch = demo_batch
    with RewardEnsemble(_config(refs, 1)) as serial:
        want = serial.score(batch)
        assert serial._workers._pool is None
    with RewardEnsemble(_config(refs, 3)) as parallel:
        got = parallel.score(batch)
        assert parallel._workers._pool is not None  # it really ran in workers
        assert _plain(got) == _plain(want)
        assert got.total == want.total and got.missing == want.missing
        values = [v for v in want.terms["procedural.quality"] if v.value is not None]
        assert len({v.value for v in values}) > 1  # the batch is not all alike
        small = RewardBatch(batch.prompts[:3], occupancy=batch.occupancy[:3], metadata=batch.metadata[:3], step=2)
        stats = parallel.pop_worker_stats()  # the step log's account of the workers' time
        assert stats["reward_workers_cpu_s"] > 0 and set(stats) == {f"reward_workers_{k}_s" for k in ("busy", "cpu", "slowest_chunk", "wall")}
        assert 0 < stats["reward_workers_slowest_chunk_s"] <= stats["reward_workers_busy_s"]
        assert stats["reward_workers_slowest_chunk_s"] <= stats["reward_workers_wall_s"]
        assert _plain(parallel.score(small)) == {k: v[:3] for k, v in _plain(want).items()}  # too small: in the caller
        assert parallel.pop_worker_stats()["reward_workers_busy_s"] == 0.0  # read and reset
    assert serial.pop_worker_stats()["reward_workers_busy_s"] == 0.0


def test_a_given_reward_stays_in_the_calling_process(demo_batch):
    refs, batch = demo_batch
    calls = []

    class Counting:
        name = "count"
        sub_scores = 1
        needs = frozenset({"occupancy"})

        def score(self, b):
            calls.append(os.getpid())
            return [SampleScore(1.0) for _ in range(len(b))]

    config = _config(refs, 2)
    config.step2 = [*config.step2, TermConfig("count")]
    with RewardEnsemble(config, rewards={"count": Counting()}) as ensemble:
        scores = ensemble.score(batch)
    assert calls == [os.getpid()] and scores.terms["count"][0].value == 1.0


def test_ctrl_c_leaves_the_workers_to_the_trainer(demo_batch, caplog):
    """Ctrl-C reaches every process of the group; the trainer answers it by finishing the step,
    so the workers must survive it: same pool, same scores, no fallback, no tracebacks."""
    refs, batch = demo_batch
    with RewardEnsemble(_config(refs, 2)) as ensemble:
        want = _plain(ensemble.score(batch))
        pool = ensemble._workers._pool
        for pid in list(pool._processes):
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert _plain(ensemble.score(batch)) == want
        assert ensemble._workers._pool is pool and ensemble._workers.workers == 2
        assert all(p.is_alive() for p in pool._processes.values())
    assert "scoring in this process" not in caplog.text


def test_a_broken_pool_falls_back_to_the_caller(demo_batch, caplog):
    refs, batch = demo_batch
    with RewardEnsemble(_config(refs, 2)) as ensemble:
        want = _plain(ensemble.score(batch))
        for pid in list(ensemble._workers._pool._processes):
            os.kill(pid, signal.SIGKILL)
        with caplog.at_level("WARNING"):
            assert _plain(ensemble.score(batch)) == want
        assert "scoring in this process" in caplog.text and ensemble._workers.workers == 1


def test_workers_must_be_a_whole_number():
    with pytest.raises(RewardConfigError, match="rewards.workers"):
        RewardConfig(workers="8")
    assert RewardConfig.from_dict({"preset": "geometry", "workers": 4}).workers == 4
