"""The demo data files: procedural splits, the family judge's references (the ``refs`` stage).

The splits are read without importing ``ar3d.procedural``, whose generators need trimesh and
manifold3d, so that the GPU stages run where only the core is installed.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .report import Report, log

RES = 64


def load_split(path: Path, limit: int | None = None):
    """(packed uint8 [N, R³/8], metadata list) of a procedural dataset file."""
    with np.load(path, allow_pickle=False) as z:
        packed = z["occupancy"]
        meta = [json.loads(x) for x in z["metadata"].tobytes().decode("utf-8").splitlines() if x.strip()]
        if int(z["resolution"]) != RES:
            raise ValueError(f"{path}: resolution {int(z['resolution'])}, the VQ-VAE needs {RES}")
    if limit:
        packed, meta = packed[:limit], meta[:limit]
    return packed, meta


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def stage_refs(args, report: Report | None = None) -> None:
    from ar3d.procedural.evaluate import build_references

    t = time.time()
    refs = build_references(per_family=args.refs_per_family, seed=args.refs_seed, workers=args.workers)
    np.savez_compressed(
        args.data / "refs.npz",
        families=np.asarray(refs.families, dtype=str),
        features=np.packbits(refs.features.astype(bool), axis=1),
        n_features=np.int64(refs.features.shape[1]),
    )
    log(f"refs: {len(refs.families)} references ({args.refs_per_family}/family, seed {args.refs_seed}) "
        f"in {time.time() - t:.0f}s -> {args.data / 'refs.npz'}")  # fmt: skip


def load_refs(path: Path):
    from ar3d.core.rewards.procedural import load_references

    return load_references(path)
