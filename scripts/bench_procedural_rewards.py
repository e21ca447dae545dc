"""The demo's strict reward ensemble (procedural.family + attributes_strict + 0.5 quality + 0.25
fill, as ``rl_demo.sh REWARDS=strict`` trains with) on one Hi-GRPO step's worth of grids,
scored in the calling process next to ``rewards.workers`` worker processes, in one run.

Grids: the first N held-out test grids encoded and decoded by the model's VQ-VAE (CPU), so that
they carry the leaks and through-holes that generated grids have, which the quality reward
meshes and measures; the same batch is scored both ways and the scores are checked equal.

    python scripts/bench_procedural_rewards.py --data data/demo --n 128 --workers 1 2 8 --out rewards.json

``--scipy-baseline`` also scores the batch in the calling process as ``ar3d.core.mesh`` did
before 2026-12-07: closings, dilation and hole fill by scipy's binary_closing / binary_dilation /
binary_fill_holes, and no reuse of a grid's solid between rewards; it checks the scores are
identical and reports the speed ratio.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

from ar3d.core import threads  # noqa: F401  before torch: OpenMP reads its wait policy when torch loads
import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/demo"), help="folder with test.npz and refs.npz")
    ap.add_argument("--model", type=Path, default=Path("models/demo"), help="folder with vqvae.safetensors")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--scipy-baseline", action="store_true", help="also time the meshing with scipy's morphology")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from ar3d.core.rewards import RewardBatch, RewardConfig, RewardEnsemble, TermConfig
    from ar3d.core.vqvae import load_vqvae
    from ar3d.procedural.dataset import read_dataset, unpack_occupancy

    ds = read_dataset(args.data / "test.npz")
    n = min(args.n, len(ds))
    vq = load_vqvae(args.model / "vqvae.safetensors", device=torch.device("cpu"))
    with torch.no_grad():
        gt = torch.from_numpy(unpack_occupancy(ds.packed[:n]))
        grids = list(vq.decode_occupancy(vq.encode(gt), batch_size=32)[:, 0].numpy())
    meta = [{"family": m["family"], "attributes": m["attributes"]} for m in ds.meta[:n]]
    batch = RewardBatch([m["caption"] for m in ds.meta[:n]], occupancy=grids, metadata=meta, step=2)
    terms = [TermConfig("procedural.family", options={"references": str(args.data / "refs.npz")}),
             TermConfig("procedural.attributes_strict"), TermConfig("procedural.quality", weight=0.5),
             TermConfig("geometry.fill", weight=0.25)]  # fmt: skip

    results, first = [], None
    for w in args.workers:
        with RewardEnsemble(RewardConfig(step1=terms, step2=terms, workers=w)) as ensemble:
            ensemble.score(RewardBatch(batch.prompts[:16], occupancy=grids[:16], metadata=meta[:16], step=2))  # start workers
            t = time.perf_counter()
            scores = ensemble.score(batch)
            secs = time.perf_counter() - t
        if first is None:
            first = scores.total
        same = scores.total == first
        results.append({"workers": w, "seconds": round(secs, 3), "ms_per_grid": round(1000 * secs / n, 1), "same_scores": same})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    if args.scipy_baseline:
        results.append(_scipy_baseline(terms, batch, grids, meta, first))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    base = results[0]["seconds"]
    for r in results:
        r["speedup_vs_first"] = round(base / r["seconds"], 2)
    report = {"date": _dt.date.today().isoformat(), "machine": {"cpu": platform.processor() or platform.machine(),
              "cpu_threads": os.cpu_count()}, "n": n, "results": results}  # fmt: skip
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if all(r["same_scores"] for r in results) else 1


def _scipy_baseline(terms, batch, grids, meta, first) -> dict:
    """The same in-process scoring with scipy's morphology swapped into ar3d.core.mesh."""
    from scipy import ndimage

    from ar3d.core import mesh
    from ar3d.core.rewards import RewardBatch, RewardConfig, RewardEnsemble

    cube = np.ones((3, 3, 3), bool)
    fast = (mesh._cube_closing, mesh._cube_dilate, mesh._fill_holes, mesh._SOLIDS_KEPT)
    mesh._SOLIDS.clear()
    mesh._SOLIDS_KEPT = 0  # before: every reward meshed its own solid
    mesh._cube_closing = lambda a, k: ndimage.binary_closing(a, cube, k)
    mesh._cube_dilate = lambda a, k: ndimage.binary_dilation(a, cube, k)
    mesh._fill_holes = ndimage.binary_fill_holes
    try:
        with RewardEnsemble(RewardConfig(step1=terms, step2=terms, workers=1)) as ensemble:
            ensemble.score(RewardBatch(batch.prompts[:16], occupancy=grids[:16], metadata=meta[:16], step=2))
            t = time.perf_counter()
            scores = ensemble.score(batch)
            secs = time.perf_counter() - t
    finally:
        mesh._cube_closing, mesh._cube_dilate, mesh._fill_holes, mesh._SOLIDS_KEPT = fast
    return {"workers": 1, "morphology": "scipy (before)", "seconds": round(secs, 3),
            "ms_per_grid": round(1000 * secs / len(batch), 1), "same_scores": scores.total == first}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
