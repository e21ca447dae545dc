"""Side-by-side table of demo-model evaluations (``training_report.json`` → ``eval``, written by
``scripts/train_demo.py --stages eval``): family, lenient and strict attribute accuracy and the
share of meshes with unwanted holes or fragments (delivered), per mode, one column per model.
With two or more models it adds each strict attribute's change from the first model, where a
z-score of two independent proportions says which changes are beyond noise.

    python scripts/demo_eval_table.py v1=runs/demo_v2/before v2-supervised=runs/demo_v2/supervised \\
        v2=runs/demo_v2/rl/policy [--markdown]
    python scripts/demo_eval_table.py v2=runs/demo_v2_rl/eval_before "v2, logits > -3=runs/demo_v2_rl/eval_before@-3"
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

MODES = (("one_step", "one-step"), ("two_step_coarse", "coarse (step 1)"), ("two_step_refined", "refined (step 2)"))
METRICS = (
    ("family", lambda r: r["family_accuracy"]),
    ("attributes (lenient)", lambda r: r["attribute_accuracy_mean"]),
    ("attributes (strict)", lambda r: r["strict_attribute_accuracy_mean"]),
    ("unwanted holes or fragments", lambda r: r["quality"]["delivered"]["defective"]),
    ("perforated", lambda r: r["quality"]["delivered"]["perforated"]),
)


def load(spec: str) -> tuple[str, dict]:
    """``[name=]path[@threshold]``: a report's evaluation, or its codes judged at another logit
    threshold (``--eval-thresholds``)."""
    name, _, path = spec.rpartition("=")
    path, _, threshold = path.partition("@")
    p = Path(path)
    p = p / "training_report.json" if p.is_dir() else p
    try:
        report = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: cannot read {p}: {e}")
    if "eval" not in report:
        raise SystemExit(f"error: {p} has no 'eval' section; run scripts/train_demo.py --stages eval --out {p.parent}")
    ev = report["eval"]
    if threshold:
        found = ev.get("thresholds", {})
        key = next((k for k in found if float(k) == float(threshold)), None) if _is_number(threshold) else None
        if key is None:
            raise SystemExit(f"error: {p} has no evaluation at threshold {threshold} (has: {', '.join(found) or 'none'}); "
                             f"run scripts/train_demo.py --stages eval --eval-thresholds {threshold}")  # fmt: skip
        ev = {**ev, **found[key]}
    default = f"{p.parent.name}@{threshold}" if threshold else p.parent.name
    return name or default, ev


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def z_score(p1: float, n1: int, p2: float, n2: int) -> float:
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(max(pooled * (1 - pooled) * (1 / n1 + 1 / n2), 1e-12))
    return (p2 - p1) / se


def _value(get, r) -> str:
    try:
        v = get(r)
    except (KeyError, TypeError):  # an older report without the strict or quality sections
        return "–"
    return "–" if v is None else f"{100 * v:.1f}%"


def table(models: list[tuple[str, dict]]) -> str:
    names = [n for n, _ in models]
    lines = ["| mode | metric | " + " | ".join(names) + " |", "| --- | --- |" + " ---: |" * len(names)]
    for key, label in MODES:
        lines.append(f"| {label} | n | " + " | ".join(str((ev.get(key) or {}).get("n", "–")) for _, ev in models) + " |")
        for metric, get in METRICS:
            cells = ["–" if ev.get(key) is None else _value(get, ev[key]) for _, ev in models]
            lines.append(f"| {label} | {metric} | " + " | ".join(cells) + " |")
    if len(models) > 1:
        base = models[0][1]
        def strict(r):
            return r.get("strict_attribute_accuracy_mean"), r.get("attribute_checks") or r["n"]

        lines.append("")
        lines.append(f"z of the strict attribute accuracy against {names[0]} (|z| > 2: beyond noise):")
        for name, ev in models[1:]:
            zs = []
            for key, label in MODES:
                if key in ev and key in base and strict(base[key])[0] is not None and strict(ev[key])[0] is not None:
                    zs.append(f"{label} {z_score(*strict(base[key]), *strict(ev[key])):+.1f}")
            lines.append(f"- {name}: " + (", ".join(zs) or "no strict numbers to compare"))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=FOLDER (or a training_report.json)")
    args = ap.parse_args(argv)
    print(table([load(m) for m in args.models]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
