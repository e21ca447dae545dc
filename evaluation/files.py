"""The files of an evaluation folder: their names, and reads and writes a crash cannot tear."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

ERROR_LOG = "errors.jsonl"
SETTINGS_FILE = "eval.json"
METRICS_FILE = "metrics.json"
RECORD = "record.json"
GENERATION = "generation.json"


def write_json(path: Path, data: Any) -> None:
    """Atomic: a reader never sees half a file, and a crash leaves the old one or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_npz(path: Path) -> dict | None:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None


def load_views(folder: Path) -> np.ndarray:
    """The ``view_*.png`` of a render folder as uint8 [V, H, W, 4]."""
    from PIL import Image

    files = sorted(folder.glob("view_*.png"))
    if not files:
        raise FileNotFoundError(f"no views in {folder}")
    return np.stack([np.asarray(Image.open(f).convert("RGBA")) for f in files])

