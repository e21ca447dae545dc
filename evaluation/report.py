"""Reports of an evaluation run (``report.md`` + ``report.html``) and of two runs side by side.

A report is built once as a list of blocks (headings, paragraphs, tables, images) and written
twice: Markdown with the images as relative PNG paths under ``report/``, and a self-contained
HTML page with the same images inline (base64), so it can be mailed or attached as it is.

Contents: the run's settings and which metrics were available (or why not); per-category
tables (mean ± std over samples of CLIP score, reward, geometry statistics; prompts failed and
samples without a mesh); KD/FD against the references; distribution plots per category
(matplotlib, the ``eval`` extra; without it the report says so); render grids of the best and
worst samples by CLIP score (by reward when there is no CLIP score); the failures. The
comparison adds per-metric deltas, side-by-side bars and histograms, and grids of the prompts
that gained and lost the most between the two runs.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .benchmark import CATEGORIES
from .features import KD_FEATURES, feature_mismatches
from .metrics import mean_std
from .runner import ERROR_LOG, METRICS_FILE, RECORD, SETTINGS_FILE, load_views, read_json, write_json

ASSETS = "report"
THUMB = 128  # px per view in the report's grids


# ---------------------------------------------------------------------------------------------
# reading a run


@dataclass
class Run:
    path: Path
    settings: dict
    items: list[dict]  # the selected benchmark prompts: id, prompt, category, reference
    records: dict[str, dict]
    metrics: dict
    failures: list[dict]  # unresolved: the last error of each prompt that has no record
    reference_failures: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(self.settings.get("label") or self.path.name)

    def categories(self) -> list[str]:
        return list(dict.fromkeys(i["category"] for i in self.items))

    def samples(self, category: str | None = None) -> list[dict]:
        """Every sample of every done prompt, with its prompt's id/category/prompt attached."""
        out = []
        for item in self.items:
            rec = self.records.get(item["id"])
            if rec is None or (category is not None and item["category"] != category):
                continue
            for s in rec["samples"]:
                out.append(dict(s, id=item["id"], category=item["category"], prompt=item["prompt"]))
        return out


def load_run(path: str | Path) -> Run:
    path = Path(path)
    settings = read_json(path / SETTINGS_FILE)
    items = read_json(path / "benchmark.json")
    if settings is None or items is None:
        from .runner import EvalError

        raise EvalError(f"'{path}' is not an evaluation folder (no {SETTINGS_FILE}); run `ar3d eval --out {path}` first")
    records = {}
    for item in items:
        rec = read_json(path / "samples" / item["id"] / RECORD)
        if rec is not None and rec.get("prompt") == item["prompt"]:
            records[item["id"]] = rec
    last: dict[tuple[str, str], dict] = {}
    log = path / ERROR_LOG
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                e = json.loads(line)
                last[(e["id"], e.get("stage", ""))] = e
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    selected = {i["id"] for i in items}
    failures, ref_failures = {}, []
    for (item_id, stage), e in last.items():
        if item_id not in selected:
            continue
        if stage == "reference":
            if not (path / "references" / item_id / "features.npz").is_file():
                ref_failures.append(e)
        elif item_id not in records:
            if item_id not in failures or e.get("time", 0) >= failures[item_id].get("time", 0):
                failures[item_id] = e
    order = {i["id"]: n for n, i in enumerate(items)}
    fails = sorted(failures.values(), key=lambda e: order.get(e["id"], 0))
    return Run(path, settings, items, records, read_json(path / METRICS_FILE) or {}, fails, ref_failures)


# ---------------------------------------------------------------------------------------------
# numbers


def _reward(s):
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
    ("reward", "reward", _reward, 3),
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


