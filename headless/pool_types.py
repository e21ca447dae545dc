"""The render pool's settings and what it reports: configs, per-job results, statistics.

Kept apart from the pool so the farm, the trainer's config and Ray code can name them without
pulling in the dispatcher.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JobResult", "PoolConfig", "PoolStats", "WorkerStats", "default_workers"]


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
    max_retries: int = 2  # re-runs of a job whose worker crashed (or timed out, with retry_timeouts)
    # A job that ran past timeout_s is usually stuck for good (a mesh that hangs Blender): by
    # default it fails at once instead of holding a worker for (1 + max_retries) x timeout_s.
    retry_timeouts: bool = False
    # The Python that runs the workers: it needs bpy (and numpy, trimesh, Pillow), not torch.
    # None: $AR3D_BLENDER_PYTHON if set, else this Python. Lets a training environment without
    # bpy (another Python version, numpy 2) render through a separate Python 3.11 that has it.
    python: str | None = None
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

    def resolved_python(self) -> str:
        """The workers' interpreter as an absolute path; ValueError naming the setting if unusable."""
        raw = self.python or os.environ.get("AR3D_BLENDER_PYTHON") or sys.executable
        where = "PoolConfig.python" if self.python else ("AR3D_BLENDER_PYTHON" if raw != sys.executable else "sys.executable")
        path = shutil.which(raw) if os.sep not in raw else raw
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise ValueError(f"the render workers' Python {raw!r} ({where}) is not an executable file: "
                             "point it at a Python 3.11 that has bpy (pip install 'bpy==5.0.*' trimesh pillow)")
        return os.path.abspath(path)

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

