"""The comparison of two run folders (``comparison.md`` / ``.html`` / ``.json``, Δ = B − A):
per-metric deltas, side-by-side bars and histograms, and grids of the prompts that gained and
lost the most between the two runs."""

from __future__ import annotations

import math
import time
from pathlib import Path

from .config import EvalError
from .document import Doc
from .features import KD_FEATURES, feature_mismatches
from .files import write_json
from .grids import labelled_rows, thumbs
from .metrics import mean_std
from .plots import NO_PLOTS, bar_plot, box_plot, hist_plot, pyplot
from .report import ASSETS, METRIC_NOTES, failure_section
from .run_reader import Run, load_run
from .summary import METRICS, category_name, extractor_cell, fd_cell, fmt_stat, kd_cell, rank_key, reward_total, summarize


def _delta(a: dict | None, b: dict | None, decimals: int) -> str:
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return "—"
    return f"{b['mean'] - a['mean']:+.{decimals}f}"


def write_comparison(run_a: str | Path, run_b: str | Path, out: str | Path, top_k: int = 4,
                     labels: tuple[str | None, str | None] = (None, None),
                     allow_feature_mismatch: bool = False) -> dict[str, Path]:  # fmt: skip
    """Write ``comparison.md`` / ``comparison.html`` / ``comparison.json`` into ``out`` for two
    run folders (B is compared against A: Δ = B − A).

    Runs whose KD/FD features differ (extractor or weights sha256) are refused; with
    ``allow_feature_mismatch`` the comparison is written with a warning and without those KD/FD."""
    a, b = load_run(run_a), load_run(run_b)
    mismatched = feature_mismatches(a.settings.get("features") or {}, b.settings.get("features") or {})
    if mismatched and not allow_feature_mismatch:
        raise EvalError(
            f"'{a.path}' and '{b.path}' computed their metrics with different features ({'; '.join(mismatched)}): "
            "their KD/FD/CLIP are not comparable. Rerun one with the other's weights (--inception-weights, "
            "--clip-checkpoint, --dinov2), or pass --allow-feature-mismatch to compare the rest without those."
        )
    skip = {m.split(":", 1)[0] for m in mismatched}
    if labels[0]:
        a.settings["label"] = labels[0]
    if labels[1]:
        b.settings["label"] = labels[1]
    if a.label == b.label:
        a.settings["label"], b.settings["label"] = f"A: {a.label}", f"B: {b.label}"
    out = Path(out)
    (out / ASSETS).mkdir(parents=True, exist_ok=True)
    sa, sb = summarize(a), summarize(b)
    cats = list(dict.fromkeys(a.categories() + b.categories()))
    doc = Doc(out)
    doc.h(1, f"ar3d evaluation: {b.label} vs {a.label}")
    doc.p(f"Δ = {b.label} − {a.label}. Runs: `{a.path}` and `{b.path}`.")
    differ = [k for k in ("benchmark", "samples", "two_step", "seed", "views", "resolution", "engine", "rewards", "sampling")
              if a.settings.get(k) != b.settings.get(k)]  # fmt: skip
    if differ:
        doc.p("**Settings differ** between the runs (" + ", ".join(differ) + "): the numbers are not strictly comparable.")
    if mismatched:
        doc.p("**Features differ** between the runs (" + "; ".join(mismatched) + "): their KD/FD are left out below"
              + ("; the CLIP scores come from different CLIP weights and their Δ means nothing." if "clip" in skip else "."))
    common = sorted(set(a.records) & set(b.records))
    doc.p(f"{len(common)} prompts were evaluated in both runs.")
    doc.h(2, "Overall")
    rows = []
    for key, title, _, dec in METRICS:
        ga, gb = sa["categories"]["all"][key], sb["categories"]["all"][key]
        rows.append([title, fmt_stat(ga, dec), fmt_stat(gb, dec), _delta(ga, gb, dec)])
    rows.append(["failed prompts", str(sa["categories"]["all"]["failed"]), str(sb["categories"]["all"]["failed"]),
                 f"{sb['categories']['all']['failed'] - sa['categories']['all']['failed']:+d}"])  # fmt: skip
    doc.table(["metric", a.label, b.label, "Δ"], rows)
    doc.h(2, "Per category")
    for key, title, _, dec in METRICS[:3]:
        rows = []
        for cat in cats + ["all"]:
            ga, gb = sa["categories"].get(cat, {}).get(key), sb["categories"].get(cat, {}).get(key)
            rows.append([category_name(cat), fmt_stat(ga, dec), fmt_stat(gb, dec), _delta(ga, gb, dec)])
        doc.h(3, title)
        doc.table(["category", a.label, b.label, "Δ"], rows)
    doc.h(2, "KD and FD against the references")
    rows, reasons = [], []
    for name in KD_FEATURES:
        if name in skip:
            reasons.append(f"{name}: the runs used different features")
            continue
        for key in ["all"] + cats:
            ka, kb = sa["kd"].get(name, {}).get(key), sb["kd"].get(name, {}).get(key)
            fa, fb = sa["fd"].get(name, {}).get(key), sb["fd"].get(name, {}).get(key)
            if (ka and "mean" in ka) or (kb and "mean" in kb):
                rows.append([name, category_name(key), kd_cell(ka), kd_cell(kb), fd_cell(fa), fd_cell(fb), extractor_cell(ka or kb)])
        for label, s in ((a.label, sa), (b.label, sb)):
            if "reason" in s["kd"].get(name, {}):
                reasons.append(f"{label}, {name}: {s['kd'][name]['reason']}")
    if rows:
        doc.table(["feature", "group", f"KD×100 {a.label}", f"KD×100 {b.label}", f"FD {a.label}", f"FD {b.label}",
                   "extractor · sha256"], rows)  # fmt: skip
    doc.bullets([f"not available: {r}" for r in reasons])
    doc.h(2, "Side by side")
    plotted = False
    for key, title in (("clip", "CLIP score ×100"), ("reward", "reward")):
        get = dict((m[0], m[2]) for m in METRICS)[key]
        bars = [(r.label, {c: s["categories"].get(c, {}).get(key, {}) for c in cats + ["all"]}) for r, s in ((a, sa), (b, sb))]
        rel = f"{ASSETS}/compare_{key}_bars.png"
        if bar_plot(out / rel, bars, cats + ["all"], f"{title}: mean ± std per category", title):
            doc.img(rel, f"{title} per category, {a.label} and {b.label}")
            plotted = True
        rel = f"{ASSETS}/compare_{key}_hist.png"
        hists = [(r.label, [v for v in (get(s) for s in r.samples()) if v is not None]) for r in (a, b)]
        if hist_plot(out / rel, hists, f"{title}: distribution over samples", title):
            doc.img(rel, f"{title} distributions, {a.label} and {b.label}")
            plotted = True
        rel = f"{ASSETS}/compare_{key}_box.png"
        boxes = [(r.label, {c: [v for v in (get(s) for s in r.samples(c)) if v is not None] for c in cats}) for r in (a, b)]
        if box_plot(out / rel, boxes, f"{title} by category", title):
            doc.img(rel, f"{title} per category, {a.label} and {b.label} side by side")
            plotted = True
    if not plotted:
        doc.p(NO_PLOTS if pyplot() is None else "No values to plot.")
    _changed_prompts(doc, a, b, common, out, top_k)
    failure_section(doc, [(a.label, a), (b.label, b)])
    doc.h(2, "How the numbers are computed")
    doc.bullets(METRIC_NOTES)
    write_json(out / "comparison.json", {"a": sa, "b": sb, "runs": [str(a.path), str(b.path)], "common_prompts": common,
                                         "time": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    paths = doc.write("comparison", f"ar3d evaluation: {b.label} vs {a.label}")
    paths["summary"] = out / "comparison.json"
    return paths


def _changed_prompts(doc: Doc, a: Run, b: Run, common: list[str], out: Path, top_k: int) -> None:
    """Grids of the prompts whose score rose / fell most, the two runs' first samples side by side."""
    what_a, key = rank_key(a)
    what_b, _ = rank_key(b)
    what = what_a if what_a == what_b else "reward"
    if what != what_a:
        key = reward_total

    def prompt_mean(run: Run, item_id: str) -> float | None:
        m, _, n = mean_std([key(s) for s in run.records[item_id]["samples"]])
        return m if n else None

    deltas = []
    for item_id in common:
        ma, mb = prompt_mean(a, item_id), prompt_mean(b, item_id)
        if ma is not None and mb is not None and not math.isnan(mb - ma):
            deltas.append((mb - ma, item_id, ma, mb))
    doc.h(2, f"Prompts that changed most ({what}, mean over samples)")
    if not deltas:
        doc.p(f"No prompt has a {what} in both runs.")
        return
    deltas.sort(reverse=True)
    k = max(1, min(top_k, len(deltas) // 2 or 1))
    for name, chosen in (("gained", deltas[:k]), ("lost", deltas[::-1][:k])):
        rows = []
        for d, item_id, ma, mb in chosen:
            sa = _first_rendered(a, item_id)
            sb = _first_rendered(b, item_id)
            prompt = a.records[item_id]["prompt"]
            rows.append((f"{item_id}   {a.label} {ma:.3f} -> {b.label} {mb:.3f} ({d:+.3f})   {prompt}",
                         [None if sa is None else thumbs(a, sa), None if sb is None else thumbs(b, sb)]))  # fmt: skip
        rel = f"{ASSETS}/{name}.png"
        if labelled_rows(rows, out / rel):
            doc.img(rel, f"prompts that {name} most: {a.label} (left) and {b.label} (right)")
        doc.table(["id", a.label, b.label, "Δ", "prompt"],
                  [[i, f"{ma:.3f}", f"{mb:.3f}", f"{d:+.3f}", a.records[i]["prompt"]] for d, i, ma, mb in chosen])  # fmt: skip


def _first_rendered(run: Run, item_id: str) -> dict | None:
    item = next(i for i in run.items if i["id"] == item_id)
    for s in run.records[item_id]["samples"]:
        if s.get("views"):
            return dict(s, id=item_id, category=item["category"], prompt=item["prompt"])
    return None