def _fmt(stat: dict | None, decimals: int, std: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    m = f"{stat['mean']:.{decimals}f}"
    if std and stat.get("std") is not None and stat.get("n", 0) > 1:
        m += f" ± {stat['std']:.{decimals}f}"
    return m


def _cat_name(cat: str) -> str:
    return CATEGORIES.get(cat, cat) if cat != "all" else "**all**"


def _kd_cell(entry: dict | None) -> str:
    if not entry:
        return "—"
    if "mean" in entry:
        return f"{100 * entry['mean']:.3f} ± {100 * entry['std']:.3f}"
    return "n/a"


def _fd_cell(entry: dict | None) -> str:
    if not entry:
        return "—"
    return f"{entry['value']:.2f}" if "value" in entry else "n/a"


def _extractor_cell(entry: dict | None) -> str:
    """The features a KD/FD came from: extractor and the start of its weights' sha256."""
    ident = (entry or {}).get("extractor")
    if not ident:
        return "—"
    sha = ident.get("sha256")
    return f"{ident.get('extractor')} · {sha[:12] if sha else 'in-memory weights'}"


def _extractor_notes(summary: dict) -> list[str]:
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


def _kd_fd_rows(summary: dict, keys: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
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
            rows.append([name, _cat_name(key), _kd_cell(k), _fd_cell(f), f"{k['n_a']} / {k['n_b']}", str(k["subset_size"]),
                         _extractor_cell(k)])  # fmt: skip
            if f and f.get("note"):
                reasons.append(f"{name} / {key}: {f['note']}")
    return header, rows, reasons


# ---------------------------------------------------------------------------------------------
# documents


class Doc:
    """Blocks written as Markdown or as self-contained HTML."""

    def __init__(self, root: Path):
        self.root = root
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", _line(text)))

    def bullets(self, items: list[str]):
        if items:
            self.blocks.append(("ul", [_line(x) for x in items]))

    def table(self, header: list[str], rows: list[list[str]]):
        self.blocks.append(("table", [_line(h) for h in header], [[_line(c) for c in r] for r in rows]))

    def img(self, rel: str | None, alt: str):
        if rel:
            self.blocks.append(("img", rel, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "ul":
                out.append("\n".join(f"- {x}" for x in b[1]))
            elif b[0] == "table":
                cells = lambda r: "| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"  # noqa: E731
                out.append("\n".join([cells(b[1]), "|" + "---|" * len(b[1])] + [cells(r) for r in b[2]]))
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        def inline(text: str) -> str:  # **bold** and `code`, the only Markdown the blocks use
            t = html.escape(text)
            parts = t.split("**")
            t = "".join(f"<b>{x}</b>" if k % 2 else x for k, x in enumerate(parts))
            parts = t.split("`")
            return "".join(f"<code>{x}</code>" if k % 2 else x for k, x in enumerate(parts))

        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1]}>{inline(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                body.append(f"<p>{inline(b[1])}</p>")
            elif b[0] == "ul":
                body.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                head = "".join(f"<th>{inline(str(c))}</th>" for c in b[1])
                rows = "".join("<tr>" + "".join(_td(inline(str(c)), str(c)) for c in r) + "</tr>" for r in b[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif b[0] == "img":
                data = base64.b64encode((self.root / b[1]).read_bytes()).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b[2])}">'
                            f"<figcaption>{inline(b[2])}</figcaption></figure>")  # fmt: skip
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:right}td.t,th:first-child{text-align:left}th{background:#f3f3f3}"
            "img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:13px}code{background:#f3f3f3}"
        )
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip

    def write(self, stem: str, title: str) -> dict[str, Path]:
        md, page = self.root / f"{stem}.md", self.root / f"{stem}.html"
        _atomic_text(md, self.markdown())
        _atomic_text(page, self.html(title))
        return {"md": md, "html": page}


_NUMBER = re.compile(r"^[-+−]?[\d.,]+( ± [\d.,]+)?%?$|^[\d]+/[\d]+$|^—$")


def _td(html_text: str, raw: str) -> str:
    """Numbers right-aligned (they line up), text left-aligned."""
    return f"<td>{html_text}</td>" if _NUMBER.match(raw.strip()) else f'<td class="t">{html_text}</td>'


def _line(text) -> str:
    """One line: error messages may hold newlines, which would break a table row or a bullet."""
    return " ".join(str(text).split())


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# pictures


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        return None


NO_PLOTS = "Plots need matplotlib: `pip install 'ar3d[eval]'`."


def _box_plot(path: Path, runs: list[tuple[str, dict[str, list[float]]]], title: str, ylabel: str) -> bool:
    """Distributions per category, one box per run side by side (one run: one box each)."""
    plt = _pyplot()
    if plt is None:
        return False
    cats = list(dict.fromkeys(c for _, groups in runs for c in groups))
    if not any(v for _, groups in runs for v in groups.values()):
        return False
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cats) * len(runs)), 4), dpi=100)
    width = 0.8 / len(runs)
    colours = ["#4c72b0", "#dd8452", "#55a868"]
    for r, (label, groups) in enumerate(runs):
        pos = [c + (r - (len(runs) - 1) / 2) * width for c in range(len(cats))]
        data = [groups.get(c) or [np.nan] for c in cats]
        bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=True)
        for patch in bp["boxes"]:
            patch.set_facecolor(colours[r % len(colours)])
            patch.set_alpha(0.7)
        rng = np.random.default_rng(0)
        for x, values in zip(pos, data):  # the samples themselves: few per category in quick runs
            ax.scatter(x + rng.uniform(-width / 5, width / 5, len(values)), values, s=8, color="k", alpha=0.5, zorder=3)
        ax.plot([], [], color=colours[r % len(colours)], lw=8, alpha=0.7, label=label)
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([CATEGORIES.get(c, c) for c in cats], rotation=15, ha="right", fontsize=9)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(runs) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _hist_plot(path: Path, runs: list[tuple[str, list[float]]], title: str, xlabel: str) -> bool:
    plt = _pyplot()
    values = [v for _, vs in runs for v in vs]
    if plt is None or not values:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    lo, hi = min(values), max(values)
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 21)
    for label, vs in runs:
        ax.hist(vs, bins=bins, alpha=0.55, label=f"{label} (n={len(vs)})")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _bar_plot(path: Path, runs: list[tuple[str, dict[str, dict]]], cats: list[str], title: str, ylabel: str) -> bool:
    """Per-category means with std error bars, the runs' bars side by side."""
    plt = _pyplot()
    if plt is None or not any(st.get("mean") is not None for _, g in runs for st in g.values()):
        return False
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(cats) * len(runs)), 4), dpi=100)
    width = 0.8 / len(runs)
    for r, (label, groups) in enumerate(runs):
        means = [groups.get(c, {}).get("mean") for c in cats]
        stds = [groups.get(c, {}).get("std") or 0.0 for c in cats]
        x = [c + (r - (len(runs) - 1) / 2) * width for c in range(len(cats))]
        ax.bar(x, [np.nan if m is None else m for m in means], width, yerr=stds, capsize=3, label=label, alpha=0.85)
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([CATEGORIES.get(c, "all" if c == "all" else c) for c in cats], rotation=15, ha="right", fontsize=9)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _thumbs(run: Run, sample: dict) -> np.ndarray | None:
    """The sample's views on white, THUMB px each, tiled in one row (RGB uint8)."""
    from PIL import Image

    from ..core.rewards.base import to_rgb
    from ..headless.render_result import grid_image

    if not sample.get("views"):
        return None
    try:
        views = to_rgb(load_views(run.path / "samples" / sample["id"] / sample["views"]))
    except (OSError, FileNotFoundError):
        return None
    small = np.stack([np.asarray(Image.fromarray(v).resize((THUMB, THUMB), Image.LANCZOS)) for v in views])
    return grid_image(small, cols=len(small))


