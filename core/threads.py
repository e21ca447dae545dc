"""The CPU thread policy: how many threads torch uses and how its OpenMP threads wait.

Why: torch's CPU kernels run on OpenMP (libgomp) threads that, by default, spin for a while
when they wait for each other. When other processes (Blender, a second job, a test run) share
the cores, a spinning thread holds a core that the thread it waits for needs, and on a busy
2-core machine the demo policy went from ~25 ms to 270-1300 ms a token (BENCHMARKS.md,
"Generation on a busy machine"). With the passive wait policy a waiting thread sleeps at once,
so generation slows down in proportion to the load instead of collapsing.

libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it. So `prepare_environment` runs when
``ar3d.core`` is imported (before it imports torch) and sets the passive policy unless the user
chose one; a process that imported torch before ar3d keeps libgomp's default, which `apply`
notices and answers with one thread (nothing to wait for). Child processes inherit the
environment; `child_env` gives one for a process started with its own environment (the add-on's
local server). This module imports torch only inside `apply` and `describe`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

from .errors import Ar3dError

THREADS_ENV = "AR3D_THREADS"  # intra-op threads: a positive integer or "auto"
WAIT_ENV = "OMP_WAIT_POLICY"
DEFAULT_WAIT = "PASSIVE"
MAX_AUTO_THREADS = 8  # beyond this the demo-sized models gain nothing and a shared node loses


class ThreadsError(Ar3dError, ValueError):
    """--threads / AR3D_THREADS is not a positive integer or "auto"."""


@dataclass
class ThreadPolicy:
    """What this process runs with; shown by `ar3d info`, in sidecars and in /v1/health."""

    threads: int  # torch intra-op threads
    source: str  # where the number came from: --threads, AR3D_THREADS, OMP_NUM_THREADS, auto
    wait_policy: str  # OMP_WAIT_POLICY as libgomp read it ("passive", "active", "default")
    passive_wait: bool  # False when the user chose another policy or torch was loaded first
    cores: int  # cores this process may run on

    def to_dict(self) -> dict:
        return asdict(self)


_prepared = False
_wait_at_load: str | None = None  # OMP_WAIT_POLICY as libgomp read it; None: libgomp's default
_applied: ThreadPolicy | None = None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def helper_processes() -> int:
    """Worker processes for CPU-side work next to training (meshing, grid rewards): min(8, CPUs − 1),
    shared out between this machine's training processes (``LOCAL_WORLD_SIZE``); ≤ 1 means none."""
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return min(8, ((os.cpu_count() or 1) - 1) // local)


def helper_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of helper worker processes (meshing, grid rewards): fresh interpreters (forkserver:
    no fork of a process holding a GPU context) that leave Ctrl-C to the parent. Raises
    ValueError where forkserver does not exist (Windows); callers then work in-process."""
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_ignore_interrupts)


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole process group, but the parent decides what it means: the trainer
    finishes its step, saves a checkpoint and then closes its pools. A worker killed by it broke
    the pool mid-step (the step fell back to the trainer process) and printed one
    KeyboardInterrupt traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def libgomp_loaded() -> bool:
    """Whether an OpenMP runtime is already in this process (then its wait policy is fixed)."""
    if "torch" in sys.modules:
        return True
    try:
        with open("/proc/self/maps") as f:
            return any("libgomp" in line or "libiomp" in line for line in f)
    except OSError:
        return False


def prepare_environment() -> None:
    """Set the passive wait policy unless the user set one; call before torch is imported.

    If libgomp is already loaded, a value found in the environment is taken to have been there
    when it loaded (set by whoever started the process); none means libgomp's default."""
    global _prepared, _wait_at_load
    if _prepared:
        return
    _prepared = True
    if not libgomp_loaded():
        os.environ.setdefault(WAIT_ENV, DEFAULT_WAIT)
    _wait_at_load = os.environ.get(WAIT_ENV)


def _wait() -> tuple[str, bool]:
    """(wait policy as libgomp read it, whether it is the passive one)."""
    wait = (_wait_at_load or "").strip().lower()
    return wait or "default", wait == "passive"


def parse_threads(value) -> int | None:
    """A positive thread count, or None for "auto"; ThreadsError for anything else."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "0")):
        return None
    if isinstance(value, bool):
        raise ThreadsError(f"threads must be a positive integer or 'auto', not {value!r}")
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ThreadsError(f"threads must be a positive integer or 'auto', not {value!r} "
                           f"(--threads or ${THREADS_ENV})") from None  # fmt: skip
    if n < 0:
        raise ThreadsError(f"threads must be a positive integer or 'auto', not {n} (--threads or ${THREADS_ENV})")
    return n or None


def resolve(threads=None, environ=None) -> tuple[int, str]:
    """(threads, source): --threads, then $AR3D_THREADS, then $OMP_NUM_THREADS, then auto."""
    environ = os.environ if environ is None else environ
    for source, value in (("--threads", threads), (THREADS_ENV, environ.get(THREADS_ENV))):
        n = parse_threads(value)
        if n is not None:
            return n, source
    omp = (environ.get("OMP_NUM_THREADS") or "").split(",")[0].strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    return min(usable_cores(), MAX_AUTO_THREADS), "auto"


def apply(threads=None) -> ThreadPolicy:
    """Choose and set this process's torch threads (and the wait policy, if still possible).

    When libgomp was loaded before the passive policy could be set and the number was not
    chosen explicitly, one thread is used: a lone thread never waits for another one."""
    global _applied
    prepare_environment()
    n, source = resolve(threads)
    wait, passive = _wait()
    if not passive and source == "auto" and wait == "default":
        n, source = 1, "auto (torch was loaded before ar3d could set the wait policy: one thread)"
    os.environ[THREADS_ENV] = str(n)  # children (eval's workers, DataLoaders) follow this process
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _applied = ThreadPolicy(n, source, wait, passive, usable_cores())
    return _applied


def describe() -> dict:
    """The policy in force (applied or not) as a dict, for `ar3d info`, sidecars and health."""
    if _applied is not None:
        import torch

        return dict(_applied.to_dict(), threads=torch.get_num_threads())
    import torch

    prepare_environment()
    wait, passive = _wait()
    return ThreadPolicy(torch.get_num_threads(), "torch default", wait, passive, usable_cores()).to_dict()


def child_env(environ=None, threads=None) -> dict:
    """An environment for a child process that runs ar3d: the passive wait policy (unless the
    user chose one) and, when given, the thread count."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault(WAIT_ENV, DEFAULT_WAIT)
    if threads is not None:
        n = parse_threads(threads)
        if n is not None:
            env[THREADS_ENV] = str(n)
    return env
