"""Render-farm batches: inputs → work items → pool renders → one folder per mesh, resumable.

An item is done when `OUT/<id>/render.json` exists with the run's render settings (see
`output`); a rerun skips exactly those, re-renders items made with other settings and retries
the failed ones. `--shard i/n` takes every n-th item of the sorted list, so farm managers
(Flamenco, Deadline, SLURM arrays) can split a batch with no coordination. Output paths are
checked to stay inside OUT whatever a manifest says. The pool is local (`RenderPool`) or a Ray
cluster (`RayRenderPool`); on Ray nodes that do not see OUT the files come back through Ray.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .items import (  # noqa: F401  (the farm's public names)
    DONE_FILE,
    ERROR_LOG,
    MESH_SUFFIXES,
    FarmInputError,
    RenderItem,
    collect_items,
    parse_shard,
    safe_id,
    shard,
)
from .output import (  # noqa: F401
    clean_partials,
    done_record,
    is_done,
    item_dir,
    log_failure,
    prune_error_log,
    settings_of,
    write_files,
    write_item,
)


@dataclass
class FarmSummary:
    total: int = 0
    rendered: int = 0
    skipped: int = 0
    failed: int = 0
    changed: int = 0  # of `rendered`: done before with other settings, rendered again
    retried: int = 0  # items that needed more than one attempt (a crashed worker, a lost node)
    per_node: dict[str, int] = field(default_factory=dict)  # Ray: items rendered by each node
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    def line(self) -> str:
        changed = f" ({self.changed} with changed settings)" if self.changed else ""
        return (f"{self.rendered} rendered{changed}, {self.skipped} already done, {self.failed} failed "
                f"of {self.total} in {self.seconds:.1f} s")  # fmt: skip


def write_in_worker(result, out: str, item_id: str, mesh: str, settings: dict | None = None,
                    run: str | None = None) -> dict:  # fmt: skip
    """Runs inside a render worker (see `RenderPool.submit(then=...)`): write, return a record."""
    final = write_item(Path(out), RenderItem(item_id, Path(mesh)), result, settings=settings, run=run)
    return {"path": str(final), "views": len(result.cameras), "seconds": result.seconds}


@dataclass
class _Then:
    """Builds each item's worker-side step; the Ray pool picks per node (`RayRenderPool.submit`)."""

    out: Path
    settings: dict | None
    run: str

    def write(self, it: RenderItem) -> tuple:
        return ("ar3d.headless.farm:write_in_worker", (str(self.out), it.id, str(it.mesh), self.settings, self.run))

    def pack(self, it: RenderItem) -> tuple:
        return ("ar3d.headless.output:pack_result", (it.id, str(it.mesh), self.settings, self.run))


def run_farm(items, out: Path, render_config, pool_config, force: bool = False, progress=None,
             ray=None) -> FarmSummary:  # fmt: skip
    """Render every item not yet done; failures go to OUT/errors.jsonl and the summary.

    `ray`: a `RayConfig` to render on a Ray cluster instead of local worker processes."""
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_of(render_config)
    summary = FarmSummary(total=len(items))
    todo, changed = [], set()
    for it in items:
        if it.error is not None:
            summary.failures.append(log_failure(out, it, it.error, 0))
            summary.failed += 1
            continue
        record = None if force else done_record(out, it)
        if record is not None and record.get("settings") == settings:
            summary.skipped += 1
        else:
            if record is not None:
                changed.add(it.id)
            todo.append(it)
    if progress:
        progress(summary.skipped + summary.failed, summary.total)
    t0 = time.perf_counter()
    clean_partials(out, todo)  # left by an earlier run that was killed
    try:
        with _term_as_interrupt():
            if todo:
                _render(todo, out, render_config, pool_config, ray, _Then(out, settings, uuid.uuid4().hex),
                        summary, changed, progress)  # fmt: skip
    finally:
        clean_partials(out, todo)  # ours, when the run was interrupted
        prune_error_log(out)
    summary.seconds = time.perf_counter() - t0
    return summary


def _render(todo, out, render_config, pool_config, ray, then: _Then, summary, changed, progress) -> None:
    if ray is None:
        from .pool import RenderPool

        pool = RenderPool(pool_config, render_config)
        submit = {"then": lambda i: then.write(todo[i])}
    else:
        from .ray_pool import RayRenderPool

        pool = RayRenderPool(pool_config, render_config, ray, shared_dir=out)
        submit = {"then": lambda i: then.write(todo[i]), "then_elsewhere": lambda i: then.pack(todo[i])}
    with pool:
        for index, job in pool.imap([str(it.mesh) for it in todo], **submit):
            it = todo[index]
            if job.ok and isinstance(job.result, dict) and "files" in job.result:  # came back through Ray
                try:
                    write_files(out, it, job.result["files"], run=then.run)
                except OSError as e:
                    job.ok, job.error = False, f"cannot write the files: {type(e).__name__}: {e}"
            summary.retried += job.attempts > 1
            if job.ok:
                summary.rendered += 1
                summary.changed += it.id in changed
            else:
                summary.failures.append(log_failure(out, it, job.error, job.attempts))
                summary.failed += 1
            if progress:
                progress(summary.skipped + summary.rendered + summary.failed, summary.total)
        if hasattr(pool, "jobs_per_node"):
            summary.per_node = pool.jobs_per_node()


class _term_as_interrupt:
    """SIGTERM (a farm manager cancelling the task) unwinds like Ctrl-C, so the workers are
    stopped and partial folders removed (main thread only; elsewhere nothing changes)."""

    def __enter__(self):
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False
