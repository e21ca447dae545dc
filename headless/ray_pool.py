"""The render pool on a Ray cluster: render actors on every node, fed one job at a time.

    with RayRenderPool(PoolConfig(), RenderConfig(resolution=224), RayConfig("auto")) as pool:
        for index, job in pool.imap(paths): ...          # the same interface as RenderPool

Each actor (one per CPU of its node, or `workers_per_node`) owns a one-worker local
`RenderPool`, so a Blender crash, a hang or a leak is handled there exactly as on one machine
(retries, timeouts, recycling, the worker Python). The driver keeps one job in flight per actor
and hands the next to whichever actor finishes first: a faster node takes more. An actor lost
with its node (or killed) gives its job back to the front of the queue; after
`max_actor_losses` losses the job fails. Nodes that join later get actors too.

Files: a mesh path the actor's node cannot see is sent as bytes. A `then` step runs on the
actor when its node sees `shared_dir` (the farm's OUT); elsewhere `then_elsewhere` runs there
instead (the farm packs the PNGs and JSON as bytes) or, without one, `then` runs here in the
caller on the RenderResult that came back through Ray.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from .pool import PoolAPI, mesh_payload
from .pool_types import JobResult, PoolConfig, PoolStats, WorkerStats
from .worker import _resolve_target

__all__ = ["RayConfig", "RayRenderPool"]


@dataclass
class RayConfig:
    """address: "auto" joins the cluster this node belongs to (RAY_ADDRESS or a running
    `ray start`) and starts a local Ray instance where there is none; "local" always starts
    one; "HOST:PORT" (or "ray://HOST:PORT") joins that cluster's head.
    workers_per_node: render actors (one Blender worker each) per node; None = the node's CPUs.
    Nodes with 0 CPUs (a GPU trainer's head started with --num-cpus 0) get none.
    max_actor_losses: a job whose actor was lost (node gone, actor killed) this many times fails.
    node_poll_s: how often the driver looks for nodes that joined or left.
    no_node_timeout_s: with no render actor alive for this long, the queued jobs fail.
    """

    address: str = "auto"
    workers_per_node: int | None = None
    max_actor_losses: int = 3
    node_poll_s: float = 2.0
    no_node_timeout_s: float = 120.0

    def check(self) -> RayConfig:
        if not self.address or not isinstance(self.address, str):
            raise ValueError(f"the Ray address must be auto, local or HOST:PORT, got {self.address!r}")
        if self.workers_per_node is not None and self.workers_per_node < 1:
            raise ValueError(f"workers_per_node must be >= 1, got {self.workers_per_node}")
        if self.max_actor_losses < 1:
            raise ValueError(f"max_actor_losses must be >= 1, got {self.max_actor_losses}")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("rendering on Ray needs ray: pip install 'ar3d[farm]' (ray[default])") from None
        return self


def connect(address: str) -> bool:
    """Join or start Ray; True when this call started it (and close() should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "configure_logging": False}
    if address == "local":
        ray.init(include_dashboard=False, **quiet)
    elif address == "auto":
        try:
            ray.init(address="auto", **quiet)
        except ConnectionError:  # no cluster here: the same command works on a laptop
            ray.init(include_dashboard=False, **quiet)
    else:
        ray.init(address=address, **quiet)
    return True


class RenderActor:
    """One Ray actor = one local Blender worker (a one-worker RenderPool)."""

    def __init__(self, pool_config: PoolConfig, render_config, shared_probe: str | None):
        from .pool import RenderPool

        self.pool = RenderPool(pool_config, render_config)
        # AR3D_RAY_NODE_IS_REMOTE=1 (tests: one machine playing several) makes this node see
        # none of the caller's files, like a machine without the shared filesystem
        self.remote = os.environ.get("AR3D_RAY_NODE_IS_REMOTE") == "1"
        self.sees_shared = bool(shared_probe) and os.path.exists(shared_probe) and not self.remote
        self.tmp = tempfile.mkdtemp(prefix="ar3d_ray_mesh_")

    def info(self) -> dict:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid(),
                "sees_shared": self.sees_shared}  # fmt: skip

    def render(self, payload: tuple, config, then, timeout_s):
        path = None
        if payload[0] == "path" and (self.remote or not os.path.isfile(payload[1])):
            return ("missing", None)
        if payload[0] == "file":  # a mesh this node cannot see, sent as bytes
            _, name, data = payload
            path = os.path.join(self.tmp, f"{uuid.uuid4().hex[:8]}_{os.path.basename(name)}")
            with open(path, "wb") as f:
                f.write(data)
            payload = ("path", path)
        try:
            return ("done", self.pool.submit_payload(payload, config, then=then, timeout_s=timeout_s).result())
        finally:
            if path:
                os.unlink(path)

    def jobs(self) -> int:
        return self.pool.stats().completed

    def close(self) -> None:
        self.pool.close()
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