def _labelled_rows(rows: list[tuple[str, list[np.ndarray | None]]], path: Path) -> bool:
    """Stack rows of view strips (several strips per row, side by side) with a caption bar each."""
    from PIL import Image, ImageDraw, ImageFont

    rows = [(label, strips) for label, strips in rows if any(s is not None for s in strips)]
    if not rows:
        return False
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    gap, bar = 24, 20
    widths = [sum((s.shape[1] if s is not None else THUMB) for s in strips) + gap * (len(strips) - 1) for _, strips in rows]
    width = max(widths)
    height = sum(bar + THUMB + gap for _ in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for label, strips in rows:
        draw.text((4, y + 3), label[:200], fill=(20, 20, 20), font=font)
        x = 0
        for s in strips:
            if x > 0:  # a rule between the strips of two runs
                draw.line([(x - gap // 2, y + bar), (x - gap // 2, y + bar + THUMB)], fill=(180, 180, 180), width=2)
            if s is not None:
                canvas.paste(Image.fromarray(s), (x, y + bar))
                x += s.shape[1] + gap
            else:
                draw.text((x + 4, y + bar + THUMB // 2), "(no render)", fill=(150, 0, 0), font=font)
                x += THUMB + gap
        y += bar + THUMB + gap
    canvas.save(path, format="PNG", optimize=True)
    return True


def _rank_key(run: Run) -> tuple[str, Callable[[dict], float | None]]:
    samples = run.samples()
    if any(s.get("clip_score") is not None for s in samples):
        return "CLIP score", lambda s: s.get("clip_score")
    return "reward", _reward


# ---------------------------------------------------------------------------------------------
# the run report


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
    header, rows, reasons = _kd_fd_rows(summary, ["all"] + run.categories())
    if rows:
        doc.table(header, rows)
    doc.bullets(_extractor_notes(summary) + reasons)
    doc.h(2, "Distributions")
    plotted = False
    for key, title in (("clip", "CLIP score ×100"), ("reward", "reward")):
        get = dict((m[0], m[2]) for m in METRICS)[key]
        groups = {c: [v for v in (get(s) for s in run.samples(c)) if v is not None] for c in run.categories()}
        rel = f"{ASSETS}/{key}_by_category.png"
        if _box_plot(root / rel, [(run.label, groups)], f"{title} by category", title):
            doc.img(rel, f"{title} per category ({run.label})")
            plotted = True
    if not plotted:
        doc.p(NO_PLOTS if _pyplot() is None else "No values to plot.")
    _best_worst(doc, run, top_k)
    _failure_section(doc, [(None, run)])
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
        rows.append([_cat_name(cat), f"{g['done']}/{g['prompts']}", str(g["failed"]), str(g["samples"]), str(g["no_mesh"])]
                    + [_fmt(g[key], dec) for key, _, _, dec in METRICS])  # fmt: skip
    doc.table(header, rows)
    terms = sorted({t for g in summary["categories"].values() for t in g["reward_terms"]})
    if terms:
        doc.h(3, "Reward terms (raw values, mean ± std)")
        rows = [[_cat_name(cat)] + [_fmt(summary["categories"][cat]["reward_terms"].get(t), 3) for t in terms]
                for cat in run.categories() + ["all"]]  # fmt: skip
        doc.table(["category"] + terms, rows)


def _best_worst(doc: Doc, run: Run, top_k: int) -> None:
    what, key = _rank_key(run)
    scored = [s for s in run.samples() if key(s) is not None and s.get("views")]
    doc.h(2, f"Best and worst samples by {what}")
    if not scored:
        doc.p(f"No rendered sample has a {what}.")
        return
    scored.sort(key=lambda s: key(s), reverse=True)
    k = max(1, min(top_k, len(scored) // 2 or 1))
    for name, chosen in (("best", scored[:k]), ("worst", scored[::-1][:k])):
        rows = [(f"{s['id']} #{s['index']}   {what} {key(s):.3f}   {s['prompt']}", [_thumbs(run, s)]) for s in chosen]
        rel = f"{ASSETS}/{name}.png"
        if _labelled_rows(rows, run.path / rel):
            doc.img(rel, f"the {len(chosen)} {name} samples by {what}")
            doc.table(["rank", "id", what, "category", "prompt"],
                      [[str(n + 1), s["id"], f"{key(s):.3f}", s["category"], s["prompt"]] for n, s in enumerate(chosen)])  # fmt: skip


def _failure_section(doc: Doc, runs: list[tuple[str | None, Run]]) -> None:
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


# ---------------------------------------------------------------------------------------------
# the comparison


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
        from .runner import EvalError

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
        rows.append([title, _fmt(ga, dec), _fmt(gb, dec), _delta(ga, gb, dec)])
    rows.append(["failed prompts", str(sa["categories"]["all"]["failed"]), str(sb["categories"]["all"]["failed"]),
                 f"{sb['categories']['all']['failed'] - sa['categories']['all']['failed']:+d}"])  # fmt: skip
    doc.table(["metric", a.label, b.label, "Δ"], rows)
    doc.h(2, "Per category")
    for key, title, _, dec in METRICS[:3]:
        rows = []
        for cat in cats + ["all"]:
            ga, gb = sa["categories"].get(cat, {}).get(key), sb["categories"].get(cat, {}).get(key)
            rows.append([_cat_name(cat), _fmt(ga, dec), _fmt(gb, dec), _delta(ga, gb, dec)])
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
                rows.append([name, _cat_name(key), _kd_cell(ka), _kd_cell(kb), _fd_cell(fa), _fd_cell(fb), _extractor_cell(ka or kb)])
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
        if _bar_plot(out / rel, bars, cats + ["all"], f"{title}: mean ± std per category", title):
            doc.img(rel, f"{title} per category, {a.label} and {b.label}")
            plotted = True
        rel = f"{ASSETS}/compare_{key}_hist.png"
        hists = [(r.label, [v for v in (get(s) for s in r.samples()) if v is not None]) for r in (a, b)]
        if _hist_plot(out / rel, hists, f"{title}: distribution over samples", title):
            doc.img(rel, f"{title} distributions, {a.label} and {b.label}")
            plotted = True
        rel = f"{ASSETS}/compare_{key}_box.png"
        boxes = [(r.label, {c: [v for v in (get(s) for s in r.samples(c)) if v is not None] for c in cats}) for r in (a, b)]
        if _box_plot(out / rel, boxes, f"{title} by category", title):
            doc.img(rel, f"{title} per category, {a.label} and {b.label} side by side")
            plotted = True
    if not plotted:
        doc.p(NO_PLOTS if _pyplot() is None else "No values to plot.")
    _changed_prompts(doc, a, b, common, out, top_k)
    _failure_section(doc, [(a.label, a), (b.label, b)])
    doc.h(2, "How the numbers are computed")
    doc.bullets(METRIC_NOTES)
    write_json(out / "comparison.json", {"a": sa, "b": sb, "runs": [str(a.path), str(b.path)], "common_prompts": common,
                                         "time": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    paths = doc.write("comparison", f"ar3d evaluation: {b.label} vs {a.label}")
    paths["summary"] = out / "comparison.json"
    return paths


def _changed_prompts(doc: Doc, a: Run, b: Run, common: list[str], out: Path, top_k: int) -> None:
    """Grids of the prompts whose score rose / fell most, the two runs' first samples side by side."""
    what_a, key = _rank_key(a)
    what_b, _ = _rank_key(b)
    what = what_a if what_a == what_b else "reward"
    if what != what_a:
        key = _reward

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
                         [None if sa is None else _thumbs(a, sa), None if sb is None else _thumbs(b, sb)]))  # fmt: skip
        rel = f"{ASSETS}/{name}.png"
        if _labelled_rows(rows, out / rel):
            doc.img(rel, f"prompts that {name} most: {a.label} (left) and {b.label} (right)")
        doc.table(["id", a.label, b.label, "Δ", "prompt"],
                  [[i, f"{ma:.3f}", f"{mb:.3f}", f"{d:+.3f}", a.records[i]["prompt"]] for d, i, ma, mb in chosen])  # fmt: skip


def _first_rendered(run: Run, item_id: str) -> dict | None:
    item = next(i for i in run.items if i["id"] == item_id)
    for s in run.records[item_id]["samples"]:
        if s.get("views"):
            return dict(s, id=item_id, category=item["category"], prompt=item["prompt"])
    return None
