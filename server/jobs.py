"""Jobs: a bounded queue, one worker thread that runs them in order, and the finished ones' GLBs.

One worker because one model: generation already batches a job's samples, and two jobs on one
GPU would only slow each other down. The HTTP side never touches the model; it reads job
snapshots taken under a lock, so a poll is cheap while the worker generates.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.engine import GenerationCancelled, SamplingConfig
from ..core.errors import Ar3dError
from ..headless.ranking import Ranker, rank_order

log = logging.getLogger("ar3d.server")

TOKENS_TOTAL = 1024
FINAL = frozenset({"done", "failed", "cancelled"})
# The pipeline's stages → the API's statuses. One-step generation's "mesh" stage is reported as
# "coarse" so that clients handle one set of statuses for both modes.
STAGE_STATUS = {"planning": "planning", "mesh": "coarse", "coarse": "coarse", "refined": "refined"}


class QueueFull(Exception):
    """The queue holds `limit` waiting jobs; try again after `retry_after` seconds."""

    def __init__(self, limit: int, retry_after: int):
        super().__init__(f"the queue is full ({limit} jobs waiting)")
        self.limit, self.retry_after = limit, retry_after


class JobNotFound(KeyError):
    pass


class ShuttingDown(Exception):
    pass


@dataclass(frozen=True)
class JobParams:
    """What a client asked for (already validated by the API's request model)."""

    prompt: str
    two_step: bool = False
    samples: int = 1
    seed: int | None = None
    temperature: float = 0.7
    top_p: float = 0.7
    top_k: int = 8192
    max_plan_tokens: int = 1022
    smoothing: str = "medium"  # a level of ar3d.core.mesh.SMOOTHING_LEVELS

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.temperature, self.top_p, self.top_k, self.max_plan_tokens)

    def mesh_config(self, base=None):
        """The pipeline's mesh settings with this job's smoothing."""
        from ..core.mesh import MeshConfig, smoothing_passes

        return replace(base or MeshConfig(), smoothing_iterations=smoothing_passes(self.smoothing))


@dataclass
class SampleResult:
    index: int  # the sample's index in generation order (stable; the URL uses it)
    path: Path | None  # the GLB, None when the mesh was degenerate
    seed: int
    score: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Job:
    id: str
    params: JobParams
    status: str = "queued"
    stage: str | None = None  # the last stage reached: planning | coarse | refined | decoding
    step: int = 0
    steps: int = 1
    tokens_done: int = 0
    plans: list[list[str]] = field(default_factory=list)
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    results: list[SampleResult] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)


def result_url(job_id: str, index: int) -> str:
    return f"/v1/jobs/{job_id}/results/{index}.glb"


