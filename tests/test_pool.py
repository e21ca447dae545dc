"""ar3d.headless.pool: ordering, crash/hang/error handling, recycling, shutdown, memory.

Fault tests run plain functions from tests/pool_jobs.py in the workers (`pool.call`), which goes
through the same dispatch, timeout, retry and crash paths as render jobs; they do not preload
bpy, so their workers start in ~0.1 s. Render tests use real Workbench renders.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ar3d.headless.pool import PoolConfig, RenderPool

JOBS = str(Path(__file__).with_name("pool_jobs.py"))


def job(name: str) -> str:
    return f"{JOBS}:{name}"


def alive(pid: int) -> bool:
    """Running (zombies count as gone: they only wait for a reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_gone(pids, timeout=10.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def busy_pid(pool: RenderPool, timeout=10.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for w in pool.stats().workers:
            if w.state == "busy":
                return w.pid
        time.sleep(0.02)
    raise AssertionError("no worker became busy")


def fast(**kw) -> PoolConfig:
    base = dict(workers=2, preload=False, timeout_s=30, max_retries=2)
    base.update(kw)
    return PoolConfig(**base)


# --- generic jobs: the fault paths -------------------------------------------------------------
def test_results_come_back_with_attempts_pids_and_stats():
    with RenderPool(fast()) as pool:
        futures = [pool.call(job("echo"), i, delay=0.02 * (i % 3)) for i in range(12)]
        got = [f.result(timeout=30) for f in futures]
        assert [r.result for r in got] == list(range(12))
        assert all(r.ok and r.attempts == 1 and r.error is None for r in got)
        assert {r.worker_pid for r in got} <= {w.pid for w in pool.stats().workers}
        stats = pool.stats()
        assert stats.completed == 12 and stats.failed == 0 and len(stats.workers) == 2
        assert all(w.rss_bytes and w.rss_bytes > 1e6 for w in stats.workers)


def test_worker_killed_mid_job_is_retried_on_a_fresh_worker():
    with RenderPool(fast(workers=1)) as pool:
        fut = pool.call(job("sleep"), 1.0)
        victim = busy_pid(pool)
        os.kill(victim, signal.SIGKILL)
        res = fut.result(timeout=30)
        assert res.ok, res.error
        assert res.attempts == 2
        assert res.result == res.worker_pid != victim
        assert pool.stats().crashes == 1 and pool.stats().retries == 1


def test_job_that_always_segfaults_fails_with_reason_others_finish():
    with RenderPool(fast(max_retries=2)) as pool:
        bad = pool.call(job("segfault"))
        good = [pool.call(job("echo"), i) for i in range(8)]
        res = bad.result(timeout=30)
        assert not res.ok and res.result is None
        assert res.error == "worker crashed (signal SIGSEGV) 3 times"
        assert res.attempts == 3
        assert [f.result(timeout=30).result for f in good] == list(range(8))
        # the pool still works after the crashes
        assert pool.call(job("echo"), "after").result(timeout=30).result == "after"


def test_a_timeout_is_not_retried_by_default():
    with RenderPool(fast(workers=1, timeout_s=0.5, max_retries=2)) as pool:
        res = pool.call(job("sleep"), 60).result(timeout=30)
        assert not res.ok and res.error == "timed out after 0.5 s" and res.attempts == 1
        assert pool.stats().timeouts == 1 and pool.stats().retries == 0
        assert pool.call(job("pid")).result(timeout=30).ok  # a fresh worker took over


def test_hang_times_out_and_worker_is_replaced():
    with RenderPool(fast(workers=1, timeout_s=0.5, max_retries=1, retry_timeouts=True)) as pool:
        first = pool.call(job("pid")).result(timeout=30).result
        t0 = time.monotonic()
        res = pool.call(job("sleep"), 60).result(timeout=30)
        assert time.monotonic() - t0 < 10
        assert not res.ok and res.error == "timed out after 0.5 s, 2 times" and res.attempts == 2
        after = pool.call(job("pid")).result(timeout=30)
        assert after.ok and after.result not in (first, res.worker_pid)
        assert pool.stats().timeouts == 2
        # a per-job timeout overrides the pool's
        assert pool.call(job("sleep"), 0.8, timeout_s=10).result(timeout=30).ok


def test_job_exception_is_per_item_not_retried_and_worker_survives():
    with RenderPool(fast(workers=1)) as pool:
        bad = pool.call(job("fail"), "no such mesh").result(timeout=30)
        assert not bad.ok and bad.error == "ValueError: no such mesh" and bad.attempts == 1
        assert "pool_jobs.py" in bad.traceback
        unpicklable = pool.call(job("unpicklable")).result(timeout=30)
        assert not unpicklable.ok and unpicklable.error.startswith("result cannot be sent back")
        missing = pool.call(job("nope")).result(timeout=30)
        assert not missing.ok and missing.error.startswith("AttributeError")
        ok = pool.call(job("pid")).result(timeout=30)
        assert ok.ok and ok.worker_pid == bad.worker_pid == unpicklable.worker_pid
        assert pool.stats().crashes == 0


def test_recycled_after_max_jobs():
    with RenderPool(fast(workers=1, max_jobs_per_worker=3)) as pool:
        pids = [pool.call(job("pid")).result(timeout=30).result for _ in range(7)]
        assert pids[0] == pids[1] == pids[2] != pids[3]
        assert pids[3] == pids[4] == pids[5] != pids[6]
        assert wait_gone(pids[:6]) == []  # the retired workers were reaped
        assert pool.stats().recycled == 2


def test_all_workers_die_at_once_and_many_jobs_on_one_worker(tmp_path):
    with RenderPool(fast(workers=2)) as pool:
        slow = [pool.call(job("sleep"), 1.0) for _ in range(2)]
        queued = [pool.call(job("echo"), i) for i in range(10)]
        end = time.monotonic() + 10
        while len([w for w in pool.stats().workers if w.state == "busy"]) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        victims = [w.pid for w in pool.stats().workers]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        assert all(f.result(timeout=30).ok for f in slow + queued)
        assert all(f.result().attempts == 2 for f in slow)
        assert not set(victims) & {w.pid for w in pool.stats().workers}

    marker = tmp_path / "crashed"
    with RenderPool(fast(workers=1, max_jobs_per_worker=50)) as pool:
        futures = [pool.call(job("echo"), i) for i in range(300)]
        futures.insert(150, pool.call(job("crash_first_time"), str(marker)))
        results = [f.result(timeout=60) for f in futures]
        assert all(r.ok for r in results)
        assert [r.result for r in results[:150] + results[151:]] == list(range(300))
        assert results[150].attempts == 2


def test_workers_that_cannot_start_fail_jobs_instead_of_respawning_forever():
    class DiesOnUnpickle:  # the worker dies while unpickling its start arguments
        def __reduce__(self):
            return (os._exit, (5,))

    pool = RenderPool(fast(workers=2), render_config=DiesOnUnpickle())
    try:
        res = pool.call(job("pid")).result(timeout=30)
        assert not res.ok
        assert res.error.startswith("render workers cannot start: worker exited with code 5 while starting")
        again = pool.call(job("pid")).result(timeout=5)  # fails at once, no new workers
        assert not again.ok and again.error == res.error
        assert pool.stats().workers_started <= 4
    finally:
        pool.close()


def test_close_terminate_and_no_orphans():
    pool = RenderPool(fast())
    pids = {pool.call(job("pid")).result(timeout=30).worker_pid for _ in range(4)}
    pids |= {w.pid for w in pool.stats().workers}
    pool.close()
    pool.close()  # idempotent
    assert wait_gone(pids, 5) == []
    with pytest.raises(RuntimeError):
        pool.call(job("pid"))

    pool = RenderPool(fast(workers=1))
    running = pool.call(job("sleep"), 60)
    queued = pool.call(job("pid"))
    pid = busy_pid(pool)
    t0 = time.monotonic()
    pool.terminate()
    assert time.monotonic() - t0 < 5
    assert wait_gone([pid], 5) == []
    for f in (running, queued):
        res = f.result(timeout=1)
        assert not res.ok and res.error.startswith("cancelled")


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from ar3d.headless.pool import PoolConfig, RenderPool

    if __name__ == "__main__":
        mode, jobs = sys.argv[1], sys.argv[2]
        pool = RenderPool(PoolConfig(workers=2, preload=False))
        pool.call(jobs + ":pid").result()
        pool.call(jobs + ":pid").result()
        print(" ".join(str(w.pid) for w in pool.stats().workers), pool._core.tmp_root, flush=True)
        if mode == "interrupt":
            with pool:
                pool.call(jobs + ":sleep", 60)
                raise KeyboardInterrupt
        elif mode == "exit":
            pool.call(jobs + ":sleep", 60)
            sys.exit(0)  # no close(): atexit must clean up
        elif mode == "killed":
            pool.call(jobs + ":sleep", 60)
            time.sleep(60)
    """
)


@pytest.mark.parametrize("mode", ["interrupt", "exit", "killed"])
def test_no_orphans_when_the_caller_exits_abnormally(tmp_path, mode):
    script = tmp_path / "caller.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), mode, JOBS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)  # fmt: skip
    *pids, tmp_root = proc.stdout.readline().split()
    pids = [int(p) for p in pids]
    assert len(pids) == 2 and os.path.isdir(tmp_root), proc.stderr.read()
    if mode == "killed":
        time.sleep(0.2)
        proc.kill()  # no atexit, no finalizers: the workers notice the parent is gone
    proc.wait(timeout=30)
    assert wait_gone(pids, 10) == [], f"orphan workers after the caller's {mode}"
    assert not os.path.exists(tmp_root)  # the workers' temp folders too


# --- real renders ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def render_module():
    """The render module, with bpy imported *in this process* on purpose: `import bpy` puts
    Blender's script folders (with a pure-Python `bpy` package) in front of sys.path, which
    spawned workers inherit; the pool must still start bpy in them (regression test)."""
    try:
        import ar3d.headless.render as render

        import bpy  # noqa: F401
    except ImportError as e:
        pytest.skip(f"real renders need ar3d.headless.render and bpy: {e}")
    return render


def test_real_renders_in_order_with_a_bad_file(render_module, tmp_path):
    import trimesh

    RenderConfig = render_module.RenderConfig
    good_file = tmp_path / "box.ply"
    trimesh.creation.box(extents=(1, 0.5, 0.3)).export(good_file)
    bad_file = tmp_path / "broken.obj"
    bad_file.write_text("this is not an obj file\nv 1 2\nf 9 9 9\n")
    sphere = trimesh.creation.icosphere(subdivisions=2)
    meshes = [sphere, str(good_file), bad_file, (sphere.vertices, sphere.faces), trimesh.creation.cylinder(0.3, 1.0)]
    progress = []
    config = RenderConfig(engine="workbench", resolution=64, views="six")
    with RenderPool(PoolConfig(workers=2, timeout_s=120), config) as pool:
        results = pool.map(meshes, progress=lambda done, total: progress.append((done, total)))
        smaller = pool.submit(sphere, RenderConfig(engine="workbench", resolution=32, views=2)).result(timeout=120)
        stats = pool.stats()
        # kill -9 a worker in the middle of a real render: retried on a fresh worker, finished
        slow = pool.submit(sphere, RenderConfig(engine="workbench", resolution=256, views="ring:12"))
        victim = busy_pid(pool)
        os.kill(victim, signal.SIGKILL)
        killed = slow.result(timeout=120)
    assert killed.ok and killed.attempts == 2 and killed.worker_pid != victim, killed.error
    assert killed.result.images.shape == (12, 256, 256, 4) and killed.result.mask.any()
    assert progress == [(i, 5) for i in range(1, 6)]
    assert [r.ok for r in results] == [True, True, False, True, True]
    bad = results[2]
    assert bad.error.startswith("MeshImportError") and "broken.obj" in bad.error and bad.attempts == 1
    for r in (results[0], results[1], results[3], results[4]):
        res = r.result
        assert isinstance(res, render_module.RenderResult) and r.attempts == 1
        assert res.images.shape == (6, 64, 64, 4) and res.images.dtype == np.uint8
        assert res.mask.shape == (6, 64, 64) and res.mask.dtype == bool
        assert all(0.02 < m.mean() < 0.98 for m in res.mask)  # something in every view, not all of it
        assert res.images[..., :3][res.mask].mean() > 20  # lit, not black
        assert res.extrinsics.shape == (6, 4, 4) and res.engine == "workbench"
    assert np.array_equal(results[0].result.images, results[3].result.images)  # same mesh, same pixels
    assert smaller.ok and smaller.result.images.shape == (2, 32, 32, 4)  # per-job config
    assert stats.crashes == 0 and stats.completed == 5 and stats.failed == 1
    assert all(w.rss_bytes > 100e6 for w in stats.workers)  # bpy is loaded there ...


CALLER = textwrap.dedent(
    """
    import sys
    import trimesh
    from ar3d.headless.pool import PoolConfig, RenderPool
    from ar3d.headless.render import RenderConfig

    if __name__ == "__main__":
        pool = RenderPool(PoolConfig(workers=1), RenderConfig(resolution=32, views=1))
        res = pool.submit(trimesh.creation.box()).result()
        assert res.ok and res.result.images.shape == (1, 32, 32, 4), res.error
        assert "bpy" not in sys.modules, "the caller imported bpy"
        print(pool.stats().workers[0].pid, pool._core.tmp_root, flush=True)
        # exit without close(): the atexit hook stops the worker and removes its temp folder
    """
)


def test_caller_never_imports_bpy_and_cleans_up_at_exit(render_module, tmp_path):
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    pid, tmp_root = out.stdout.split()
    assert wait_gone([int(pid)], 10) == []
    assert not os.path.exists(tmp_root)


def test_worker_memory_stays_flat_over_300_renders(render_module):
    """RSS after job 50 vs after job 300 of one worker (64², one view, five meshes in turn).

    Measured: +0.2 MB over those 250 jobs (+1 MB over 2000). Leaking each job's mesh instead
    (no reset) grows it by ~80 MB over the same 250 jobs, and a leaked 64² float image per job
    by ~16 MB, so 8 MB (32 KB a job) catches real leaks with ample room for allocator noise.
    """
    import trimesh

    meshes = [trimesh.creation.icosphere(subdivisions=s) for s in (1, 2, 3)]
    meshes += [trimesh.creation.box(), trimesh.creation.cylinder(0.3, 1.0)]
    config = render_module.RenderConfig(engine="workbench", resolution=64, views=1)
    rss = {}
    with RenderPool(PoolConfig(workers=1, max_jobs_per_worker=1000), config) as pool:
        for i, r in pool.imap(meshes[i % 5] for i in range(300)):
            assert r.ok, r.error
            rss[i] = r.worker_rss
        pids = {w.pid for w in pool.stats().workers}
    assert len(pids) == 1
    growth = rss[299] - rss[49]
    assert growth < 8 * 2**20, f"worker RSS grew by {growth / 2**20:.1f} MB from job 50 to 300"


def test_workers_are_torch_free_even_when_the_caller_has_torch(render_module, tmp_path):
    """A real worker that rendered, wrote a farm item and ran the eval's write-back imports
    neither torch nor torchvision (~90 MB each worker would carry), whatever the caller has."""
    import torch  # noqa: F401  (the caller has it; a spawn-started worker re-imported its main module)
    import trimesh

    box = tmp_path / "box.ply"
    trimesh.creation.box().export(box)
    config = render_module.RenderConfig(resolution=32, views=2)
    with RenderPool(PoolConfig(workers=1), config) as pool:
        farm = pool.submit(str(box), then=("ar3d.headless.farm:write_in_worker", (str(tmp_path / "out"), "box", str(box))))
        evaluation = pool.submit(str(box), then=("ar3d.evaluation._jobs:write_views", (str(tmp_path / "ev"), "b", str(box))))
        assert farm.result(timeout=120).ok and evaluation.result(timeout=120).ok
        after = pool.submit(str(box), then=(job("heavy_modules"), ())).result(timeout=120)
    assert after.ok, after.error
    assert after.result == [], f"a render worker imported {after.result}"
    assert (tmp_path / "out" / "box" / "render.json").is_file()


VENV_CALLER = textwrap.dedent(
    """
    import sys

    class NoBpy:  # this process must not (and here cannot) import bpy
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("bpy", "_bpy"):
                raise ImportError("bpy is blocked in the caller")

    sys.meta_path.insert(0, NoBpy())
    import trimesh
    from ar3d.headless.pool import PoolConfig, RenderPool
    from ar3d.headless.render import RenderConfig

    if __name__ == "__main__":
        jobs = sys.argv[1]
        with RenderPool(PoolConfig(workers=1), RenderConfig(resolution=32, views=1)) as pool:
            res = pool.submit(trimesh.creation.box()).result()
            assert res.ok and res.result.images.shape == (1, 32, 32, 4), res.error
            assert res.result.mask.any()
            where = pool.call(jobs + ":interpreter").result()
        assert where.ok, where.error
        assert "bpy" not in sys.modules
        print(where.result[0], where.result[1], sys.executable)
    """
)


def test_workers_run_under_a_separate_python_that_has_bpy(render_module, tmp_path):
    """AR3D_BLENDER_PYTHON names the workers' interpreter: here a venv made for the test (its
    packages come from this one's site-packages through a .pth file), while the caller cannot
    import bpy at all."""
    import site

    venv = tmp_path / "blender-venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)  # fmt: skip
    python = venv / "bin" / "python"
    site_dir = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (site_dir / "render_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    script = tmp_path / "caller.py"
    script.write_text(VENV_CALLER)
    env = {**os.environ, "AR3D_BLENDER_PYTHON": str(python)}
    out = subprocess.run([sys.executable, str(script), JOBS], capture_output=True, text=True, timeout=180,
                         cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    worker_python, worker_has_bpy, caller_python = out.stdout.split()
    assert worker_python == str(python) != caller_python
    assert worker_has_bpy == "True"


def test_a_missing_worker_python_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("AR3D_BLENDER_PYTHON", "/nonexistent/python3.11")
    with pytest.raises(ValueError, match=r"AR3D_BLENDER_PYTHON.*not an executable.*bpy"):
        RenderPool(fast())


def test_backend_settings_are_checked():
    from ar3d.headless.pool import open_pool
    from ar3d.trainer.config import RenderSection

    with pytest.raises(ValueError, match="backend must be 'local' or 'ray'"):
        open_pool(fast(), None, backend="slurm")
    assert any(k == "backend" for k, _ in RenderSection(backend="slurm").check())
    assert RenderSection(python="/opt/blender-py/bin/python").to_pool_config().python == "/opt/blender-py/bin/python"
