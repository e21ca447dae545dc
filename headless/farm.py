"""Render-farm batches: inputs → work items → pool renders → one folder per mesh, resumable.

An item is done when its folder `OUT/<id>/` exists: it is written under a temporary name and
renamed into place only when every file is there, so partial output never looks done and a rerun
skips exactly the finished items. `--shard i/n` takes every n-th item of the sorted list, so farm
managers (Flamenco, Deadline, SLURM arrays) can split a batch with no coordination. Output
paths are checked to stay inside OUT whatever a manifest says.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..core.errors import Ar3dError

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")
DONE_FILE = "render.json"
ERROR_LOG = "errors.jsonl"


class FarmInputError(Ar3dError, ValueError):
    """The inputs or the manifest cannot be turned into render items."""


@dataclass(frozen=True)
class RenderItem:
    id: str  # relative output folder under OUT, '/'-separated
    mesh: Path


@dataclass
class FarmSummary:
    total: int = 0
    rendered: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.rendered} rendered, {self.skipped} already done, {self.failed} failed "
                f"of {self.total} in {self.seconds:.1f} s")  # fmt: skip


def safe_id(raw: str) -> str:
    """A relative, normalised output path; anything that could leave OUT is refused."""
    text = str(raw).replace("\\", "/").strip()
    path = PurePosixPath(text)
    if not text or path.is_absolute() or text.startswith("~") or ":" in path.parts[0]:
        raise FarmInputError(f"output id {raw!r} must be a relative path inside --out")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise FarmInputError(f"output id {raw!r} may not contain '..' or be empty")
    if any(p.startswith(".") for p in parts):
        raise FarmInputError(f"output id {raw!r} may not contain hidden ('.'-prefixed) parts")
    return "/".join(parts)


def item_dir(out: Path, item: RenderItem) -> Path:
    target = (out / item.id).resolve()
    root = out.resolve()
    if root != target and root not in target.parents:  # symlinks inside OUT could still point out
        raise FarmInputError(f"output for {item.id!r} would land outside --out ({target})")
    return target


def _from_manifest(path: Path) -> list[RenderItem]:
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            mesh = row["mesh"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise FarmInputError(f"{path}:{n}: each line must be a JSON object with a \"mesh\" path ({e})") from e
        mesh_path = Path(mesh) if Path(mesh).is_absolute() else path.parent / mesh
        items.append(RenderItem(safe_id(row.get("id") or Path(mesh).stem), mesh_path))
    return items


def collect_items(inputs: list[str]) -> list[RenderItem]:
    """Files, globs, directories (searched recursively) and JSONL manifests → sorted unique items."""
    items: list[RenderItem] = []
    for spec in inputs:
        path = Path(spec)
        if path.suffix == ".jsonl" and path.is_file():
            items += _from_manifest(path)
        elif path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in MESH_SUFFIXES):
                items.append(RenderItem(safe_id(f.relative_to(path).with_suffix("").as_posix()), f))
        elif path.is_file():
            items.append(RenderItem(safe_id(path.stem), path))
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise FarmInputError(f"the pattern {spec!r} matches no file")
            items += [RenderItem(safe_id(Path(m).stem), Path(m)) for m in matches if Path(m).is_file()]
        else:
            raise FarmInputError(f"no such file, directory or manifest: {spec!r}")
    seen: dict[str, Path] = {}
    for it in items:
        if it.id in seen and seen[it.id] != it.mesh:
            raise FarmInputError(
                f"two inputs would write to the same folder {it.id!r}: {seen[it.id]} and {it.mesh}; "
                "pass their directory instead (ids keep sub-folders) or give ids in a manifest"
            )
        seen[it.id] = it.mesh
    unique = {it.id: it for it in items}
    return [unique[k] for k in sorted(unique)]


def parse_shard(spec: str | None) -> tuple[int, int]:
    if not spec:
        return 0, 1
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise FarmInputError(f"--shard takes i/n, e.g. 0/4, not {spec!r}") from None
    if n < 1 or not 0 <= i < n:
        raise FarmInputError(f"--shard {spec}: need 0 <= i < n")
    return i, n


def shard(items: list[RenderItem], i: int, n: int) -> list[RenderItem]:
    return items[i::n]


def is_done(out: Path, item: RenderItem) -> bool:
    return (item_dir(out, item) / DONE_FILE).is_file()


def write_item(out: Path, item: RenderItem, result, grid: bool = True) -> Path:
    """Write views + grid + transforms.json under a temporary name, then rename into place."""
    final = item_dir(out, item)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        result.write(tmp, grid=grid)
        record = {"mesh": str(item.mesh), "engine": result.engine, "device": result.device,
                  "views": len(result.cameras), "seconds": result.seconds}  # fmt: skip
        (tmp / DONE_FILE).write_text(json.dumps(record, indent=1))
        if final.exists():  # an earlier run's leftovers without a completed record, or --force
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_in_worker(result, out: str, item_id: str, mesh: str) -> dict:
    """Runs inside a render worker (see `RenderPool.submit(then=...)`): write, return a record."""
    final = write_item(Path(out), RenderItem(item_id, Path(mesh)), result)
    return {"path": str(final), "views": len(result.cameras), "seconds": result.seconds}


def run_farm(items, out: Path, render_config, pool_config, force: bool = False, progress=None) -> FarmSummary:
    """Render every item not yet done; failures go to OUT/errors.jsonl and the summary."""
    from .pool import RenderPool

    out.mkdir(parents=True, exist_ok=True)
    summary = FarmSummary(total=len(items))
    todo = []
    for it in items:
        if not force and is_done(out, it):
            summary.skipped += 1
        else:
            todo.append(it)
    if progress:
        progress(summary.skipped, summary.total)
    t0 = time.perf_counter()
    if todo:
        def then(i):
            return ("ar3d.headless.farm:write_in_worker", (str(out), todo[i].id, str(todo[i].mesh)))

        with RenderPool(pool_config, render_config) as pool:
            for index, job in pool.imap([str(it.mesh) for it in todo], then=then):
                if job.ok:
                    summary.rendered += 1
                else:
                    _fail(out, summary, todo[index], job.error, job.attempts)
                if progress:
                    progress(summary.skipped + summary.rendered + summary.failed, summary.total)
    summary.seconds = time.perf_counter() - t0
    return summary


def _fail(out: Path, summary: FarmSummary, item: RenderItem, reason: str, attempts: int) -> None:
    record = {"id": item.id, "mesh": str(item.mesh), "error": reason, "attempts": attempts, "time": time.time()}
    summary.failed += 1
    summary.failures.append(record)
    with open(out / ERROR_LOG, "a") as f:
        f.write(json.dumps(record) + "\n")