class JobManager:
    """The queue, the worker thread and the memory of finished jobs (bounded: oldest evicted)."""

    def __init__(self, pipeline, max_queue: int = 8, keep_jobs: int = 64, ranker: Ranker | None = None):
        self.pipeline, self.max_queue, self.keep_jobs, self.ranker = pipeline, max_queue, keep_jobs, ranker
        self.work_dir = Path(tempfile.mkdtemp(prefix="ar3d-serve-"))
        # Removes the GLBs even if close() is never called (tests, a crash of the HTTP layer).
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.work_dir), True)
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()  # finishing order, for eviction
        self._running: Job | None = None
        self._durations: deque[float] = deque(maxlen=20)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="ar3d-jobs", daemon=True)
        self._thread.start()

    # ---- API side -----------------------------------------------------------------------
    def submit(self, params: JobParams) -> dict:
        with self._cond:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(self.max_queue, self._retry_after())
            job = Job(uuid.uuid4().hex, params, steps=2 if params.two_step else 1)
            self._queue.append(job)
            self._jobs[job.id] = job
            self._cond.notify_all()
            return self._snapshot(job)

    def get(self, job_id: str) -> dict:
        with self._cond:
            return self._snapshot(self._job(job_id))

    def result_path(self, job_id: str, index: int) -> tuple[dict, SampleResult | None]:
        with self._cond:
            job = self._job(job_id)
            found = next((r for r in job.results if r.index == index), None)
            return self._snapshot(job), found

    def cancel(self, job_id: str, wait: float = 2.0) -> dict:
        """Queued: removed at once. Running: stopped at the next token (or between decoding and
        meshing two samples); waits up to `wait` seconds for the worker to confirm, so the answer
        is usually already "cancelled", and otherwise still the running status. Finished: no-op."""
        with self._cond:
            job = self._job(job_id)
            if job.status == "queued":
                self._queue.remove(job)
                self._end(job, "cancelled")
            elif job.status not in FINAL:
                job.cancel.set()
                self._cond.wait_for(lambda: job.status in FINAL, timeout=wait)
            return self._snapshot(job)

    def stats(self) -> dict:
        with self._cond:
            return {"queued": len(self._queue), "running": int(self._running is not None), "limit": self.max_queue}

    def close(self, timeout: float = 30.0) -> None:
        """Cancel everything, stop the worker, delete the GLBs. Safe to call twice."""
        with self._cond:
            self._closed = True
            while self._queue:
                self._end(self._queue.popleft(), "cancelled")
            if self._running is not None:
                self._running.cancel.set()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self.ranker is not None:
            self.ranker.close()
            self.ranker = None
        self._cleanup()

    # ---- helpers (call with the lock held) -----------------------------------------------
    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _retry_after(self) -> int:
        """Seconds until a slot frees up: the running job's expected remaining time, from the
        durations of jobs that ran to the end (a cancelled or failed job says nothing about it)."""
        job = self._running
        elapsed = time.time() - job.started if job and job.started else 0.0
        if self._durations:
            mean = sum(self._durations) / len(self._durations)
        elif job and job.tokens_done and elapsed:  # no job finished yet: the running one's own pace
            done = ((job.step - 1) + job.tokens_done / TOKENS_TOTAL) / max(job.steps, 1)
            mean = elapsed / max(done, 1e-3)
        else:
            mean = 10.0
        return int(min(600, max(1, math.ceil(mean - elapsed))))

    def _end(self, job: Job, status: str, error: str | None = None) -> None:
        job.status, job.finished = status, time.time()
        if error is not None:
            job.error = error
        self._finished[job.id] = None
        while len(self._finished) > self.keep_jobs:
            old, _ = self._finished.popitem(last=False)
            self._jobs.pop(old, None)
            shutil.rmtree(self.work_dir / old, ignore_errors=True)
        self._cond.notify_all()

    def _snapshot(self, job: Job) -> dict:
        p = job.params
        return {
            "id": job.id,
            "status": job.status,
            "prompt": p.prompt,
            "two_step": p.two_step,
            "samples": p.samples,
            "seed": p.seed,
            "stage": job.stage,
            "step": job.step,
            "steps": job.steps,
            "tokens_done": job.tokens_done,
            "tokens_total": TOKENS_TOTAL,
            "plans": [list(plans) for plans in job.plans],
            "error": job.error,
            "position": self._queue.index(job) + 1 if job.status == "queued" and job in self._queue else None,
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "results": [
                {"index": r.index, "url": result_url(job.id, r.index) if r.path else None, "score": r.score,
                 "scores": dict(r.scores), "seed": r.seed, "error": r.error}  # fmt: skip
                for r in job.results
            ],
        }

    # ---- worker side ----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                job = self._queue.popleft()
                self._running = job
                job.status = job.stage = "planning"
                job.step, job.started = 1, time.time()
            status, error = "failed", None
            try:
                status, error = self._run(job)
            except BaseException:  # a bug: keep serving, but say so in the job and the log
                log.exception("job %s failed", job.id)
                error = "internal error while generating; the server log has the traceback"
            finally:
                with self._cond:
                    self._running = None
                    if status == "done":
                        self._durations.append(time.time() - job.started)
                    self._end(job, status, error)

    def _set(self, job: Job, **fields: Any) -> None:
        with self._cond:
            for k, v in fields.items():
                setattr(job, k, v)

    def _run(self, job: Job) -> tuple[str, str | None]:
        p = job.params

        def progress(ev) -> None:
            if ev.step == ev.steps and ev.mesh_tokens >= ev.total:
                status = "decoding"  # every code written: the VQ-VAE and marching cubes are next
            else:
                status = STAGE_STATUS.get(ev.stage, "coarse")
            extra = {"plans": [list(row) for row in ev.plans]} if getattr(ev, "plans", None) and any(ev.plans) else {}
            self._set(job, status=status, stage=status, step=ev.step, steps=ev.steps, tokens_done=ev.mesh_tokens, **extra)

        try:
            out = self.pipeline.generate(p.prompt, p.samples, p.two_step, p.sampling(), p.seed,
                                         progress=progress, should_stop=job.cancel.is_set,
                                         mesh_config=p.mesh_config(getattr(self.pipeline, "mesh_config", None)))  # fmt: skip
        except GenerationCancelled:
            return "cancelled", None
        except Ar3dError as e:  # the user's input (e.g. a prompt too long once templated)
            return "failed", str(e)
        if job.cancel.is_set():  # cancelled while decoding: the client no longer wants it
            return "cancelled", None
        self._set(job, status="decoding", stage="decoding", tokens_done=TOKENS_TOTAL)

        folder = self.work_dir / job.id
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for r in out.results:
            if job.cancel.is_set():
                return "cancelled", None
            res = SampleResult(r.sample.group_index, None, out.generation.seed, error=r.error)
            if r.mesh is not None:
                from ..core.mesh import export_mesh

                try:
                    res.path = export_mesh(r.mesh, folder / f"{res.index}.glb")
                except Ar3dError as e:
                    res.error = str(e)
            elif res.error is None:
                res.error = "no mesh"
            results.append(res)

        rank_error = None
        if self.ranker is not None and not job.cancel.is_set():
            try:
                scored = self.ranker.score(p.prompt, 2 if p.two_step else 1, out.results)
            except Exception as e:  # keep the meshes: ranking is a bonus, not the product
                log.exception("ranking job %s failed", job.id)
                rank_error = f"the meshes are unranked: ranking failed: {type(e).__name__}: {e}"
            else:
                for res, (score, scores) in zip(results, scored):
                    res.score, res.scores = score, scores
                results.sort(key=lambda res: rank_order(res.score, res.index))
        with self._cond:
            job.plans = [r.sample.plans for r in out.results]
            if job.cancel.is_set():
                return "cancelled", None
            job.results = results
            job.error = rank_error
        return "done", None
