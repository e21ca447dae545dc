"""The report of an evaluation run (``report.md`` + ``report.html`` + ``summary.json``).

Contents: the run's settings and which metrics were available (or why not); per-category
tables (mean ± std over samples of CLIP score, reward, geometry statistics; prompts failed and
samples without a mesh); KD/FD against the references; distribution plots per category
(matplotlib, the ``eval`` extra; without it the report says so); render grids of the best and
worst samples by CLIP score (by reward when there is no CLIP score); the failures. Two runs side
by side: ``comparison_report``.
"""

from __future__ import annotations

from pathlib import Path

from .document import Doc
from .files import write_json
from .grids import labelled_rows, thumbs
from .plots import NO_PLOTS, box_plot, pyplot
from .run_reader import Run, load_run
from .summary import METRICS, category_name, extractor_notes, fmt_stat, kd_fd_rows, rank_key, summarize

ASSETS = "report"


def _settings_lines(run: Run) -> list[str]:
    s = run.settings
    b = s.get("benchmark", {})
    feats = s.get("features", {})
    lines = [
        f"model: `{s.get('model')}` (VQ-VAE `{s.get('vqvae')}`)",
        f"benchmark: `{b.get('name')}` ({b.get('prompts')} prompts, `{b.get('path')}`)",
        f"generation: {s.get('samples')} sample(s) per prompt, {'two-step (Hi-GRPO), refined mesh scored' if s.get('two_step') else 'one-step'}, "
        f"seed {s.get('seed')}, batch {s.get('batch_size')}, sampling {s.get('sampling')}",
        f"renders: `{s.get('views')}` at {s.get('resolution')}² with {s.get('engine')}",
        f"rewards: `{s.get('rewards')}`",
    ]
    for name, f in feats.items():
        sha = f" sha256 `{f['sha256'][:12]}…`" if f.get("sha256") else ""
        lines.append(f"{name}: " + (f"`{f['model']}`{sha}" if f.get("available") else f"not available — {f.get('reason')}"))
    lines.append(f"updated: {s.get('updated')}, ar3d {s.get('ar3d_version')}")
    return lines


METRIC_NOTES = [
    "CLIP ×100: per sample the mean over its views of max(100·cos(image, prompt), 0).",
    "KD ×100: unbiased MMD² with the kernel (x·y/d+1)³ between generated and reference views, mean ± std over random subsets.",
    "FD: Fréchet distance between Gaussians fitted to the generated and the reference view features (exact square root; eps·I only if it fails, as pytorch-fid).",
    "Features: `inception` is the FID Inception-v3 (TF 2015 graph and weights, as pytorch-fid, torchmetrics, clean-fid): "
    "comparable with published FID/KD_incep when its sha256 is the published file's; `inception_tv` is torchvision's ImageNet "
    "Inception-v3 (ar3d runs only); `dinov2` the DINOv2 CLS token.",
    "reward: the reward ensemble's total for the scored step; parts: connected components; volume frac.: solid volume / cube of the longest side (watertight meshes).",
]


