"""A pool of long-lived Blender worker processes that serves render jobs; the caller never imports bpy.

Why processes: bpy is single-threaded with one scene per process, leaks a little memory per
render and can take the whole process down (segfault). Each worker imports bpy once, keeps one
`Renderer`, resets its scene after every job, and is recycled after `max_jobs_per_worker` jobs
(or when its RSS passes `max_rss_mb`).

    with RenderPool(PoolConfig(workers=2), RenderConfig(resolution=224)) as pool:
        for index, job in pool.imap(paths):            # as they complete (tqdm-friendly)
            print(index, job.ok, job.error or job.result.images.shape)
        results = pool.map(meshes)                       # input order
        future = pool.submit(mesh)                       # concurrent.futures.Future[JobResult]

Fault handling (one dispatcher thread in the caller owns every worker; one job per worker at a
time, so a dead worker's job is always known):
- a worker that dies (segfault, kill -9, os._exit) or runs past `timeout_s` (killed) is replaced;
  its job goes back to the front of the queue and is retried on another worker up to
  `max_retries` times, then comes back with `ok=False` and the reason, e.g.
  "worker crashed (signal SIGSEGV) 3 times" or "timed out after 30 s";
- a Python exception inside a job (bad mesh file, ...) is not retried and does not hurt the
  worker: it comes back as that item's `error` ("MeshImportError: ...", traceback in `.traceback`);
- every submitted job ends with exactly one JobResult: on shutdown, queued and running jobs end
  as "cancelled: ..." results; workers that die 3 times in a row before they are even ready
  (a crash while importing) mark the pool broken and fail the queue instead of respawning
  forever (a missing bpy is not a crash: each render job reports the OptionalDependencyError);
- shutdown (`close()`, `__exit__` also on exceptions/KeyboardInterrupt, garbage collection, and
  interpreter exit) stops and reaps every worker; workers ignore SIGINT (the caller decides) and
  exit on their own when the caller dies (pipe EOF, or a watchdog thread seeing the parent pid
  change). Each worker gets its own TMPDIR inside one per-pool folder, removed when the worker
  is reaped, so the Renderer's and Blender's temp files do not pile up after crashes.

Workers start with the "spawn" method by default (safe with torch/CUDA/threads in the caller).
As always with spawn, the caller's main module is imported in every worker (under the name
`__mp_main__`): keep the entry point under `if __name__ == "__main__":` and its top-level imports
light.

Test/extension hook: `pool.call("package.module:function", *args)` or
`pool.call("/path/to/file.py:function", *args)` runs any importable function in a worker through
exactly the same path as render jobs (retries, timeouts, crash handling).
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_ready
from typing import Any

__all__ = ["JobResult", "PoolConfig", "PoolStats", "RenderPool", "WorkerStats", "default_workers"]

_PICKLE = pickle.HIGHEST_PROTOCOL
_START_FAILURE_LIMIT = 3  # consecutive workers dying before "ready" => the pool is broken
_STOP_GRACE_S = 5.0  # a stopping worker gets this long to exit before it is killed


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers() -> int:
    """min(4, CPUs available to this process).

    Each worker gets an equal share of the cores for its renderer's threads (see
    `PoolConfig.threads_per_worker`), so one worker per core scales until memory or the GPU is
    the limit; 4 keeps a desktop responsive and bounds memory (~300-400 MB RSS per bpy worker).
    """
    return max(1, min(4, _available_cpus()))


@dataclass
class PoolConfig:
    workers: int | None = None  # None: default_workers() = min(4, available CPUs)
    max_jobs_per_worker: int = 200  # recycle a worker after this many jobs (0/None: never)
    timeout_s: float | None = 300.0  # per job (per attempt); the worker is killed and replaced
    max_retries: int = 2  # re-runs of a job whose worker crashed or timed out
    start_method: str = "spawn"  # "spawn" or "forkserver"; "fork" is unsafe with bpy/torch/threads
    max_rss_mb: float | None = None  # also recycle a worker whose RSS after a job exceeds this
    preload: bool = True  # build the Renderer when the worker starts (else on its first render job)
    start_timeout_s: float = 120.0  # a worker not ready by then is killed (counts as a start failure)
    quiet: bool = True  # send workers' stdout (Blender's chatter) to /dev/null; stderr is kept
    # CPU threads each worker's renderer may use (software OpenGL's LP_NUM_THREADS, Cycles CPU
    # threads). None: the available CPUs shared out between the workers, so that N workers do
    # not oversubscribe the cores (measured: 2 workers on 2 cores ran slower than 1 without it).
    threads_per_worker: int | None = None

    def resolved_workers(self) -> int:
        return self.workers if self.workers else default_workers()

    def resolved_threads(self) -> int:
        return self.threads_per_worker or max(1, _available_cpus() // self.resolved_workers())


@dataclass
class JobResult:
    ok: bool
    result: Any = None  # RenderResult for render jobs, the return value for call() jobs
    error: str | None = None  # why it failed, one line
    attempts: int = 0  # how many times it was started on a worker
    worker_pid: int | None = None  # the worker of the last attempt
    seconds: float = 0.0  # wall time of the last attempt as seen by the pool
    traceback: str | None = None  # the worker-side traceback of a job-level exception
    worker_rss: int | None = None  # the worker's RSS in bytes right after the job (and its reset)


@dataclass
class WorkerStats:
    slot: int
    pid: int | None
    state: str  # starting | idle | busy
    jobs_done: int  # by this process (resets when the slot's worker is replaced)
    rss_bytes: int | None  # now
    uptime_s: float
    startup_s: float | None  # spawn -> ready (includes `import bpy` and the scene when preloading)
    job_s: float | None  # how long the current job has been running


@dataclass
class PoolStats:
    workers: list[WorkerStats] = field(default_factory=list)
    submitted: int = 0
    completed: int = 0  # ok
    failed: int = 0  # not ok (job errors, exhausted retries, cancelled)
    queued: int = 0
    running: int = 0
    retries: int = 0
    crashes: int = 0  # workers that died (while busy or idle), not counting our own kills
    timeouts: int = 0
    recycled: int = 0
    workers_started: int = 0


# --------------------------------------------------------------------------------------------
# helpers shared by both sides


def _rss_bytes(pid: int) -> int | None:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        pass
    except Exception:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "worker died (exit status unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"worker crashed (signal {name})"
    if code == 0:
        return "worker exited unexpectedly"
    return f"worker exited with code {code}"


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}"


def _summarize(failures: list[str]) -> str:
    counts: dict[str, int] = {}
    for f in failures:
        counts[f] = counts.get(f, 0) + 1
    parts = []
    for reason, n in counts.items():
        if n == 1:
            parts.append(reason)
        else:  # "worker crashed (signal SIGSEGV) 3 times", "timed out after 30 s, 3 times"
            parts.append(f"{reason}{' ' if reason.endswith(')') else ', '}{n} times")
    return "; ".join(parts)


def _mesh_payload(mesh) -> tuple:
    """What a worker needs to rebuild the mesh: a path, or plain arrays (no trimesh caches)."""
    if isinstance(mesh, (str, os.PathLike)):
        return ("path", os.path.abspath(os.fspath(mesh)))
    if hasattr(mesh, "to_mesh") and hasattr(mesh, "geometry"):  # trimesh.Scene
        mesh = mesh.to_mesh()
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        import numpy as np

        colors = None
        visual = getattr(mesh, "visual", None)
        if visual is not None and getattr(visual, "kind", None) == "vertex":
            colors = np.asarray(visual.vertex_colors)
        return ("arrays", np.asarray(mesh.vertices), np.asarray(mesh.faces), colors)
    if isinstance(mesh, tuple) and len(mesh) == 2:  # (vertices, faces)
        import numpy as np

        return ("arrays", np.asarray(mesh[0]), np.asarray(mesh[1]), None)
    raise TypeError(
        f"a render job takes a trimesh.Trimesh/Scene, (vertices, faces) or a file path, not {type(mesh).__name__}"
    )


# --------------------------------------------------------------------------------------------
# worker process


def _resolve_target(spec: str, cache: dict) -> Callable:
    if spec in cache:
        return cache[spec]
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ValueError(f"call target must be 'module:function' or '/path/file.py:function', not {spec!r}")
    if where.endswith(".py") or os.sep in where or "/" in where:
        import importlib.util

        mod_name = f"_ar3d_pool_job_{len(cache)}_{os.path.splitext(os.path.basename(where))[0]}"
        spec_obj = importlib.util.spec_from_file_location(mod_name, where)
        if spec_obj is None or spec_obj.loader is None:
            raise ImportError(f"cannot load {where}")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = module
        spec_obj.loader.exec_module(module)
    else:
        import importlib

        module = importlib.import_module(where)
    fn = module
    for part in name.split("."):
        fn = getattr(fn, part)
    cache[spec] = fn
    return fn


class _WorkerRenderer:
    """The worker's one Renderer, built once (at start when preloading, else on first use)."""

    def __init__(self, render_config):
        self.render_config = render_config
        self.renderer = None

    def get(self):
        if self.renderer is None:
            from .render import Renderer

            self.renderer = Renderer(self.render_config) if self.render_config is not None else Renderer()
        return self.renderer

    def render(self, payload, config):
        renderer = self.get()
        if payload[0] == "path":
            mesh = payload[1]
        else:
            import trimesh

            _, vertices, faces, colors = payload
            mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=colors, process=False)
        return renderer.render(mesh, config)

    def reset(self):
        if self.renderer is not None:
            self.renderer.reset()

    def close(self):
        if self.renderer is not None:
            try:
                self.renderer.close()
            except Exception:
                pass


