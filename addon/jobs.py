"""A generation job: submitted, polled and downloaded by a worker thread (no ``bpy`` here).

The worker writes progress into a :class:`Job` under a lock; the main thread (a
``bpy.app.timers`` callback, or the background-mode loop) reads :meth:`Job.snapshot` and imports
the results. Nothing in this module may touch ``bpy``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time

from .client import TERMINAL, Client, ServerError

POLL_INTERVAL = 0.25


class Job:
    """State shared between the worker thread and the main thread."""

    def __init__(self, *, prompt: str, params: dict, client: Client, generation_timeout: float,
                 ensure_server=None):
        self.prompt = prompt
        self.params = dict(params)
        self.client = client
        self.generation_timeout = float(generation_timeout)
        self.ensure_server = ensure_server  # callable(client, job) run first in the worker, may raise
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self.thread: threading.Thread | None = None
        # progress (guarded by _lock)
        self.id: str | None = None
        self.status = "starting"  # starting|queued|planning|coarse|refined|decoding|downloading|done|failed|cancelled
        self.stage = ""
        self.step = self.steps = 0
        self.tokens_done = self.tokens_total = 0
        self.position = None
        self.plans: list[list[str]] = []
        self.message = ""
        self.error: str | None = None
        self.results: list[dict] = []  # downloaded: {index, path, score, scores, seed}
        self.finished = False  # the worker is done (results ready, or error/cancel)
        self.applied = False  # the main thread has consumed the outcome
        self.started_at = time.monotonic()
        self.tmpdir = tempfile.mkdtemp(prefix="ar3d_")

    # ---- main thread side --------------------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="ar3d-job", daemon=True)
        self.thread.start()

    def request_cancel(self) -> None:
        self._cancel.set()
        with self._lock:
            if not self.finished:
                self.message = "cancelling…"

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "id": self.id, "status": self.status, "stage": self.stage, "step": self.step,
                "steps": self.steps, "tokens_done": self.tokens_done, "tokens_total": self.tokens_total,
                "position": self.position, "plans": [list(p) for p in self.plans], "message": self.message,
                "error": self.error, "results": list(self.results), "finished": self.finished,
                "elapsed": time.monotonic() - self.started_at,
            }

    def cleanup(self) -> None:
        for name in os.listdir(self.tmpdir) if os.path.isdir(self.tmpdir) else []:
            try:
                os.remove(os.path.join(self.tmpdir, name))
            except OSError:
                pass
        try:
            os.rmdir(self.tmpdir)
        except OSError:
            pass

    # ---- worker thread -----------------------------------------------------------------------
    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def _deadline_left(self) -> float:
        return self.generation_timeout - (time.monotonic() - self.started_at)

    def _run(self) -> None:
        try:
            self._work()
        except ServerError as e:
            self._fail(e.message)
        except Exception as e:  # noqa: BLE001 - never let the thread die silently
            self._fail(f"unexpected error: {type(e).__name__}: {e}")

    def _fail(self, message: str) -> None:
        with self._lock:
            if self.status not in ("cancelled",):
                self.status = "failed"
            self.error = message
            self.message = message
            self.finished = True

    def _cancel_on_server(self) -> str:
        """Cancel on the server; the message says what the server answered, not what we hoped."""
        if not self.id:
            return "cancelled"
        try:
            reply = self.client.cancel(self.id)
        except ServerError as e:
            return f"cancelled here; the server did not confirm ({e.message})"
        status = reply.get("status") if isinstance(reply, dict) else None
        if status == "cancelled":
            return "cancelled"
        if isinstance(reply, dict) and reply.get("stopping"):
            return "cancelled here; the server is still stopping the job"
        return f"cancelled here; the server had already ended the job ({status})"

    def _work(self) -> None:
        if self.ensure_server is not None:
            self._set(message="checking the ar3d server…")
            self.ensure_server(self.client, self)
        if self._cancel.is_set():
            self._set(status="cancelled", message="cancelled", finished=True)
            return
        self._set(message="submitting…")
        sub = self.client.submit(self.prompt, **self.params)
        self._set(id=str(sub["id"]), status=sub.get("status", "queued"), position=sub.get("position"),
                  message="queued")
        data: dict = {}
        while True:
            if self._cancel.is_set():
                self._set(status="cancelled", message=self._cancel_on_server(), finished=True)
                return
            if self._deadline_left() <= 0:
                self._cancel_on_server()
                raise ServerError(f"generation timed out after {self.generation_timeout:g} s "
                                  f"(job {self.id} cancelled on the server; raise the generation timeout "
                                  "in the add-on preferences)")
            data = self.client.job(self.id)
            status = str(data.get("status"))
            self._set(status=status, stage=data.get("stage") or "", step=data.get("step") or 0,
                      steps=data.get("steps") or 0, tokens_done=data.get("tokens_done") or 0,
                      tokens_total=data.get("tokens_total") or 0, position=data.get("position"),
                      plans=_plans(data.get("plans")), message=status)
            if status in TERMINAL:
                break
            time.sleep(POLL_INTERVAL)
        if status == "cancelled":
            self._set(message="cancelled on the server", finished=True)
            return
        if status == "failed":
            raise ServerError(f"the ar3d server failed job {self.id}: {data.get('error') or 'unknown error'}")
        results = data.get("results")
        if not isinstance(results, list):
            raise ServerError(f"the ar3d server sent a bad answer for job {self.id}: no results list")
        entries = []
        errors = []
        for pos, r in enumerate(results):
            if not isinstance(r, dict):
                raise ServerError(f"the ar3d server sent a bad result entry for job {self.id}: {r!r}")
            if not r.get("url"):
                errors.append(str(r.get("error") or "no mesh"))
                continue
            entries.append((pos, r))
        if not entries:
            detail = "; ".join(errors) if errors else "no results"
            raise ServerError(f"job {self.id} produced no mesh ({detail})")
        # best first when scores exist (the server already orders them; keep it stable otherwise)
        if any(isinstance(r.get("score"), (int, float)) for _, r in entries):
            entries.sort(key=lambda e: (-(e[1]["score"]) if isinstance(e[1].get("score"), (int, float))
                                        else float("inf"), e[0]))
        downloaded = []
        for n, (_, r) in enumerate(entries):
            if self._cancel.is_set():
                self._set(status="cancelled", message="cancelled", finished=True)
                return
            if self._deadline_left() <= 0:
                raise ServerError(f"generation timed out after {self.generation_timeout:g} s while downloading")
            self._set(status="downloading", message=f"downloading mesh {n + 1}/{len(entries)}")
            blob = self.client.download(r["url"])
            path = os.path.join(self.tmpdir, f"result_{n}.glb")
            with open(path, "wb") as f:
                f.write(blob)
            downloaded.append({"index": r.get("index", n), "path": path, "score": r.get("score"),
                               "scores": r.get("scores"), "seed": r.get("seed"),
                               "samples": data.get("samples", len(results))})
        with self._lock:
            self.results = downloaded
            self.status = "done"
            self.message = f"received {len(downloaded)} mesh(es)" + (
                f" ({len(errors)} sample(s) failed)" if errors else "")
            self.finished = True


def _plans(value) -> list[list[str]]:
    if not isinstance(value, list):
        return []
    out = []
    for p in value:
        if isinstance(p, list):
            out.append([str(x) for x in p])
        elif p is not None:
            out.append([str(p)])
    return out