def write_report(run_dir: str | Path, top_k: int = 4) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``summary.json`` of a run folder."""
    run = load_run(run_dir)
    summary = summarize(run)
    root = run.path
    assets = root / ASSETS
    assets.mkdir(exist_ok=True)
    write_json(root / "summary.json", summary)
    doc = Doc(root)
    doc.h(1, f"ar3d evaluation: {run.label}")
    done = summary["categories"]["all"]
    doc.p(f"{done['done']} of {done['prompts']} prompts evaluated, {done['failed']} failed, "
          f"{done['samples']} samples ({done['no_mesh']} without a mesh).")  # fmt: skip
    doc.bullets(_settings_lines(run))
    _category_table(doc, run, summary)
    doc.h(2, "KD and FD against the references")
    header, rows, reasons = kd_fd_rows(summary, ["all"] + run.categories())
    if rows:
        doc.table(header, rows)
    doc.bullets(extractor_notes(summary) + reasons)
    doc.h(2, "Distributions")
    plotted = False
    for key, title in (("clip", "CLIP score ×100"), ("reward", "reward")):
        get = dict((m[0], m[2]) for m in METRICS)[key]
        groups = {c: [v for v in (get(s) for s in run.samples(c)) if v is not None] for c in run.categories()}
        rel = f"{ASSETS}/{key}_by_category.png"
        if box_plot(root / rel, [(run.label, groups)], f"{title} by category", title):
            doc.img(rel, f"{title} per category ({run.label})")
            plotted = True
    if not plotted:
        doc.p(NO_PLOTS if pyplot() is None else "No values to plot.")
    _best_worst(doc, run, top_k)
    failure_section(doc, [(None, run)])
    doc.h(2, "How the numbers are computed")
    doc.bullets(METRIC_NOTES)
    paths = doc.write("report", f"ar3d evaluation: {run.label}")
    paths["summary"] = root / "summary.json"
    return paths


def _category_table(doc: Doc, run: Run, summary: dict) -> None:
    doc.h(2, "Per category")
    header = ["category", "prompts", "failed", "samples", "no mesh"] + [m[1] for m in METRICS]
    rows = []
    for cat in run.categories() + ["all"]:
        g = summary["categories"][cat]
        rows.append([category_name(cat), f"{g['done']}/{g['prompts']}", str(g["failed"]), str(g["samples"]), str(g["no_mesh"])]
                    + [fmt_stat(g[key], dec) for key, _, _, dec in METRICS])  # fmt: skip
    doc.table(header, rows)
    terms = sorted({t for g in summary["categories"].values() for t in g["reward_terms"]})
    if terms:
        doc.h(3, "Reward terms (raw values, mean ± std)")
        rows = [[category_name(cat)] + [fmt_stat(summary["categories"][cat]["reward_terms"].get(t), 3) for t in terms]
                for cat in run.categories() + ["all"]]  # fmt: skip
        doc.table(["category"] + terms, rows)


def _best_worst(doc: Doc, run: Run, top_k: int) -> None:
    what, key = rank_key(run)
    scored = [s for s in run.samples() if key(s) is not None and s.get("views")]
    doc.h(2, f"Best and worst samples by {what}")
    if not scored:
        doc.p(f"No rendered sample has a {what}.")
        return
    scored.sort(key=lambda s: key(s), reverse=True)
    k = max(1, min(top_k, len(scored) // 2 or 1))
    for name, chosen in (("best", scored[:k]), ("worst", scored[::-1][:k])):
        rows = [(f"{s['id']} #{s['index']}   {what} {key(s):.3f}   {s['prompt']}", [thumbs(run, s)]) for s in chosen]
        rel = f"{ASSETS}/{name}.png"
        if labelled_rows(rows, run.path / rel):
            doc.img(rel, f"the {len(chosen)} {name} samples by {what}")
            doc.table(["rank", "id", what, "category", "prompt"],
                      [[str(n + 1), s["id"], f"{key(s):.3f}", s["category"], s["prompt"]] for n, s in enumerate(chosen)])  # fmt: skip


def failure_section(doc: Doc, runs: list[tuple[str | None, Run]]) -> None:
    doc.h(2, "Failures")
    any_failure = False
    for label, run in runs:
        prefix = f"{label}: " if label else ""
        items = [f"{prefix}`{f['id']}` ({f.get('stage')}): {f.get('error')}" for f in run.failures]
        items += [f"{prefix}reference of `{f['id']}`: {f.get('error')}" for f in run.reference_failures]
        no_mesh = [f"{prefix}`{s['id']}` #{s['index']}: no mesh — {s.get('error')}" for s in run.samples() if s.get("mesh") is None]
        if items or no_mesh:
            any_failure = True
            doc.bullets(items + no_mesh)
    if not any_failure:
        doc.p("None: every selected prompt was generated, rendered and scored.")
    else:
        doc.p("Failed prompts are logged in `errors.jsonl` and retried by the next `ar3d eval` on the same folder.")
