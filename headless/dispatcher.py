"""The caller side of the render pool: one dispatcher thread owns every worker process.

Only the dispatcher thread touches workers and pipes; other threads submit jobs and read stats
under one lock. See `ar3d.headless.pool` for the fault-handling contract.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import deque
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_ready

from .pool_types import JobResult, PoolConfig, PoolStats, WorkerStats
from .worker import BOOTSTRAP, _is_blender_scripts_dir, rss_bytes

_PICKLE = pickle.HIGHEST_PROTOCOL
_START_FAILURE_LIMIT = 3  # consecutive workers dying before "ready" => the pool is broken
_STOP_GRACE_S = 5.0  # a stopping worker gets this long to exit before it is killed


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


def _worker_sys_path() -> list[str]:
    """The caller's sys.path without Blender's script folders (see worker._clean_sys_path)."""
    return [p for p in sys.path if not (p and _is_blender_scripts_dir(p))]


def _package_dir() -> str:
    import ar3d

    return os.path.dirname(os.path.abspath(ar3d.__file__))


class _Proc:
    """A worker process started with subprocess (the interpreter is ours to choose), with the
    part of multiprocessing.Process's interface the dispatcher uses: pid, sentinel, kill, join,
    exitcode."""

    def __init__(self, popen: subprocess.Popen, sentinel: int):
        self.popen = popen
        self.pid = popen.pid
        self.sentinel = sentinel  # readable (EOF) once the process is gone

    @classmethod
    def start(cls, python: str, env: dict):
        parent_sock, child_sock = socket.socketpair()
        sentinel_r, sentinel_w = os.pipe()
        try:
            popen = subprocess.Popen(
                [python, "-c", BOOTSTRAP, _package_dir(), str(child_sock.fileno()), str(sentinel_w)],
                env=env, stdin=subprocess.DEVNULL, pass_fds=(child_sock.fileno(), sentinel_w),
            )  # fmt: skip
        except BaseException:
            os.close(sentinel_r)
            parent_sock.close()
            raise
        finally:
            child_sock.close()
            os.close(sentinel_w)
        return cls(popen, sentinel_r), Connection(parent_sock.detach())

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        try:
            self.popen.kill()
        except OSError:
            pass

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


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
        self.python = config.resolved_python()
        # the same interpreter gets the caller's sys.path (as multiprocessing's spawn does);
        # another one (a separate Python with bpy) keeps its own
        self.sys_path = _worker_sys_path() if self.python == os.path.abspath(sys.executable) else None
        self.config_blob = pickle.dumps(render_config, _PICKLE)
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
        self.wake_r, self.wake_w = mp.Pipe(duplex=False)
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
            r.rss_bytes = rss_bytes(r.pid) if r.pid else None
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

    def _retry_or_fail(self, job: _Job, reason: str, pid: int | None, seconds: float, retry: bool = True) -> None:
        job.failures.append(reason)
        with self.lock:
            retry = retry and job.attempts <= self.config.max_retries and not self.aborting and not self.broken
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
        env = dict(os.environ)
        threads = self.config.resolved_threads()
        env.setdefault("LP_NUM_THREADS", str(threads))  # Mesa's llvmpipe reads it when bpy starts
        env.setdefault("AR3D_RENDER_THREADS", str(threads))
        if tmp_dir:  # the pool removes this folder when the worker is gone, even after a crash
            env["TMPDIR"] = tmp_dir  # Blender's own temp files go there too
        proc, parent_conn = _Proc.start(self.python, env)
        start = (os.getpid(), self.sys_path, self.config.preload, self.config.quiet, tmp_dir, self.config_blob)
        try:
            parent_conn.send_bytes(pickle.dumps(start, _PICKLE))
        except OSError:  # died at once (a broken interpreter): the sentinel reports it
            pass
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
                                time.monotonic() - (w.job_started or w.spawned), self.config.retry_timeouts)  # fmt: skip

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

