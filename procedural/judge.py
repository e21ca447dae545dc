"""Judge many generated grids against their prompts' metadata and score them: the held-out
evaluation of the demo model (``scripts/train_demo.py --stages eval``) and its benchmarks
(``scripts/bench_demo_quality.py``) share it so that their numbers mean the same thing.

Per grid, :func:`judge` reads the family (nearest procedural reference), the attributes (lenient
and strict checkers) and the mesh quality, in worker processes; :func:`score` turns that into
family, attribute, strict-attribute and quality rates.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..core.mesh import MeshConfig
from .evaluate import CHECKERS, check_attributes, classify_batch
from .quality import QualityConfig, assess
from .strict import STRICT_CHECKERS, check_attributes_strict

log = logging.getLogger(__name__)

_POOL_STATE: dict = {}


def _judge_chunk(job):
    """(families, IoU, attributes read, strict attributes read, quality) for a chunk of grids;
    runs in a worker process. Quality is judged before and after the delivered mesh's relative
    debris removal ("raw" / "delivered", see ar3d.procedural.quality)."""
    grids, fams, attrs_wanted = job
    pred, best = classify_batch(list(grids), _POOL_STATE["refs"])
    attrs, strict, quality = [], [], []
    delivered = QualityConfig(mesh=MeshConfig())
    for g, f, want in zip(grids, fams, attrs_wanted):
        try:
            attrs.append(check_attributes(f, g) if g.any() else None)
        except Exception:  # a degenerate grid the checker cannot read counts as wrong
            attrs.append(None)
        try:
            strict.append(check_attributes_strict(f, g))
        except Exception:
            strict.append(None)
        shown = strict[-1]  # a clean mesh with a wrong count is a count error, not a defect (quality.py)
        quality.append({"raw": assess(g, f, want, shown=shown).to_dict(),
                        "delivered": assess(g, f, want, delivered, shown=shown).to_dict()})
    return pred, best.tolist(), attrs, strict, quality


def judge(grids: np.ndarray, families: list[str], refs, workers: int, attributes: list[dict] | None = None,
          full: bool = False):  # fmt: skip
    """classify_batch + check_attributes (+ strict checkers and mesh quality) on many grids, in
    processes. Returns (families, IoU, attributes), or with ``full`` also (strict, quality)."""
    _POOL_STATE["refs"] = refs
    attributes = attributes if attributes is not None else [{} for _ in families]
    chunk = max(1, -(-len(grids) // max(1, workers * 2)))
    jobs = [(grids[i : i + chunk], families[i : i + chunk], attributes[i : i + chunk])
            for i in range(0, len(grids), chunk)]  # fmt: skip
    results = None
    if workers > 1:
        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                results = list(pool.map(_judge_chunk, jobs))
        except Exception as e:  # fall back to one process
            log.warning("eval: process pool failed (%s: %s); judging serially", type(e).__name__, e)
    if results is None:
        results = [_judge_chunk(j) for j in jobs]
    pred, best, attrs, strict, quality = [], [], [], [], []
    for p, b, a, st, q in results:
        pred += p
        best += b
        attrs += a
        strict += st
        quality += q
    if full:
        return pred, np.array(best), attrs, strict, quality
    return pred, np.array(best), attrs


def score(meta: list[dict], pred: list[str], attrs: list, strict: list | None = None,
          quality: list | None = None) -> dict:  # fmt: skip
    """Family and attribute accuracy; with ``strict`` and ``quality`` (from ``judge(full=True)``)
    also strict attribute accuracy and the share of meshes with unwanted holes or fragments."""
    fams = [m["family"] for m in meta]
    acc = float(np.mean([p == f for p, f in zip(pred, fams)]))
    per_family: dict = {}
    for p, f in zip(pred, fams):
        per_family.setdefault(f, []).append(p == f)
    per_attr: dict = {}
    for i, m in enumerate(meta):
        for k in CHECKERS.get(m["family"], {}):  # every checkable attribute; unreadable = wrong
            name = f"{m['family']}.{k}"
            got = (attrs[i] or {}).get(k, None)
            per_attr.setdefault(name, []).append(got == m["attributes"].get(k))
    novel = [m.get("novel_combo", False) for m in meta]
    out = {
        "n": len(meta),
        "family_accuracy": acc,
        "family_accuracy_novel_combos": float(np.mean([p == f for p, f, n in zip(pred, fams, novel) if n]))
        if any(novel) else None,
        "per_family": {f: round(float(np.mean(v)), 3) for f, v in sorted(per_family.items())},
        "attribute_accuracy_mean": float(np.mean([np.mean(v) for v in per_attr.values()])) if per_attr else None,
        "attribute_checks": int(sum(len(v) for v in per_attr.values())),
        "per_attribute": {k: round(float(np.mean(v)), 3) for k, v in sorted(per_attr.items())},
    }  # fmt: skip
    if strict is not None:
        per_strict: dict = {}
        for i, m in enumerate(meta):
            for k in STRICT_CHECKERS.get(m["family"], {}):  # unreadable (None) = wrong
                got = (strict[i] or {}).get(k, None)
                per_strict.setdefault(f"{m['family']}.{k}", []).append(got == m["attributes"].get(k))
        out["strict_attribute_accuracy_mean"] = float(np.mean([np.mean(v) for v in per_strict.values()])) if per_strict else None
        out["strict_per_attribute"] = {k: round(float(np.mean(v)), 3) for k, v in sorted(per_strict.items())}
    if quality is not None:
        out["quality"] = {}
        for which in ("raw", "delivered"):
            qs = [q[which] for q in quality]
            share = lambda cond: round(float(np.mean([cond(q) for q in qs])), 4)  # noqa: E731
            out["quality"][which] = {
                "defective": share(lambda q: not q["clean"]),
                # the tables' measure up to demo v4's release: topology against the prompt alone
                "defective_vs_prompt": share(lambda q: not q["prompted_clean"]),
                "unwanted_holes": share(lambda q: q["unwanted_holes"] > 0),
                "fragments": share(lambda q: q["fragments"] > 0),
                "perforated": share(lambda q: q["perforated"]),
                "missing_holes": share(lambda q: q["missing_holes"] > 0),
                "empty": share(lambda q: q["empty"]),
                "score_mean": round(float(np.mean([q["score"] for q in qs])), 4),
            }
        # where the defects are: the delivered meshes' defect share per prompted family
        per_family_defects: dict = {}
        for m, q in zip(meta, quality):
            per_family_defects.setdefault(m["family"], []).append(not q["delivered"]["clean"])
        out["defective_per_family"] = {f: round(float(np.mean(v)), 3) for f, v in sorted(per_family_defects.items())}
    return out


def conditional_accuracy(meta: list[dict], attrs: list, gt_attrs: list) -> float | None:
    """Attribute accuracy counted only where the checker reads the ground truth right, so that a
    checker's own misreadings do not count against the model."""
    hits = []
    for m, a, g in zip(meta, attrs, gt_attrs):
        for k, v in (g or {}).items():
            if v == m["attributes"].get(k):
                hits.append((a or {}).get(k) == v)
    return float(np.mean(hits)) if hits else None


