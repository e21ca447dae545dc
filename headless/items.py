"""Render-farm inputs → work items: files, globs, folders and JSONL manifests; ids; shards.

An item's id is its output folder under OUT ('/'-separated). An id that could leave OUT, a
duplicate, or one the farm itself uses (`errors.jsonl`) does not stop the run: that item carries
the reason in `error` and ends in errors.jsonl, every other item renders.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.errors import Ar3dError

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")
DONE_FILE = "render.json"
ERROR_LOG = "errors.jsonl"
RESERVED_IDS = (ERROR_LOG,)  # files of the farm itself, at the top of OUT


class FarmInputError(Ar3dError, ValueError):
    """The inputs or the manifest cannot be turned into render items."""


@dataclass(frozen=True)
class RenderItem:
    id: str  # relative output folder under OUT, '/'-separated (the raw id when `error` is set)
    mesh: Path
    error: str | None = None  # why this item cannot be rendered (bad or duplicate id)


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
    if parts[0] in RESERVED_IDS:
        raise FarmInputError(f"output id {raw!r} is the farm's own {parts[0]}: give the item another id in a manifest")
    return "/".join(parts)


def _item(raw_id, mesh: Path) -> RenderItem:
    try:
        return RenderItem(safe_id(raw_id), mesh)
    except FarmInputError as e:
        return RenderItem(str(raw_id), mesh, error=str(e))


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
        items.append(_item(row.get("id") or Path(mesh).stem, mesh_path))
    return items


def collect_items(inputs: list[str]) -> list[RenderItem]:
    """Files, globs, directories (searched recursively) and JSONL manifests → items sorted by id.

    The same file given twice is one item; a second, different mesh for an id already taken
    becomes an item with an error (the first one renders)."""
    items: list[RenderItem] = []
    for spec in inputs:
        path = Path(spec)
        if path.suffix == ".jsonl" and path.is_file():
            items += _from_manifest(path)
        elif path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in MESH_SUFFIXES):
                items.append(_item(f.relative_to(path).with_suffix("").as_posix(), f))
        elif path.is_file():
            items.append(_item(path.stem, path))
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise FarmInputError(f"the pattern {spec!r} matches no file")
            items += [_item(Path(m).stem, Path(m)) for m in matches if Path(m).is_file()]
        else:
            raise FarmInputError(f"no such file, directory or manifest: {spec!r}")
    seen: dict[str, RenderItem] = {}
    out: list[RenderItem] = []
    for it in items:
        if it.error is None and it.id in seen:
            if seen[it.id].mesh != it.mesh:
                out.append(RenderItem(it.id, it.mesh, error=(
                    f"two inputs would write to the same folder {it.id!r}: {seen[it.id].mesh} and {it.mesh}; "
                    "pass their directory instead (ids keep sub-folders) or give ids in a manifest")))  # fmt: skip
            continue
        if it.error is None:
            seen[it.id] = it
        out.append(it)
    return sorted(out, key=lambda it: (it.id, it.error is not None, str(it.mesh)))


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