def _is_blender_scripts_dir(path: str) -> bool:
    """.../bpy/5.0/scripts/modules, ~/.config/blender/5.0/scripts/addons/modules, ..."""
    parts = [p.lower() for p in os.path.normpath(path).split(os.sep)]
    if "scripts" not in parts:
        return False
    i = parts.index("scripts")
    version = parts[i - 1] if i else ""
    return (version.replace(".", "").isdigit() and "." in version
            and any(p == "bpy" or p.startswith("blender") for p in parts[: i - 1]))  # fmt: skip


def _clean_sys_path() -> None:
    """Drop Blender's script folders inherited from a caller that imported bpy itself.

    `import bpy` puts `.../bpy/5.0/scripts/modules` (holding a pure-Python `bpy` package) at the
    front of sys.path; spawn copies the caller's sys.path, and the worker's own `import bpy` would
    then find that package first and fail with "No module named '_bpy'". bpy adds them back."""
    if "bpy" not in sys.modules:
        sys.path[:] = [p for p in sys.path if not (p and _is_blender_scripts_dir(p))]


def _orphaned_exit(tmp_dir: str | None) -> None:
    """The caller died without cleaning up: remove our temp folder (and the pool's, if empty)."""
    if tmp_dir:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(tmp_dir))  # only succeeds for the last worker out
        except OSError:
            pass
    os._exit(3)