def _row_strict(m: dict, strict_row: dict | None) -> float | None:
    keys = list(STRICT_CHECKERS.get(m["family"], {}))
    if not keys:
        return None
    return float(np.mean([(strict_row or {}).get(k) == m["attributes"].get(k) for k in keys]))


def plan_agreement(meta: list[dict], plans: list[str], strict: list | None = None) -> dict:
    """How often the policy's plan says what the prompt asked, read back by
    :func:`ar3d.procedural.read_caption.read_attributes`: right = it names no other family and
    every attribute it states is the wanted value. With ``strict`` (``judge(full=True)``) also
    the meshes' strict accuracy where the plan is right and where it is wrong.

    Why: it splits a wrong mesh into a prompt the model misread (a wording failure: the plan is
    wrong) and a right plan drawn wrong (a composition failure: the mesh does not follow it)."""
    from .read_caption import read_attributes, read_family

    rows = []
    for m, plan in zip(meta, plans):
        named = read_family(plan or "")
        got = read_attributes(m["family"], plan or "")
        right = (named is None or named == m["family"]) and all(got[k] == v for k, v in m["attributes"].items() if k in got)
        stated = sum(k in got for k in m["attributes"]) / max(1, len(m["attributes"]))
        rows.append((bool(m.get("novel_combo", False)), right, stated))

    def summary(keep) -> dict:
        sel = [i for i, r in enumerate(rows) if keep(r)]
        out = {"n": len(sel)}
        if not sel:
            return out
        out["plan_right"] = round(float(np.mean([rows[i][1] for i in sel])), 4)
        out["attributes_stated"] = round(float(np.mean([rows[i][2] for i in sel])), 4)
        if strict is not None:
            for label, want in (("strict_where_plan_right", True), ("strict_where_plan_wrong", False)):
                vals = [v for i in sel if rows[i][1] == want and (v := _row_strict(meta[i], strict[i])) is not None]
                out[label] = round(float(np.mean(vals)), 4) if vals else None
        return out

    return {"all": summary(lambda r: True), "novel_combos": summary(lambda r: r[0]),
            "seen_combos": summary(lambda r: not r[0])}  # fmt: skip
