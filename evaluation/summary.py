"""A run's numbers per category (mean ± std of every per-sample metric, KD/FD) and their table cells."""

from __future__ import annotations

from typing import Any, Callable

from .benchmark import CATEGORIES
from .features import KD_FEATURES
from .metrics import mean_std
from .run_reader import Run


def reward_total(s):
    return s["reward"]["total"] if s.get("reward") else None


def _geo(key, scale=1.0):
    def get(s):
        g = s.get("geometry")
        v = None if g is None else g.get(key)
        return None if v is None else float(v) * scale

    return get


# (key, column title, per-sample getter, decimals)
METRICS: list[tuple[str, str, Callable[[dict], Any], int]] = [
    ("clip", "CLIP ×100", lambda s: s.get("clip_score"), 2),
    ("reward", "reward", reward_total, 3),
    ("watertight", "watertight %", _geo("watertight", 100.0), 0),
    ("components", "parts", _geo("components"), 2),
    ("volume_fraction", "volume frac.", _geo("volume_fraction"), 3),
    ("faces", "faces", _geo("faces"), 0),
]


def _stats(samples: list[dict]) -> dict[str, dict]:
    out = {}
    for key, _, get, _ in METRICS:
        m, sd, n = mean_std([get(s) for s in samples])
        out[key] = {"mean": m, "std": sd, "n": n}
    terms: dict[str, list] = {}
    for s in samples:
        for name, t in ((s.get("reward") or {}).get("terms") or {}).items():
            terms.setdefault(name, []).append(t.get("value"))
    out["reward_terms"] = {name: dict(zip(("mean", "std", "n"), mean_std(v))) for name, v in terms.items()}
    return out


def summarize(run: Run) -> dict:
    """Per category and overall: counts and mean/std/n of every per-sample metric."""
    groups = {}
    for cat in run.categories() + [None]:
        items = [i for i in run.items if cat is None or i["category"] == cat]
        samples = run.samples(cat)
        failed = [f for f in run.failures if cat is None or _category_of(run, f["id"]) == cat]
        groups["all" if cat is None else cat] = {
            "prompts": len(items),
            "done": sum(i["id"] in run.records for i in items),
            "failed": len(failed),
            "samples": len(samples),
            "no_mesh": sum(1 for s in samples if s.get("mesh") is None),
            **_stats(samples),
        }
    return {"label": run.label, "categories": groups, "kd": run.metrics.get("kd", {}), "fd": run.metrics.get("fd", {})}


def _category_of(run: Run, item_id: str) -> str | None:
    return next((i["category"] for i in run.items if i["id"] == item_id), None)


def fmt_stat(stat: dict | None, decimals: int, std: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    m = f"{stat['mean']:.{decimals}f}"
    if std and stat.get("std") is not None and stat.get("n", 0) > 1:
        m += f" ± {stat['std']:.{decimals}f}"
    return m


def category_name(cat: str) -> str:
    return CATEGORIES.get(cat, cat) if cat != "all" else "**all**"


def kd_cell(entry: dict | None) -> str:
    if not entry:
        return "—"
    if "mean" in entry:
        return f"{100 * entry['mean']:.3f} ± {100 * entry['std']:.3f}"
    return "n/a"


def fd_cell(entry: dict | None) -> str:
    if not entry:
        return "—"
    return f"{entry['value']:.2f}" if "value" in entry else "n/a"


def extractor_cell(entry: dict | None) -> str:
    """The features a KD/FD came from: extractor and the start of its weights' sha256."""
    ident = (entry or {}).get("extractor")
    if not ident:
        return "—"
    sha = ident.get("sha256")
    return f"{ident.get('extractor')} · {sha[:12] if sha else 'in-memory weights'}"


def extractor_notes(summary: dict) -> list[str]:
    """One line per feature with KD/FD values: its weights file, full sha256, and whether those
    are the published weights (only then is it comparable with published numbers)."""
    notes = []
    for name in KD_FEATURES:
        ident = next((e["extractor"] for e in summary["kd"].get(name, {}).values() if isinstance(e, dict) and e.get("extractor")), None)
        if not ident:
            continue
        ref = ident.get("reference_weights")
        verdict = {True: "the published weights", False: "NOT the published weights: compare only with runs of the same sha256",
                   None: "weights without a known reference"}[ref]  # fmt: skip
        if name == "inception_tv":
            verdict += "; torchvision's ImageNet network, not the FID Inception: not comparable with published FID/KD"
        notes.append(f"{name}: {ident.get('extractor')}, `{ident.get('weights')}`, sha256 `{ident.get('sha256')}` ({verdict})")
    return notes


def kd_fd_rows(summary: dict, keys: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """Rows of the KD/FD table, and notes: why an entry has no value, or a caveat on its value."""
    header = ["feature", "group", "KD ×100 (mean ± std)", "FD", "views gen / ref", "KD subset", "extractor · sha256"]
    rows, reasons = [], []
    for name in KD_FEATURES:
        kd, fd = summary["kd"].get(name, {}), summary["fd"].get(name, {})
        if "reason" in kd:
            reasons.append(f"{name}: not available — {kd['reason']}")
            continue
        for key in keys:
            k, f = kd.get(key), fd.get(key)
            if k is None:
                continue
            if "reason" in k:
                reasons.append(f"{name} / {key}: not available — {k['reason']}")
                continue
            rows.append([name, category_name(key), kd_cell(k), fd_cell(f), f"{k['n_a']} / {k['n_b']}", str(k["subset_size"]),
                         extractor_cell(k)])  # fmt: skip
            if f and f.get("note"):
                reasons.append(f"{name} / {key}: {f['note']}")
    return header, rows, reasons


def rank_key(run: Run) -> tuple[str, Callable[[dict], float | None]]:
    samples = run.samples()
    if any(s.get("clip_score") is not None for s in samples):
        return "CLIP score", lambda s: s.get("clip_score")
    return "reward", reward_total