def _watch_parent(parent_pid: int, tmp_dir: str | None) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            _orphaned_exit(tmp_dir)


def _worker_main(conn, parent_pid: int, render_config, preload: bool, quiet: bool, tmp_dir: str | None,
                 threads: int = 0) -> None:  # fmt: skip
    """Entry point of a worker process (spawned; also importable without bpy)."""
    t0 = time.perf_counter()
    _clean_sys_path()
    if threads:  # before `import bpy`: Mesa's llvmpipe reads it at start-up
        os.environ.setdefault("LP_NUM_THREADS", str(threads))
        os.environ.setdefault("AR3D_RENDER_THREADS", str(threads))
    if tmp_dir:  # the pool removes this folder when the worker is gone, even after a crash
        os.environ["TMPDIR"] = tmp_dir  # before `import bpy`: Blender's own temp files go there too
        tempfile.tempdir = tmp_dir
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
    threading.Thread(target=_watch_parent, args=(parent_pid, tmp_dir), name="parent-watch", daemon=True).start()
    import faulthandler

    faulthandler.enable()  # a segfault prints the Python stack to stderr
    if quiet:
        try:
            sys.stdout.flush()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
        except OSError:
            pass
    renderer = _WorkerRenderer(render_config)
    preload_error = None
    if preload:
        try:
            renderer.get()
        except Exception as e:  # reported with the first render job, which retries the build
            preload_error = f"{type(e).__name__}: {e}"
    me = os.getpid()
    try:
        conn.send_bytes(pickle.dumps(("ready", me, time.perf_counter() - t0, _rss_bytes(me), preload_error), _PICKLE))
    except OSError:
        os._exit(0)
    targets: dict = {}
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the caller is gone
            renderer.close()
            _orphaned_exit(tmp_dir)
        if msg[0] == "stop":
            break
        _, job_id, kind, blob = msg
        t = time.perf_counter()
        ok, value, error, tb, recycle = True, None, None, None, False
        try:
            if kind == "render":
                payload, config, then = pickle.loads(blob)
                try:
                    value = renderer.render(payload, config)
                    if then is not None:  # e.g. write the files here, send back only a record
                        value = _resolve_target(then[0], targets)(value, *then[1])
                finally:
                    try:
                        renderer.reset()
                    except Exception:
                        recycle = True  # the scene may be in a bad state: replace this worker
            else:
                target, args, kwargs = pickle.loads(blob)
                fn = _resolve_target(target, targets) if isinstance(target, str) else target
                value = fn(*args, **kwargs)
        except Exception as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            ok, value, tb = False, None, traceback.format_exc()
        out = None
        if ok:
            try:
                out = pickle.dumps(value, _PICKLE)
            except Exception as e:
                ok, error, tb = False, f"result cannot be sent back: {type(e).__name__}: {e}", traceback.format_exc()
        value = None
        reply = ("done", job_id, ok, out, error, tb, time.perf_counter() - t, _rss_bytes(me), recycle)
        try:
            conn.send_bytes(pickle.dumps(reply, _PICKLE))
        except OSError:
            break
        out = reply = None
        if recycle:
            break
    renderer.close()
    try:
        conn.close()
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip bpy's own teardown: slow and, after many renders, occasionally crashy


