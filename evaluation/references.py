"""KD and FD of a run: the reference meshes rendered with the evaluation's views, and the
distances between their features and those of the generated views.

Prompts with a reference mesh are compared with it, rendered into ``OUT/references/<id>/``;
without references KD and FD are reported as not available. Every KD/FD entry names its
extractor and weights (sha256), so numbers from other weights are never mistaken for these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .benchmark import Benchmark, BenchmarkItem
from .components import job_result
from .config import EvalConfig
from .features import KD_FEATURES
from .files import RECORD, load_npz, read_json, save_npz
from .scoring import image_features


def render_references(items: list[BenchmarkItem], *, refs_dir: Path, pool, render_config, features,
                      fail: Callable[..., None], make_bar: Callable[..., Any]) -> None:  # fmt: skip
    """Render the references that lack features of a loaded KD extractor and save their features;
    a failure loses that reference only (``fail(id, "reference", error, tick=False)``)."""
    wanted = {n for n in KD_FEATURES if features.get(n) is not None}
    todo = [i for i in items if not wanted <= set(load_npz(refs_dir / i.id / "features.npz") or {})]
    if not todo:
        return
    refs_dir.mkdir(parents=True, exist_ok=True)
    bar = make_bar(len(todo), "references", "mesh")
    futures = {
        i.id: pool.submit(str(i.reference), render_config,
                          then=("ar3d.evaluation._jobs:write_views", (str(refs_dir), i.id, str(i.reference))))
        for i in todo
    }  # fmt: skip
    for item in todo:
        job = job_result(futures[item.id])
        if not job.ok:
            fail(item.id, "reference", f"reference mesh {item.reference}: {job.error}", tick=False)
        else:
            try:
                feats = image_features(features, job.result, KD_FEATURES)
                save_npz(refs_dir / item.id / "features.npz", **feats)
            except Exception as e:  # a feature failure loses this reference only
                fail(item.id, "reference", f"{type(e).__name__}: {e}", tick=False)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def dataset_metrics(bench: Benchmark, *, config: EvalConfig, features, samples_dir: Path, refs_dir: Path) -> dict:
    """KD and FD of the generated views against the reference renders, overall and per
    category; every entry either has values or says why it has none."""
    from .metrics import frechet_distance, kernel_distance

    c = config
    result: dict[str, Any] = {"features": features.describe() if features else {}, "kd": {}, "fd": {}}
    refs = [i for i in bench.items if i.reference is not None]
    for name in KD_FEATURES:
        if not refs:
            reason = "the benchmark gives no reference meshes (add \"reference\" paths to compute KD and FD)"
            result["kd"][name] = result["fd"][name] = {"reason": reason}
            continue
        if features is None or features.get(name) is None:
            reason = f"{name} features unavailable: " + (features.unavailable.get(name, "") if features else "not loaded")
            result["kd"][name] = result["fd"][name] = {"reason": reason}
            continue
        groups: dict[str, tuple[list, list]] = {}
        for item in refs:
            ref = load_npz(refs_dir / item.id / "features.npz")
            rec = read_json(samples_dir / item.id / RECORD)
            gen = load_npz(samples_dir / item.id / "features.npz")
            if ref is None or name not in ref or rec is None or gen is None:
                continue
            gen_feats = [gen[k] for k in sorted(gen) if k.rsplit("_", 1)[0] == name]
            for key in ("all", item.category):
                g, r = groups.setdefault(key, ([], []))
                g.extend(gen_feats)
                r.append(ref[name])
        kd, fd = {}, {}
        ident = {"extractor": features.identity(name)}  # which features: architecture, weights, sha256
        for key in ["all"] + [k for k in bench.categories() if k in groups]:
            g, r = groups.get(key, ([], []))
            a = np.concatenate(g) if g else np.zeros((0, 1))
            b = np.concatenate(r) if r else np.zeros((0, 1))
            if len(a) < 2 or len(b) < 2:
                why = f"needs at least 2 generated and 2 reference views, has {len(a)} and {len(b)}"
                kd[key] = fd[key] = {"reason": why, "n_generated": len(a), "n_reference": len(b)}
                continue
            kd[key] = {**kernel_distance(a, b, c.kd_subsets, c.kd_subset_size, seed=c.seed).to_dict(), **ident}
            note = None
            if min(len(a), len(b)) <= a.shape[1]:
                note = (f"FD from {min(len(a), len(b))} views of {a.shape[1]}-d features (rank-deficient "
                        "covariances): compare such FDs only at equal view counts")
            fd[key] = {"value": frechet_distance(a, b), "n_generated": len(a), "n_reference": len(b), "note": note, **ident}
        result["kd"][name], result["fd"][name] = kd, fd
    return result
