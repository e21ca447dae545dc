"""Procedural samples, dataset generation, and the dataset file.

A :class:`Sample` carries its family, parameters, discrete attributes, caption, the two
Hi-GRPO-style plans, and its 64³ surface-shell occupancy (bool, [x, y, z], z up). Sample ``i``
of ``(split, seed)`` is a pure function of those three numbers: its generator is
``numpy.random.default_rng([seed, split_code, i])`` and its family is ``families[i % F]``, so a
dataset is the same whatever the number of worker processes, and any sample can be regenerated
alone (``make_sample``).

File format (one ``.npz``, loadable with ``allow_pickle=False``):

* ``occupancy``: uint8 [N, R³/8], ``np.packbits`` of each C-order [R,R,R] bool grid
  (32768 bytes per 64³ sample in memory; the file is zlib-compressed: ~0.85 KB per sample on
  disk, metadata included);
* ``metadata``: uint8 bytes of UTF-8 JSONL, one JSON object per sample (family, split, index,
  seed, params, attributes, caption, template, novel_combo, plan1, plan2);
* ``resolution``: int, the grid side R.

:func:`write_dataset` also writes the JSONL next to it (``name.jsonl``) for people to read;
:func:`read_dataset` needs only the ``.npz``.
"""

from __future__ import annotations

import json
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .captions import DEFAULT_WORDING, check_wording, make_caption
from .families import FAMILIES, FAMILY_NAMES
from .geometry import canonical, voxelize
from .plans import make_plans

__all__ = [
    "Sample",
    "make_sample",
    "iter_samples",
    "generate_dataset",
    "write_dataset",
    "read_dataset",
    "ProceduralDataset",
    "pack_occupancy",
    "unpack_occupancy",
    "rebuild_mesh",
]

SPLIT_CODES = {"train": 0, "test": 1}
FORMAT_VERSION = 1


@dataclass
class Sample:
    family: str
    split: str
    index: int
    seed: int
    params: dict
    attributes: dict
    caption: str
    template: str
    novel_combo: bool  # attributes form a held-out combination (test split only)
    plan1: str
    plan2: str
    occupancy: np.ndarray | None = field(default=None, repr=False)

    def metadata(self) -> dict:
        d = asdict(self)
        d.pop("occupancy")
        return d

    def mesh(self):
        """The watertight mesh in the grid's frame (centred, longest side 1), rebuilt from params."""
        return rebuild_mesh(self.family, self.params)


def rebuild_mesh(family: str, params: dict):
    return canonical(FAMILIES[family].build(params).mesh())


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLIT_CODES[split], int(index)])


def make_sample(
    index: int,
    split: str = "train",
    seed: int = 0,
    families: Iterable[str] | None = None,
    voxels: bool = True,
    resolution: int = 64,
    method: str = "fast",
    wording: str = DEFAULT_WORDING,
) -> Sample:
    """Sample ``index`` of the (split, seed) stream; ``method`` picks the voxeliser
    (:func:`ar3d.procedural.geometry.voxelize`: "fast", "exact" or "reference"), ``wording`` the
    caption wording ("v2"; "v1": the shipped demo model's data, byte for byte). The wording
    changes only the caption and the plans' draws, never the shape."""
    check_wording(wording)
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = tuple(families) if families is not None else FAMILY_NAMES
    name = names[index % len(names)]
    fam = FAMILIES[name]
    rng = _rng(seed, split, index)
    attrs = fam.sample_attributes(rng, split)
    params, shape = fam.sample_params(rng, attrs)
    lo, hi = shape.bounds()
    caption, tid = make_caption(name, attrs, rng, split, wording)
    plan1, plan2 = make_plans(name, params, float((hi - lo).max()), rng)
    occ = None
    if voxels:
        mesh = canonical(shape.mesh())
        occ = voxelize(mesh, resolution, method)
    return Sample(
        name, split, int(index), int(seed), params, attrs, caption, tid, fam.is_heldout(attrs), plan1, plan2, occ
    )


def _make_chunk(args) -> list[Sample]:
    start, stop, split, seed, families, voxels, resolution, method, wording = args
    return [make_sample(i, split, seed, families, voxels, resolution, method, wording) for i in range(start, stop)]


