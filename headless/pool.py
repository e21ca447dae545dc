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
  a crashed worker's job goes back to the front of the queue and is retried on another worker
  up to `max_retries` times (a timed-out one only with `retry_timeouts`), then comes back with `ok=False` and the reason, e.g.
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

Workers are fresh interpreters (`PoolConfig.python`, default $AR3D_BLENDER_PYTHON or this
Python) that load ar3d from the caller's folder and import only ar3d.headless, bpy, numpy,
trimesh and Pillow: never torch, and never the caller's main module (safe with torch, CUDA and
threads in the caller; `import torch` would add ~220 MB to each worker).

Test/extension hook: `pool.call("package.module:function", *args)` or
`pool.call("/path/to/file.py:function", *args)` runs any importable function in a worker through
exactly the same path as render jobs (retries, timeouts, crash handling).
"""

from __future__ import annotations


from __future__ import annotations

import os
import pickle
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from typing import Any

from .dispatcher import _LIVE, _Core, _shutdown_core
from .pool_types import JobResult, PoolConfig, PoolStats, WorkerStats, default_workers

__all__ = ["JobResult", "PoolAPI", "PoolConfig", "PoolStats", "RenderPool", "WorkerStats", "default_workers", "open_pool"]

_PICKLE = pickle.HIGHEST_PROTOCOL


def mesh_payload(mesh) -> tuple:
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


class PoolAPI:
    """What the farm, the trainer and eval use of a pool, whatever runs the renders: the local
    `RenderPool` or `ray_pool.RayRenderPool`. Subclasses give submit(), close(), terminate(),
    stats() and `workers`; imap() and map() are built on submit()."""

    workers: int

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    def submit(self, mesh, config=None, **kw) -> Future:  # pragma: no cover - abstract
        raise NotImplementedError

    def imap(self, meshes: Iterable, config=None, *, window: int | None = None, timeout_s: float | None = None,
             **per_item: Callable[[int], Any]) -> Iterator[tuple[int, JobResult]]:  # fmt: skip
        """Yield (input index, JobResult) as jobs complete; at most `window` jobs in flight
        (default 4 x workers) so a long iterable of meshes is not all held in memory.
        Each keyword is a function of the input index giving that submit() argument, e.g.
        `then=lambda i: (...)` (see `submit`)."""
        window = window or 4 * max(1, self.workers)
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
                    kw = {k: f(i) for k, f in per_item.items() if f is not None}
                    pending[self.submit(mesh, config, timeout_s=timeout_s, **kw)] = i
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


class RenderPool(PoolAPI):
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
        return self.submit_payload(mesh_payload(mesh), config, then=then, timeout_s=timeout_s)

    def submit_payload(self, payload: tuple, config=None, *, then: tuple | None = None,
                       timeout_s: float | None = None) -> Future:  # fmt: skip
        """`submit` for a mesh already in its wire form (`mesh_payload`)."""
        blob = pickle.dumps((payload, config, then), _PICKLE)
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

    def stats(self) -> PoolStats:
        """Counters plus one row per live worker (pid, state, jobs done, RSS now)."""
        return self._core.snapshot()


def open_pool(pool_config: PoolConfig | None = None, render_config=None, backend: str = "local", ray=None) -> PoolAPI:
    """The pool a trainer or an evaluation renders with: `backend` "local" (worker processes
    here) or "ray" (render actors on every node of a Ray cluster; `ray` is a `RayConfig`)."""
    if backend == "local":
        return RenderPool(pool_config, render_config)
    if backend == "ray":
        from .ray_pool import RayConfig, RayRenderPool

        return RayRenderPool(pool_config, render_config, ray or RayConfig())
    raise ValueError(f"render backend must be 'local' or 'ray', got {backend!r}")


def renders_here_need_bpy(pool_config: PoolConfig | None, backend: str = "local") -> bool:
    """True when this process's own Python must have bpy: local workers under this interpreter."""
    if backend != "local":
        return False
    cfg = pool_config or PoolConfig()
    return not (cfg.python or os.environ.get("AR3D_BLENDER_PYTHON"))


def _result_of(f: Future) -> JobResult:
    try:
        return f.result()
    except CancelledError:
        return JobResult(ok=False, error="cancelled")