class _Job:
    __slots__ = ("payload", "config", "then", "then_elsewhere", "timeout_s", "future", "losses", "failures")

    def __init__(self, payload, config, then, then_elsewhere, timeout_s, future):
        self.payload, self.config, self.then, self.then_elsewhere = payload, config, then, then_elsewhere
        self.timeout_s, self.future = timeout_s, future
        self.losses = 0
        self.failures: list[str] = []


class _Actor:
    def __init__(self, handle, node: str, ready_ref):
        self.handle, self.node, self.ready_ref = handle, node, ready_ref
        self.state = "starting"  # starting | idle | busy
        self.info: dict = {}
        self.job: _Job | None = None
        self.caller_then = False  # this job's `then` runs in the caller
        self.jobs_done = 0
        self.started = time.monotonic()
        self.job_started: float | None = None


class RayRenderPool(PoolAPI):
    """Render actors on every node of a Ray cluster behind the `RenderPool` interface."""

    def __init__(self, config: PoolConfig | None = None, render_config=None, ray: RayConfig | None = None,
                 shared_dir: str | os.PathLike | None = None):  # fmt: skip
        import ray as _ray

        self.config = config or PoolConfig()
        self.ray_config = (ray or RayConfig()).check()
        if hasattr(render_config, "validate"):
            render_config.validate()
        self.config.resolved_python()  # a bad worker Python fails here, not on every node
        self.render_config = render_config
        self._ray = _ray
        self._owns_ray = connect(self.ray_config.address)
        self._actor_cls = _ray.remote(max_restarts=0, max_task_retries=0)(RenderActor)
        self._probe = None
        if shared_dir is not None:  # a node that sees this file shares the caller's folder
            self._probe = os.path.join(os.path.abspath(shared_dir), f".ar3d-ray-probe-{uuid.uuid4().hex[:12]}")
            Path(self._probe).write_text("ar3d")
        self._lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._actors: list[_Actor] = []  # alive (as far as we know)
        self._inflight: dict[object, _Actor] = {}  # pending ref (an actor's start or its job) -> actor
        self._per_node: dict[str, int] = {}
        self._no_actor_since: float | None = None
        self._lost_per_node: dict[str, int] = {}
        self._nodes_seen: set[str] = set()
        self._closing = self._aborting = False
        self._broken: str | None = None
        self._stats = PoolStats()
        self._then_pool = ThreadPoolExecutor(4, thread_name_prefix="ar3d-ray-then")
        self._next_poll = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ar3d-ray-pool", daemon=True)
        self._thread.start()

    # ---- interface
    @property
    def workers(self) -> int:
        with self._lock:
            return max(1, len(self._actors))

    def submit(self, mesh, config=None, *, then: tuple | None = None, then_elsewhere: tuple | None = None,
               timeout_s: float | None = None) -> Future:  # fmt: skip
        """As `RenderPool.submit`; `then_elsewhere` replaces `then` on nodes that do not see the
        caller's `shared_dir` (without it, `then` runs in the caller there)."""
        future: Future = Future()
        job = _Job(mesh_payload(mesh), config, then, then_elsewhere, timeout_s, future)
        with self._lock:
            if self._closing:
                raise RuntimeError("the render pool is closed")
            self._stats.submitted += 1
            broken = self._broken
            if not broken:
                self._queue.append(job)
        if broken:
            self._finish(job, JobResult(ok=False, error=broken))
        return future

    def close(self) -> None:
        """Finish every submitted job, then stop the actors (and Ray, if this pool started it)."""
        with self._lock:
            self._closing = True
        try:
            self._done.wait()
        except BaseException:
            self.terminate()
            raise
        self._teardown()

    def terminate(self) -> None:
        with self._lock:
            self._closing = self._aborting = True
        self._done.wait(60)
        self._teardown()

    def stats(self) -> PoolStats:
        with self._lock:
            s = replace(self._stats)
            s.queued = len(self._queue)
            now = time.monotonic()
            actors = list(self._actors)
            s.workers = [WorkerStats(i, a.info.get("pid"), a.state, a.jobs_done, None, now - a.started, None,
                                     now - a.job_started if a.job_started else None) for i, a in enumerate(actors)]  # fmt: skip
            s.running = sum(1 for a in actors if a.state == "busy")
        return s

    def jobs_per_node(self) -> dict[str, int]:
        """Jobs finished by the actors of each node (node id -> count), lost actors included."""
        with self._lock:
            return dict(self._per_node)

    # ---- results
    def _finish(self, job: _Job, result: JobResult) -> None:
        with self._lock:
            if result.ok:
                self._stats.completed += 1
            else:
                self._stats.failed += 1
        if not job.future.done():
            try:
                job.future.set_result(result)
            except Exception:
                pass

    def _then_in_caller(self, job: _Job, res: JobResult) -> None:
        try:
            fn = _resolve_target(job.then[0], {}) if isinstance(job.then[0], str) else job.then[0]
            res.result = fn(res.result, *job.then[1])
        except Exception as e:
            res.ok, res.result, res.traceback = False, None, traceback.format_exc()
            res.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        self._finish(job, res)

    # ---- driver thread
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # a bug here must not leave callers waiting forever
            with self._lock:
                self._broken = f"Ray render pool failed: {type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            with self._lock:
                reason = self._broken or "cancelled: the render pool was shut down"
                jobs = list(self._queue) + [a.job for a in self._actors if a.job is not None]
                self._queue.clear()
            for job in jobs:
                self._finish(job, JobResult(ok=False, error=reason, attempts=job.losses))
            self._done.set()

    def _loop(self) -> None:
        ray = self._ray
        while True:
            with self._lock:
                aborting, closing, idle = self._aborting, self._closing, not self._queue
            busy = any(a.state == "busy" for a in self._actors)
            if aborting or (closing and idle and not busy):
                return
            if time.monotonic() >= self._next_poll:
                self._poll_nodes()
            self._dispatch()
            if not self._actors:  # none alive and none could be made: wait a while for a node
                self._no_actor_since = self._no_actor_since or time.monotonic()
                if time.monotonic() - self._no_actor_since > self.ray_config.no_node_timeout_s:
                    with self._lock:
                        self._broken = (f"no Ray node could run a render actor for {self.ray_config.no_node_timeout_s:g} s "
                                        "(every node left, has no CPUs, or its actors keep dying)")  # fmt: skip
                    return
                time.sleep(0.2)
                continue
            self._no_actor_since = None
            if not self._inflight:
                time.sleep(0.05)
                continue
            ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=0.2)
            for ref in ready:
                self._on_ready(ref)

    def _poll_nodes(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._next_poll = time.monotonic() + self.ray_config.node_poll_s
        alive = {n["NodeID"]: n for n in self._ray.nodes() if n.get("Alive")}
        have: dict[str, int] = {}
        for a in self._actors:
            have[a.node] = have.get(a.node, 0) + 1
        for node_id, node in alive.items():
            cpus = float(node.get("Resources", {}).get("CPU", 0))
            if cpus <= 0 or self._lost_per_node.get(node_id, 0) > 3 * max(1, int(cpus)):
                continue  # no CPUs, or its actors keep dying: leave that node alone
            want = self.ray_config.workers_per_node or max(1, int(cpus))
            share = min(1.0, cpus / want)
            cfg = replace(self.config, workers=1, threads_per_worker=self.config.threads_per_worker or max(1, int(cpus // want)))
            for _ in range(want - have.get(node_id, 0)):
                handle = self._actor_cls.options(
                    num_cpus=share, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
                ).remote(cfg, self.render_config, self._probe)
                actor = _Actor(handle, node_id, handle.info.remote())
                self._actors.append(actor)
                self._inflight[actor.ready_ref] = actor
                self._nodes_seen.add(node_id)

    def _dispatch(self) -> None:
        for a in self._actors:
            if a.state != "idle":
                continue
            with self._lock:
                job = None
                while self._queue:
                    cand = self._queue.popleft()
                    if cand.future.running() or cand.future.set_running_or_notify_cancel():
                        job = cand
                        break
                    self._stats.failed += 1  # cancelled by the caller before it ran
            if job is None:
                return
            self._send(a, job)

    def _send(self, a: _Actor, job: _Job) -> None:
        then, a.caller_then = job.then, False
        if job.then is not None and not a.info.get("sees_shared"):
            if job.then_elsewhere is not None:
                then = job.then_elsewhere
            else:
                then, a.caller_then = None, True
        ref = a.handle.render.remote(job.payload, job.config, then, self._timeout(job.timeout_s))
        self._inflight[ref] = a
        a.state, a.job, a.job_started = "busy", job, time.monotonic()

    def _timeout(self, timeout_s):
        t = timeout_s if timeout_s is not None else self.config.timeout_s
        return t if t and t > 0 else None

    def _on_ready(self, ref) -> None:
        a = self._inflight.pop(ref, None)
        if a is None:
            return
        try:
            value = self._ray.get(ref)
        except self._ray.exceptions.RayError as e:  # the actor (or its node) is gone
            self._actor_lost(ref, a, e)
            return
        if a.state == "starting":
            a.info, a.state = value, "idle"
            return
        kind, res = value
        job = a.job
        if kind == "missing":  # this node does not see the mesh file: send its bytes
            try:
                name = job.payload[1]
                job.payload = ("file", name, Path(name).read_bytes())
            except OSError as e:
                self._idle(a)
                self._finish(job, JobResult(ok=False, error=f"cannot read the mesh: {type(e).__name__}: {e}"))
                return
            self._send(a, job)
            return
        caller_then = a.caller_then
        a.jobs_done += 1
        with self._lock:
            self._per_node[a.node] = self._per_node.get(a.node, 0) + 1
        self._idle(a)
        res.attempts += job.losses
        if res.ok and caller_then:
            self._then_pool.submit(self._then_in_caller, job, res)
        else:
            self._finish(job, res)

    @staticmethod
    def _idle(a: _Actor) -> None:
        a.state, a.job, a.job_started = "idle", None, None

    def _actor_lost(self, ref, a: _Actor, error) -> None:
        if a in self._actors:
            self._actors.remove(a)
        self._lost_per_node[a.node] = self._lost_per_node.get(a.node, 0) + 1
        self._next_poll = 0.0  # look for replacements (on nodes still alive) now
        with self._lock:
            self._stats.crashes += 1
        job = a.job
        if job is None:
            return
        job.losses += 1
        job.failures.append(type(error).__name__)
        if job.losses >= self.ray_config.max_actor_losses:
            self._finish(job, JobResult(ok=False, attempts=job.losses, error=(
                f"render actor lost {job.losses} times ({', '.join(sorted(set(job.failures)))}): "
                "its node left the cluster or the actor was killed")))  # fmt: skip
        else:
            with self._lock:
                self._stats.retries += 1
                self._queue.appendleft(job)

    def _teardown(self) -> None:
        ray = self._ray
        actors, self._actors = list(self._actors), []
        self._inflight.clear()
        if self._aborting:
            for a in actors:
                ray.kill(a.handle)
        else:
            try:
                ray.get([a.handle.close.remote() for a in actors], timeout=60)
            except Exception:
                pass
            for a in actors:
                try:
                    ray.kill(a.handle)
                except Exception:
                    pass
        self._then_pool.shutdown(wait=True)
        if self._probe:
            Path(self._probe).unlink(missing_ok=True)
            self._probe = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