def iter_samples(
    n: int,
    split: str = "train",
    seed: int = 0,
    workers: int = 1,
    families: Iterable[str] | None = None,
    voxels: bool = True,
    resolution: int = 64,
    method: str = "fast",
    start: int = 0,
    chunk: int = 32,
    wording: str = DEFAULT_WORDING,
) -> Iterator[Sample]:
    """Samples ``start`` … ``start + n - 1`` of the (split, seed) stream, in order, made by
    ``workers`` processes (1: in this process)."""
    fams = tuple(families) if families is not None else None
    check_wording(wording)
    jobs = [
        (i, min(i + chunk, start + n), split, seed, fams, voxels, resolution, method, wording)
        for i in range(start, start + n, chunk)
    ]
    if workers <= 1:
        for job in jobs:
            yield from _make_chunk(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for batch in pool.map(_make_chunk, jobs):
            yield from batch


def generate_dataset(n: int, split: str = "train", seed: int = 0, workers: int = 1, **kwargs) -> list[Sample]:
    """A list of ``n`` samples (see :func:`iter_samples` for the arguments)."""
    return list(iter_samples(n, split, seed, workers, **kwargs))


def pack_occupancy(grid: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(grid, dtype=bool).reshape(-1))


def unpack_occupancy(packed: np.ndarray, resolution: int = 64) -> np.ndarray:
    """[..., R³/8] uint8 -> [..., R, R, R] bool."""
    packed = np.asarray(packed, dtype=np.uint8)
    bits = np.unpackbits(packed, axis=-1, count=resolution**3)
    return bits.reshape(packed.shape[:-1] + (resolution,) * 3).astype(bool)


def write_dataset(path, samples: Iterable[Sample], jsonl: bool = True) -> Path:
    """Write samples (with occupancy) to ``path`` (.npz); atomically, like the core's files."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    packed, lines, res = [], [], None
    for s in samples:
        if s.occupancy is None:
            raise ValueError(f"sample {s.split}/{s.index} has no occupancy; generate it with voxels=True")
        r = s.occupancy.shape[0]
        if res is None:
            res = r
        elif r != res:
            raise ValueError(f"mixed resolutions in one dataset: {res} and {r}")
        packed.append(pack_occupancy(s.occupancy))
        lines.append(json.dumps(s.metadata(), separators=(",", ":")))
    if not packed:
        raise ValueError("no samples to write")
    text = ("\n".join(lines) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part.npz")
    try:
        np.savez_compressed(
            tmp,
            occupancy=np.stack(packed),
            metadata=np.frombuffer(text, dtype=np.uint8),
            resolution=np.int64(res),
            version=np.int64(FORMAT_VERSION),
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if jsonl:
        side = path.with_suffix(".jsonl")
        tmp = side.with_name(f".{side.name}.{uuid.uuid4().hex[:8]}.part")
        tmp.write_bytes(text)
        os.replace(tmp, side)
    return path


class ProceduralDataset:
    """A dataset file in memory: packed grids plus metadata; items unpack on access.

    ``ds[i]`` is a dict of the sample's metadata with ``occupancy`` (bool [R,R,R]);
    ``ds.occupancy(idx)`` unpacks a batch, ``ds.samples()`` rebuilds :class:`Sample` objects.
    """

    def __init__(self, packed: np.ndarray, metadata: list[dict], resolution: int):
        if len(packed) != len(metadata):
            raise ValueError(f"{len(packed)} grids but {len(metadata)} metadata rows")
        self.packed = packed
        self.meta = metadata
        self.resolution = int(resolution)

    def __len__(self):
        return len(self.meta)

    def __getitem__(self, i):
        return {**self.meta[i], "occupancy": self.occupancy(i)}

    def occupancy(self, idx) -> np.ndarray:
        return unpack_occupancy(self.packed[idx], self.resolution)

    def samples(self) -> list[Sample]:
        return [Sample(**m, occupancy=self.occupancy(i)) for i, m in enumerate(self.meta)]


def read_dataset(path) -> ProceduralDataset:
    with np.load(Path(path), allow_pickle=False) as z:
        version = int(z["version"]) if "version" in z.files else FORMAT_VERSION
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: dataset format version {version}, this code reads {FORMAT_VERSION}")
        packed = z["occupancy"]
        text = z["metadata"].tobytes().decode("utf-8")
        res = int(z["resolution"])
    meta = [json.loads(line) for line in text.splitlines() if line.strip()]
    return ProceduralDataset(packed, meta, res)
