"""The reports' plots (matplotlib, the ``eval`` extra): each returns False when it cannot draw,
so a report without matplotlib or without values says so instead of failing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .benchmark import CATEGORIES


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        return None


NO_PLOTS = "Plots need matplotlib: `pip install 'ar3d[eval]'`."


def box_plot(path: Path, runs: list[tuple[str, dict[str, list[float]]]], title: str, ylabel: str) -> bool:
    """Distributions per category, one box per run side by side (one run: one box each)."""
    plt = pyplot()
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


def hist_plot(path: Path, runs: list[tuple[str, list[float]]], title: str, xlabel: str) -> bool:
    plt = pyplot()
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


def bar_plot(path: Path, runs: list[tuple[str, dict[str, dict]]], cats: list[str], title: str, ylabel: str) -> bool:
    """Per-category means with std error bars, the runs' bars side by side."""
    plt = pyplot()
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
