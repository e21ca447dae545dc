"""The farm's output folder: one folder per item, finished atomically, and the error log.

An item is done when `OUT/<id>/render.json` exists and records the same render settings: the
views are written into a hidden `.<name>.partial-*` folder first and moved into place with
render.json last, so partial output never looks done, a rerun skips exactly the finished items
and re-renders those made with other settings. Items nest (`a` and `a/b`): an item's files are
the regular files of its folder, sub-folders belong to other items and are never touched.
The same item written twice in one run (a retry after its first writer was lost with the
result already on disk) keeps the first copy: render.json carries the run's id.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path

from .items import DONE_FILE, ERROR_LOG, FarmInputError, RenderItem

PARTIAL = ".partial-"
# RenderConfig fields that do not change the pixels (a GPU or CPU Cycles render of a seed is
# the same picture as far as a rerun is concerned; quiet only routes Blender's chatter)
_NOT_SETTINGS = ("device", "quiet")


def item_dir(out: Path, item: RenderItem) -> Path:
    target = (out / item.id).resolve()
    root = out.resolve()
    if root != target and root not in target.parents:  # symlinks inside OUT could still point out
        raise FarmInputError(f"output for {item.id!r} would land outside --out ({target})")
    return target


def settings_of(render_config) -> dict | None:
    """The render settings a finished item records (JSON-normalised), None without a config."""
    if render_config is None:
        return None
    if is_dataclass(render_config):
        raw = {f.name: getattr(render_config, f.name) for f in fields(render_config) if f.name not in _NOT_SETTINGS}
    else:
        raw = dict(render_config)
    return json.loads(json.dumps(raw, default=_jsonable, sort_keys=True))


def _jsonable(x):
    if is_dataclass(x):
        return {f.name: getattr(x, f.name) for f in fields(x)}
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def done_record(out: Path, item: RenderItem) -> dict | None:
    try:
        return json.loads((item_dir(out, item) / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_done(out: Path, item: RenderItem, settings: dict | None = None) -> bool:
    """Finished; with `settings`, finished with exactly those settings."""
    record = done_record(out, item)
    return record is not None and (settings is None or record.get("settings") == settings)


def write_item(out: Path, item: RenderItem, result, grid: bool = True, settings: dict | None = None,
               run: str | None = None) -> Path:  # fmt: skip
    """Write views + grid + transforms.json into a partial folder, then move them into place."""
    final = item_dir(out, item)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}{PARTIAL}{uuid.uuid4().hex[:12]}"
    try:
        result.write(tmp, grid=grid)
        record = {"mesh": str(item.mesh), "engine": result.engine, "device": result.device,
                  "views": len(result.cameras), "seconds": result.seconds, "settings": settings, "run": run}  # fmt: skip
        (tmp / DONE_FILE).write_text(json.dumps(record, indent=1))
        place(tmp, final, run)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_files(out: Path, item: RenderItem, files: dict[str, bytes], run: str | None = None) -> Path:
    """The same as `write_item` for files rendered elsewhere (`pack_result`): name → bytes."""
    final = item_dir(out, item)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}{PARTIAL}{uuid.uuid4().hex[:12]}"
    try:
        tmp.mkdir()
        for name, data in files.items():
            if name != DONE_FILE and "/" not in name and not name.startswith("."):
                (tmp / name).write_bytes(data)
        (tmp / DONE_FILE).write_bytes(files[DONE_FILE])
        place(tmp, final, run)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def pack_result(result, item_id: str, mesh: str, settings: dict | None = None, run: str | None = None) -> dict:
    """Runs in a render worker whose node does not share OUT: encode the files there (PNG
    encoding stays spread over the cluster) and send them back as bytes, render.json included."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ar3d_pack_") as d:
        result.write(Path(d), grid=True)
        files = {p.name: p.read_bytes() for p in Path(d).iterdir() if p.is_file()}
    record = {"mesh": mesh, "engine": result.engine, "device": result.device, "views": len(result.cameras),
              "seconds": result.seconds, "settings": settings, "run": run}  # fmt: skip
    files[DONE_FILE] = json.dumps(record, indent=1).encode()
    return {"id": item_id, "files": files, "views": len(result.cameras), "seconds": result.seconds}


def place(tmp: Path, final: Path, run: str | None) -> None:
    """Move a complete partial folder into place; render.json lands last."""
    if run is not None:
        try:
            if json.loads((final / DONE_FILE).read_text()).get("run") == run:
                return  # an earlier attempt of this run already finished it: keep that one
        except (OSError, ValueError):
            pass
    try:
        os.rename(tmp, final)  # the common case: nothing there yet (or an empty folder)
        return
    except OSError:
        if not final.is_dir():
            raise
    # the folder exists: an earlier render of this item, or only sub-folders of nested items
    (final / DONE_FILE).unlink(missing_ok=True)  # not done while its files change
    for old in final.iterdir():
        if old.is_file() and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    for new in sorted(tmp.iterdir(), key=lambda p: p.name == DONE_FILE):
        os.replace(new, final / new.name)
    tmp.rmdir()


def clean_partials(out: Path, items: list[RenderItem]) -> int:
    """Remove these items' partial folders (left by a killed run); returns how many.

    Only the run's own items: concurrent shards writing into the same OUT never share one."""
    n = 0
    for it in items:
        if it.error is not None:
            continue
        try:
            final = item_dir(out, it)
        except FarmInputError:
            continue
        if not final.parent.is_dir():
            continue
        for p in final.parent.glob(f".{final.name}{PARTIAL}*"):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


@contextmanager
def _locked(out: Path):
    """errors.jsonl is shared by every shard writing into OUT: one writer at a time."""
    fd = os.open(out, os.O_RDONLY)  # a lock on the folder itself: no lock file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def log_failure(out: Path, item: RenderItem, reason: str, attempts: int) -> dict:
    record = {"id": item.id, "mesh": str(item.mesh), "error": reason, "attempts": attempts, "time": time.time()}
    with _locked(out), open(out / ERROR_LOG, "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def prune_error_log(out: Path) -> None:
    """Keep one line (the latest) per item that is still not done: a rerun that fixed an item
    takes it out of errors.jsonl."""
    path = out / ERROR_LOG
    if not path.is_file():
        return
    with _locked(out):
        latest: dict[str, str] = {}
        for line in path.read_text().splitlines():
            try:
                latest[json.loads(line)["id"]] = line
            except (ValueError, KeyError, TypeError):
                continue
        keep = []
        for item_id, line in latest.items():
            try:
                done = (item_dir(out, RenderItem(item_id, Path())) / DONE_FILE).is_file()
            except (FarmInputError, OSError, ValueError):
                done = False
            if not done:
                keep.append(line)
        if keep:
            tmp = path.with_name(f".{ERROR_LOG}.tmp")
            tmp.write_text("".join(line + "\n" for line in keep))
            os.replace(tmp, path)
        else:
            path.unlink()
