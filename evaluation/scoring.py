"""Stage 2 of a prompt: its renders → features, CLIP score, rewards, geometry → ``record.json``.

The record is written last (atomically): a prompt with a record is done and skipped by reruns.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from .benchmark import BenchmarkItem
from .config import EvalConfig
from .features import EXTRACTORS
from .files import RECORD, save_npz, write_json
from .generation import load_occupancy


def geometry_stats(mesh, occupancy: np.ndarray | None) -> dict:
    """Watertight, connected components, volume fraction (solid volume / cube of the longest
    side, i.e. of the bounding cube the renderer normalises to; None if not watertight),
    faces, vertices, and the decoded grid's occupied fraction."""
    extent = float(np.max(mesh.extents)) if len(mesh.vertices) else 0.0
    watertight = bool(mesh.is_watertight)
    volume_fraction = float(abs(mesh.volume) / extent**3) if watertight and extent > 0 else None
    return {
        "watertight": watertight,
        "components": int(mesh.body_count),
        "volume_fraction": volume_fraction,
        "faces": int(len(mesh.faces)),
        "vertices": int(len(mesh.vertices)),
        "occupancy_fraction": None if occupancy is None else float(np.asarray(occupancy).mean()),
    }


def image_features(features, images: np.ndarray, names=EXTRACTORS) -> dict[str, np.ndarray]:
    feats = {}
    for name in names:
        ext = features.get(name)
        if ext is not None:
            feats[name] = ext.image_features(images)
    return feats


def score_batch(items: list[BenchmarkItem], gens: dict[str, dict], jobs: dict, *, config: EvalConfig, features,
                ensemble, needs: set[str], item_dir: Callable[[BenchmarkItem], Path],
                on_record: Callable[[], None]) -> None:  # fmt: skip
    """Score a batch whose renders are in ``jobs`` ((id, sample, "eval" | "reward") → JobResult)
    and write each prompt's features and record; ``on_record()`` after each record."""
    from ..core.mesh import load_mesh
    from .metrics import clip_score

    c = config
    rows = []  # (item, sample entry, eval views, reward views, mesh, occupancy)
    for item in items:
        occ = load_occupancy(item_dir(item))
        for s in gens[item.id]["samples"]:
            i = s["index"]
            if s["mesh"] is None:
                rows.append((item, s, None, None, None, None if occ is None else occ[i]))
                continue
            views = jobs[(item.id, i, "eval")].result
            reward_views = jobs[(item.id, i, "reward")].result if (item.id, i, "reward") in jobs else None
            mesh = load_mesh(item_dir(item) / s["mesh"])
            rows.append((item, s, views, reward_views, mesh, None if occ is None else occ[i]))
    # features of every view of the batch in one pass per extractor
    with_views = [r for r in rows if r[2] is not None]
    feats: dict[str, list[np.ndarray]] = {}
    if with_views:
        counts = [len(r[2]) for r in with_views]
        all_feats = image_features(features, np.concatenate([r[2] for r in with_views]))
        splits = np.cumsum(counts)[:-1]
        feats = {name: np.split(f, splits) for name, f in all_feats.items()}
    text = {}
    if features.clip is not None:
        prompts = sorted({it.prompt for it in items})
        text = dict(zip(prompts, features.clip.text_features(prompts)))
    rewards = reward_entries(rows, ensemble, c.two_step, needs)
    per_item: dict[str, dict] = {it.id: {"samples": [], "features": {}} for it in items}
    k = 0
    for n, (item, s, views, _, mesh, occ) in enumerate(rows):
        i = s["index"]
        entry = {"index": i, "mesh": s["mesh"], "error": s["error"], "plans": s["plans"], "views": None,
                 "clip_score": None, "clip_per_view": None, "reward": rewards[n],
                 "geometry": None if mesh is None else geometry_stats(mesh, occ)}  # fmt: skip
        if views is not None:
            entry["views"] = f"sample_{i}"
            for name, parts in feats.items():
                per_item[item.id]["features"][f"{name}_{i}"] = parts[k]
            if "clip" in feats:
                entry["clip_score"], entry["clip_per_view"] = clip_score(feats["clip"][k], text[item.prompt])
            k += 1
        per_item[item.id]["samples"].append(entry)
    for item in items:
        d = item_dir(item)
        got = per_item[item.id]
        save_npz(d / "features.npz", **got["features"])
        gen = gens[item.id]
        record = {
            "id": item.id, "prompt": item.prompt, "category": item.category, "seed": gen["seed"],
            "batch": gen["batch"], "two_step": c.two_step, "reference": None if item.reference is None else str(item.reference),
            "features": sorted({key.rsplit("_", 1)[0] for key in got["features"]}),
            "samples": got["samples"], "timings": gen.get("timings", {}), "time": time.time(),
        }  # fmt: skip
        write_json(d / RECORD, record)
        on_record()


def reward_entries(rows, ensemble, two_step: bool, needs: set[str]) -> list[dict | None]:
    """Each row's reward: total, missing and every term's value and contribution."""
    if ensemble is None or not rows:
        return [None] * len(rows)
    from ..core.rewards import RewardBatch

    step = 2 if two_step else 1
    batch = RewardBatch(
        prompts=[r[0].prompt for r in rows],
        plans=[(r[1]["plans"] or [""])[-1] for r in rows],
        step1_plans=[(r[1]["plans"] or [""])[0] for r in rows],
        views=[r[3] for r in rows] if "views" in needs else None,
        meshes=[r[4] for r in rows],
        occupancy=[r[5] for r in rows],
        metadata=[r[0].metadata for r in rows],
        step=step,
    )
    scores = ensemble.score(batch)
    out = []
    for n in range(len(rows)):
        terms = {name: {"value": sc[n].value, "contribution": scores.contributions[name][n], "missing": sc[n].missing}
                 for name, sc in scores.terms.items()}  # fmt: skip
        out.append({"step": step, "total": scores.total[n], "missing": scores.missing[n], "terms": terms})
    return out
