"""Benchmark files: one JSON object per line, and the bundled prompt suite.

Format (JSONL, UTF-8, blank lines and lines starting with ``#`` or ``//`` are skipped)::

    {"id": "sp-001", "prompt": "a three-tier fountain whose bowls shrink upwards", "category": "spatial"}
    {"id": "toy-17", "prompt": "a wooden rocking horse", "category": "stylised", "reference": "refs/horse.glb"}

* ``id`` (required): unique, letters, digits, ``.``, ``_`` and ``-`` (it names the output folder).
* ``prompt`` (required): the text given to the model.
* ``category`` (required): one of ``CATEGORIES`` (the five MME-3DR categories); another name is
  accepted with a warning (the report groups by whatever names the file uses).
* ``reference`` (optional): a mesh file (GLB/glTF/OBJ/PLY/STL) **relative to the benchmark
  file** (or absolute); its renders are the reference set of KD and FD.
* ``metadata`` (optional object): passed to the rewards (e.g. the procedural demo's
  ``{"family": "chair", "attributes": {...}}``).
* ``notes`` (optional text): what the prompt tests; not used.

Why our own suite: MME-3DR's prompt list is not public. ``ar3d-reason`` holds prompts written
for ar3d, at least 40 per category, each needing some reasoning about counts, order, function,
anatomy, rare knowledge or style; it has no reference meshes, so KD/FD need a file that gives them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import Ar3dError

CATEGORIES: dict[str, str] = {
    "spatial": "spatial & structural",
    "mechanical": "mechanical affordances",
    "biological": "biological & organic",
    "world_knowledge": "world-knowledge rare objects",
    "stylised": "stylised",
}
BENCHMARK_DIR = Path(__file__).resolve().parent / "benchmarks"
BUNDLED = {"ar3d-reason": BENCHMARK_DIR / "ar3d-reason.jsonl"}
DEFAULT_BENCHMARK = "ar3d-reason"
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KNOWN = {"id", "prompt", "category", "reference", "metadata", "notes"}


class BenchmarkError(Ar3dError, ValueError):
    """A benchmark file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class BenchmarkItem:
    id: str
    prompt: str
    category: str
    reference: Path | None = None  # absolute path of the reference mesh
    metadata: dict | None = None
    line: int = 0


@dataclass
class Benchmark:
    name: str
    path: Path
    items: list[BenchmarkItem]
    warnings: list[str] = field(default_factory=list)

    def categories(self) -> list[str]:
        """Categories in order of first appearance."""
        return list(dict.fromkeys(i.category for i in self.items))

    def counts(self) -> dict[str, int]:
        return dict(Counter(i.category for i in self.items))

    def select(self, categories: list[str] | None = None, limit: int | None = None) -> "Benchmark":
        """The prompts of ``categories`` (all when None), at most ``limit`` per category, in file order."""
        items = self.items
        if categories:
            present = self.categories()
            unknown = [c for c in categories if c not in present]
            if unknown:
                raise BenchmarkError(
                    f"{self.path}: no prompts in categor{'y' if len(unknown) == 1 else 'ies'} "
                    f"{', '.join(map(repr, unknown))}; this benchmark has {', '.join(present)}"
                )
            items = [i for i in items if i.category in categories]
        if limit is not None:
            if limit < 1:
                raise BenchmarkError(f"--limit must be at least 1, got {limit}")
            taken: Counter = Counter()
            kept = []
            for i in items:
                if taken[i.category] < limit:
                    kept.append(i)
                    taken[i.category] += 1
            items = kept
        return Benchmark(self.name, self.path, list(items), list(self.warnings))

    def has_references(self) -> bool:
        return any(i.reference is not None for i in self.items)


def resolve_benchmark(spec: str | Path | None) -> Path:
    """A bundled suite's name (``ar3d-reason``) or a file path → the file."""
    spec = DEFAULT_BENCHMARK if spec is None else spec
    if str(spec) in BUNDLED:
        return BUNDLED[str(spec)]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise BenchmarkError(
            f"no benchmark file at '{spec}'; pass a JSONL file or one of the bundled suites: {', '.join(BUNDLED)}"
        )
    return path


def load_benchmark(spec: str | Path | None = None, check_references: bool = True) -> Benchmark:
    """Read and validate a benchmark; errors name the line and the fix, oddities become warnings."""
    path = resolve_benchmark(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"cannot read benchmark '{path}': {e}") from e
    items: list[BenchmarkItem] = []
    warnings: list[str] = []
    first_line: dict[str, int] = {}
    prompts: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise BenchmarkError(f"{where}: each line must be a JSON object with id, prompt and category")
        for key in ("id", "prompt", "category"):
            if key not in row:
                raise BenchmarkError(f"{where}: missing field \"{key}\" (every line needs id, prompt and category)")
            if not isinstance(row[key], str) or not row[key].strip():
                raise BenchmarkError(f"{where}: field \"{key}\" must be a non-empty string")
        item_id, prompt, category = row["id"].strip(), " ".join(row["prompt"].split()), row["category"].strip()
        if not _ID.match(item_id):
            raise BenchmarkError(
                f"{where}: id {item_id!r} may use only letters, digits, '.', '_' and '-' (it names a folder), "
                "start with a letter or digit, and be at most 128 characters"
            )
        if item_id in first_line:
            raise BenchmarkError(f"{where}: duplicate id {item_id!r} (first used on line {first_line[item_id]})")
        first_line[item_id] = n
        if category not in CATEGORIES:
            warnings.append(f"{where}: unknown category {category!r} (known: {', '.join(CATEGORIES)}); kept as its own group")
        key = prompt.lower()
        if key in prompts:
            warnings.append(f"{where}: prompt repeats line {prompts[key]}")
        prompts.setdefault(key, n)
        extra = sorted(set(row) - _KNOWN)
        if extra:
            warnings.append(f"{where}: unknown field(s) {', '.join(extra)} ignored")
        reference = None
        if row.get("reference") not in (None, ""):
            ref = row["reference"]
            if not isinstance(ref, str):
                raise BenchmarkError(f"{where}: \"reference\" must be a path string")
            reference = Path(ref).expanduser()
            if not reference.is_absolute():
                reference = (path.parent / reference).resolve()
            if reference.suffix.lower() not in MESH_SUFFIXES:
                raise BenchmarkError(f"{where}: reference '{ref}' is not a mesh file ({', '.join(MESH_SUFFIXES)})")
            if check_references and not reference.is_file():
                raise BenchmarkError(f"{where}: reference mesh '{ref}' not found at {reference} (paths are relative to the benchmark file)")
        metadata = row.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise BenchmarkError(f"{where}: \"metadata\" must be a JSON object")
        items.append(BenchmarkItem(item_id, prompt, category, reference, metadata, n))
    if not items:
        raise BenchmarkError(f"{path}: no prompts (expected one JSON object per line)")
    name = next((k for k, v in BUNDLED.items() if v == path), path.stem)
    return Benchmark(name, path, items, warnings)