# --------------------------------------------------------------------------------------------
# caller side


class _Job:
    __slots__ = ("id", "kind", "blob", "timeout_s", "future", "attempts", "failures", "started")

    def __init__(self, job_id: int, kind: str, blob: bytes, timeout_s: float | None, future: Future):
        self.id = job_id
        self.kind = kind
        self.blob = blob
        self.timeout_s = timeout_s
        self.future = future
        self.attempts = 0
        self.failures: list[str] = []
        self.started = False


class _Worker:
    def __init__(self, slot: int, proc, conn):
        self.slot = slot
        self.proc = proc
        self.conn = conn
        self.pid = proc.pid
        self.tmp_dir: str | None = None
        self.state = "starting"  # starting | idle | busy | stopping
        self.job: _Job | None = None
        self.spawned = time.monotonic()
        self.deadline: float | None = None  # start deadline, job deadline or stop deadline
        self.job_started: float | None = None
        self.jobs_done = 0
        self.startup_s: float | None = None
        self.rss: int | None = None


class _Core:
    """All pool state; only the dispatcher thread touches workers and pipes."""

    def __init__(self, config: PoolConfig, render_config):
        self.config = config
        self.render_config = render_config
        self.n_workers = config.resolved_workers()
        self.ctx = mp.get_context(config.start_method)
        self.owner_pid = os.getpid()
        self.lock = threading.Lock()
        self.queue: deque[_Job] = deque()
        self.slots: dict[int, _Worker | None] = {i: None for i in range(self.n_workers)}
        self.stopping: list[_Worker] = []
        self.closing = False  # finish the queue, then stop
        self.aborting = False  # cancel everything now
        self.broken: str | None = None
        self.start_failures = 0
        self.stats = PoolStats()
        self.ids = itertools.count()
        self.spawns = itertools.count()
        self.tmp_root: str | None = None  # per-pool folder holding one temp folder per worker
        self.wake_r, self.wake_w = self.ctx.Pipe(duplex=False)
        self.wake_pending = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ar3d-render-pool", daemon=True)

    # ---- called from any thread
    def wake(self) -> None:
        with self.lock:
            if self.wake_pending:
                return
            self.wake_pending = True
        try:
            self.wake_w.send_bytes(b"!")
        except OSError:
            pass

    def submit(self, kind: str, blob: bytes, timeout_s: float | None) -> Future:
        future: Future = Future()
        with self.lock:
            if self.closing or self.aborting:
                raise RuntimeError("the render pool is closed")
            job = _Job(next(self.ids), kind, blob, timeout_s, future)
            self.stats.submitted += 1
            broken = self.broken
            if not broken:
                self.queue.append(job)
        if broken:
            self._finish(job, JobResult(ok=False, error=broken))
        else:
            self.wake()
        return future

    def snapshot(self) -> PoolStats:
        now = time.monotonic()
        with self.lock:
            s = PoolStats(**{k: v for k, v in vars(self.stats).items() if k != "workers"})
            s.queued = len(self.queue)
            rows = []
            for slot, w in self.slots.items():
                if w is None:
                    continue
                rows.append(WorkerStats(slot, w.pid, w.state, w.jobs_done, None, now - w.spawned, w.startup_s,
                                        now - w.job_started if w.job_started is not None else None))  # fmt: skip
            s.running = sum(1 for r in rows if r.state == "busy")
        for r in rows:
            r.rss_bytes = _rss_bytes(r.pid) if r.pid else None
        s.workers = rows
        return s

    def shutdown(self, abort: bool, timeout: float | None = None) -> None:
        with self.lock:
            self.closing = True
            if abort:
                self.aborting = True
        if threading.current_thread() is self.thread:  # e.g. a finalizer run by GC in the dispatcher
            return
        self.wake()
        if not self.done.wait(timeout):  # the dispatcher is stuck: do its last job for it
            self._kill_everything()

    # ---- results (never called with self.lock held: future callbacks run here)
    def _finish(self, job: _Job, result: JobResult) -> None:
        with self.lock:
            if result.ok:
                self.stats.completed += 1
            else:
                self.stats.failed += 1
        job.blob = b""
        if not job.future.done():
            try:
                job.future.set_result(result)
            except Exception:  # cancelled by the caller meanwhile
                pass

    def _retry_or_fail(self, job: _Job, reason: str, pid: int | None, seconds: float) -> None:
        job.failures.append(reason)
        with self.lock:
            retry = job.attempts <= self.config.max_retries and not self.aborting and not self.broken
            if retry:
                self.stats.retries += 1
                self.queue.appendleft(job)
        if not retry:
            self._finish(job, JobResult(ok=False, error=_summarize(job.failures), attempts=job.attempts,
                                        worker_pid=pid, seconds=seconds))  # fmt: skip

    # ---- dispatcher thread
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # a bug here must not leave callers waiting forever
            with self.lock:
                self.broken = f"render pool dispatcher failed: {type(e).__name__}: {e}"
                self.closing = True
            traceback.print_exc()
        finally:
            self._kill_everything()
            if self.tmp_root:
                shutil.rmtree(self.tmp_root, ignore_errors=True)
            with self.lock:
                reason = self.broken or "cancelled: the render pool was shut down"
                jobs = list(self.queue)
                self.queue.clear()
            for job in jobs:
                self._finish(job, JobResult(ok=False, error=reason, attempts=job.attempts))
            self.done.set()

    def _loop(self) -> None:
        while True:
            with self.lock:
                aborting, closing = self.aborting, self.closing
                idle_queue = not self.queue
            busy = [w for w in self.slots.values() if w is not None and w.state == "busy"]
            if aborting:
                self._abort_all()
                return
            if closing and idle_queue and not busy:
                self._stop_all()
                return
            if not (closing and idle_queue):
                self._fill_slots()
            self._dispatch()
            self._wait_and_handle()

    def _fill_slots(self) -> None:
        if self.broken:
            return
        for slot, w in self.slots.items():
            if w is None and not self.broken:
                try:
                    self.slots[slot] = self._spawn(slot)
                except Exception as e:  # fork/exec or pipe failure, out of file descriptors, ...
                    self._start_failed(f"cannot start a worker process: {type(e).__name__}: {e}")

    def _spawn(self, slot: int) -> _Worker:
        tmp_dir = None
        try:
            if self.tmp_root is None:
                self.tmp_root = tempfile.mkdtemp(prefix="ar3d_pool_")
            tmp_dir = os.path.join(self.tmp_root, f"w{next(self.spawns)}")
            os.mkdir(tmp_dir)
        except OSError:
            tmp_dir = None
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(
            target=_worker_main,
            args=(child_conn, os.getpid(), self.render_config, self.config.preload, self.config.quiet, tmp_dir,
                  self.config.resolved_threads()),  # fmt: skip
            name=f"ar3d-render-{slot}",
            daemon=True,
        )
        proc.start()
        child_conn.close()
        w = _Worker(slot, proc, parent_conn)
        w.tmp_dir = tmp_dir
        w.deadline = time.monotonic() + self.config.start_timeout_s
        with self.lock:
            self.stats.workers_started += 1
        return w

    def _dispatch(self) -> None:
        for w in list(self.slots.values()):
            if w is None or w.state != "idle":
                continue
            job = None
            with self.lock:
                while self.queue:
                    cand = self.queue.popleft()
                    if cand.started or cand.future.set_running_or_notify_cancel():
                        cand.started = True
                        job = cand
                        break
                    self.stats.failed += 1  # cancelled by the caller before it ran
            if job is None:
                return
            try:
                w.conn.send_bytes(pickle.dumps(("job", job.id, job.kind, job.blob), _PICKLE))
            except (OSError, ValueError):
                with self.lock:
                    self.queue.appendleft(job)  # never started: no attempt charged
                self._worker_died(w)
                continue
            job.attempts += 1
            w.state, w.job = "busy", job
            w.job_started = time.monotonic()
            w.deadline = w.job_started + job.timeout_s if job.timeout_s else None

    def _all_workers(self) -> list[_Worker]:
        return [w for w in self.slots.values() if w is not None] + self.stopping

    def _wait_and_handle(self) -> None:
        workers = self._all_workers()
        deadlines = [w.deadline for w in workers if w.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        objs: list = [self.wake_r]
        for w in workers:
            objs.append(w.conn)
            objs.append(w.proc.sentinel)
        ready = set(wait_ready(objs, timeout))
        if self.wake_r in ready:
            try:
                self.wake_r.recv_bytes()
            except (EOFError, OSError):
                pass
            with self.lock:
                self.wake_pending = False
        # messages first: a worker may have replied and then died
        for w in workers:
            if w.conn in ready:
                self._on_readable(w)
        for w in workers:
            if self._owns(w) and w.proc.sentinel in ready:
                self._drain(w)
                if self._owns(w):
                    self._worker_died(w)
        now = time.monotonic()
        for w in self._all_workers():
            if w.deadline is not None and now >= w.deadline:
                self._on_deadline(w)

    def _owns(self, w: _Worker) -> bool:
        return self.slots.get(w.slot) is w or w in self.stopping

    def _drain(self, w: _Worker) -> None:
        try:
            while self._owns(w) and w.conn.poll():
                self._on_readable(w)
        except (EOFError, OSError):
            pass

    def _on_readable(self, w: _Worker) -> None:
        if not self._owns(w):
            return
        try:
            msg = pickle.loads(w.conn.recv_bytes())
        except (EOFError, OSError, pickle.UnpicklingError, ValueError):
            self._worker_died(w)
            return
        if msg[0] == "ready":
            _, pid, _startup, rss, _preload_error = msg
            w.state = "idle"
            w.startup_s = time.monotonic() - w.spawned
            w.rss = rss
            w.deadline = None
            self.start_failures = 0
            return
        _, job_id, ok, out, error, tb, seconds, rss, recycle = msg
        job = w.job
        w.rss = rss
        if w.state == "stopping" or job is None or job.id != job_id:
            return
        value = None
        if ok:
            try:
                value = pickle.loads(out)
            except Exception as e:
                ok, tb = False, traceback.format_exc()
                error = f"result cannot be loaded in the caller: {type(e).__name__}: {e}"
        elapsed = time.monotonic() - (w.job_started or time.monotonic())
        w.state, w.job, w.deadline, w.job_started = "idle", None, None, None
        w.jobs_done += 1
        self._finish(job, JobResult(ok=ok, result=value, error=error, attempts=job.attempts, worker_pid=w.pid,
                                    seconds=elapsed, traceback=tb, worker_rss=rss))  # fmt: skip
        cfg = self.config
        if (recycle or (cfg.max_jobs_per_worker and w.jobs_done >= cfg.max_jobs_per_worker)
                or (cfg.max_rss_mb and rss and rss > cfg.max_rss_mb * 2**20)):  # fmt: skip
            self._retire(w)

    def _retire(self, w: _Worker) -> None:
        """Ask an idle worker to exit; its slot gets a fresh worker."""
        self.slots[w.slot] = None
        w.state = "stopping"
        w.deadline = time.monotonic() + _STOP_GRACE_S
        self.stopping.append(w)
        with self.lock:
            self.stats.recycled += 1
        try:
            w.conn.send_bytes(pickle.dumps(("stop",), _PICKLE))
        except (OSError, ValueError):
            pass

    def _reap(self, w: _Worker, kill: bool) -> int | None:
        if kill and w.proc.is_alive():
            w.proc.kill()
        w.proc.join(_STOP_GRACE_S)
        if w.proc.exitcode is None:  # still there: no more patience
            w.proc.kill()
            w.proc.join(_STOP_GRACE_S)
        try:
            w.conn.close()
        except OSError:
            pass
        code = w.proc.exitcode
        try:
            w.proc.close()
        except ValueError:
            pass
        if w.tmp_dir and code is not None:
            shutil.rmtree(w.tmp_dir, ignore_errors=True)
        return code

    def _remove(self, w: _Worker) -> None:
        if self.slots.get(w.slot) is w:
            self.slots[w.slot] = None
        if w in self.stopping:
            self.stopping.remove(w)

    def _worker_died(self, w: _Worker) -> None:
        if not self._owns(w):
            return
        self._remove(w)
        if w.state == "stopping":
            self._reap(w, kill=False)
            return
        code = self._reap(w, kill=False)
        reason = _describe_exit(code)
        with self.lock:
            self.stats.crashes += 1
        if w.state == "starting":
            self._start_failed(f"{reason} while starting")
        elif w.state == "busy" and w.job is not None:
            self._retry_or_fail(w.job, reason, w.pid, time.monotonic() - (w.job_started or w.spawned))

    def _start_failed(self, reason: str) -> None:
        self.start_failures += 1
        if self.start_failures >= _START_FAILURE_LIMIT:
            with self.lock:
                self.broken = f"render workers cannot start: {reason} ({self.start_failures} times in a row)"
                jobs = list(self.queue)
                self.queue.clear()
            for job in jobs:
                self._finish(job, JobResult(ok=False, error=self.broken, attempts=job.attempts))

    def _on_deadline(self, w: _Worker) -> None:
        if not self._owns(w):
            return
        self._remove(w)
        self._reap(w, kill=True)
        if w.state == "starting":
            with self.lock:
                self.stats.timeouts += 1
            self._start_failed(f"not ready after {_fmt_s(self.config.start_timeout_s)} s")
        elif w.state == "busy" and w.job is not None:
            with self.lock:
                self.stats.timeouts += 1
            job = w.job
            self._retry_or_fail(job, f"timed out after {_fmt_s(job.timeout_s)} s", w.pid,
                                time.monotonic() - (w.job_started or w.spawned))  # fmt: skip

    def _abort_all(self) -> None:
        for w in self._all_workers():
            self._remove(w)
            self._reap(w, kill=True)
            if w.state == "busy" and w.job is not None:
                self._finish(w.job, JobResult(ok=False, error="cancelled: the render pool was shut down",
                                              attempts=w.job.attempts, worker_pid=w.pid))  # fmt: skip

    def _stop_all(self) -> None:
        workers = self._all_workers()
        for w in workers:
            if w.state != "stopping":
                try:
                    w.conn.send_bytes(pickle.dumps(("stop",), _PICKLE))
                except (OSError, ValueError):
                    pass
        for w in workers:
            self._remove(w)
            kill = w.state == "starting"  # mid-`import bpy`: no need to wait for it
            self._reap(w, kill=kill)

    def _kill_everything(self) -> None:
        """Last resort (dispatcher gone or stuck): kill whatever processes are left."""
        for w in list(self.slots.values()) + list(self.stopping):
            if w is None:
                continue
            try:
                if w.proc.is_alive():
                    w.proc.kill()
                w.proc.join(_STOP_GRACE_S)
            except (ValueError, AssertionError):  # already closed / not ours
                pass


_LIVE: weakref.WeakSet[_Core] = weakref.WeakSet()


def _shutdown_core(core: _Core) -> None:
    if os.getpid() != core.owner_pid:  # a fork of the caller must not touch the caller's workers
        return
    core.shutdown(abort=True, timeout=15)


@atexit.register
def _atexit_shutdown() -> None:  # registered after multiprocessing's own exit hook, so runs first
    for core in list(_LIVE):
        _shutdown_core(core)


class RenderPool:
    """Long-lived Blender workers serving render jobs; use as a context manager."""

    def __init__(self, config: PoolConfig | None = None, render_config=None):
        self.config = config or PoolConfig()
        if self.config.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.config.max_retries}")
        if self.config.workers is not None and self.config.workers < 1:
            raise ValueError(f"workers must be >= 1 (or None for the default), got {self.config.workers}")
        if hasattr(render_config, "validate"):
            render_config.validate()  # a bad setting fails here, not in every worker
        pickle.dumps(render_config, _PICKLE)  # it goes to every worker: fail early if it cannot
        self.render_config = render_config
        self._core = _Core(self.config, render_config)
        _LIVE.add(self._core)
        self._finalizer = weakref.finalize(self, _shutdown_core, self._core)
        self._core.thread.start()

    # ---- lifecycle
    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    def close(self) -> None:
        """Finish every submitted job, then stop the workers. Safe to call twice."""
        try:
            self._core.shutdown(abort=False)
        except BaseException:  # e.g. Ctrl-C while waiting: do not leave workers behind
            self.terminate()
            raise
        self._finalizer.detach()

    def terminate(self) -> None:
        """Stop now: kill the workers; unfinished jobs end as 'cancelled' results."""
        self._core.shutdown(abort=True, timeout=30)
        self._finalizer.detach()

    @property
    def workers(self) -> int:
        return self._core.n_workers

    # ---- jobs
    def submit(self, mesh, config=None, *, then: tuple | None = None, timeout_s: float | None = None) -> Future:
        """Render one mesh (trimesh object, (vertices, faces) or file path); Future[JobResult].

        `then = ("module:function", args)` runs `function(render_result, *args)` in the worker
        and returns its value instead of the RenderResult: a farm writes the images where they
        were rendered, in parallel, instead of shipping them to one busy parent process.
        """
        blob = pickle.dumps((_mesh_payload(mesh), config, then), _PICKLE)
        return self._core.submit("render", blob, self._timeout(timeout_s))

    def call(self, target: str | Callable, *args, timeout_s: float | None = None, **kwargs) -> Future:
        """Run `target(*args, **kwargs)` in a worker, like a render job; Future[JobResult].

        `target` is "package.module:function", "/path/to/file.py:function", or a picklable
        module-level function.
        """
        blob = pickle.dumps((target, args, kwargs), _PICKLE)
        return self._core.submit("call", blob, self._timeout(timeout_s))

    def _timeout(self, timeout_s: float | None) -> float | None:
        t = timeout_s if timeout_s is not None else self.config.timeout_s
        return t if t and t > 0 else None

    def imap(self, meshes: Iterable, config=None, *, window: int | None = None, then: Callable | None = None,
             timeout_s: float | None = None) -> Iterator[tuple[int, JobResult]]:  # fmt: skip
        """Yield (input index, JobResult) as jobs complete; at most `window` jobs in flight
        (default 4 x workers) so a long iterable of meshes is not all held in memory.
        `then(index)` gives each job's `then` (see `submit`)."""
        window = window or 4 * self.workers
        source = enumerate(meshes)
        pending: dict[Future, int] = {}
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        i, mesh = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    job_then = then(i) if then is not None else None
                    pending[self.submit(mesh, config, then=job_then, timeout_s=timeout_s)] = i
                if not pending:
                    return
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for f in done:
                    yield pending.pop(f), _result_of(f)
        finally:
            for f in pending:  # the caller stopped early: drop what has not started
                f.cancel()

    def map(self, meshes: Iterable, config=None, *, progress: Callable[[int, int], Any] | None = None,
            timeout_s: float | None = None) -> list[JobResult]:  # fmt: skip
        """Render all meshes; JobResults in input order. `progress(done, total)` after each."""
        meshes = list(meshes)
        out: list[JobResult | None] = [None] * len(meshes)
        for n, (i, res) in enumerate(self.imap(meshes, config, timeout_s=timeout_s), 1):
            out[i] = res
            if progress is not None:
                progress(n, len(meshes))
        return out  # type: ignore[return-value]

    def stats(self) -> PoolStats:
        """Counters plus one row per live worker (pid, state, jobs done, RSS now)."""
        return self._core.snapshot()


def _result_of(f: Future) -> JobResult:
    try:
        return f.result()
    except CancelledError:
        return JobResult(ok=False, error="cancelled")
