"""Pick the Hi-GRPO prompts of the demo model: training-split rows whose family has a count-like
attribute the reward can check (legs, steps, rungs, windows, tiers …).

Why: a group of G samples whose rewards all tie carries no GRPO signal and is dropped (dynamic
sampling). On the full training split ~60% of the groups tied in the first demo run: families
with no attribute checker (bottle, lamp, car …) and aspect-ratio classes the supervised model
already gets right score 1 for every sample. The counts are where the model is wrong (held-out
accuracy 20–70%) and where the checker can tell samples apart, so RL spends its rollouts there.

``--all-families`` (``rl_demo.sh`` with ``REWARDS=strict``): the strict reward's mesh-quality
term tells apart the samples of every family, and the spongy shells it penalises are mostly in
families without a count (cactus, tree, car), so every row carries a signal.

``--families fence ladder …`` keeps only those families' rows: Hi-GRPO's budget where the
defects are (demo v4's sit in the families with thin bars, BENCHMARKS.md #21).

``bookshelf.shelves`` is left out by default: the VQ-VAE's own reconstructions of ground-truth
bookshelves read right only 2.5% of the time (models/demo/MODEL_CARD.md), so no token sequence
the policy writes can earn that reward.

    python scripts/rl_prompts.py data/demo/train.jsonl -o runs/demo/rl_prompts.jsonl [--all-families] [--families ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

UNREACHABLE = ("bookshelf.shelves",)  # the VQ-VAE cannot reproduce it (see the docstring)


def count_attributes(skip=UNREACHABLE) -> set[str]:
    """"family.attribute" of every checker that reads a count or a part, not a size class."""
    from ar3d.procedural.evaluate import CHECKERS
    from ar3d.procedural.families import FAMILIES

    out = set()
    for family, checks in CHECKERS.items():
        for attr in checks:
            if attr != FAMILIES[family].ratio_attr and f"{family}.{attr}" not in skip:
                out.add(f"{family}.{attr}")
    return out


def select(rows, wanted: set[str]):
    for row in rows:
        if any(f"{row.get('family')}.{a}" in wanted for a in row.get("attributes") or {}):
            yield row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="procedural JSONL (data/demo/train.jsonl)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--all-families", action="store_true",
                    help="keep every row without a --skip attribute, not only rows with a count (strict rewards)")
    ap.add_argument("--skip", nargs="*", default=list(UNREACHABLE), help="family.attribute to leave out")
    ap.add_argument("--families", nargs="+", help="keep only these families' rows")
    args = ap.parse_args(argv)
    if args.families:
        from ar3d.procedural.families import FAMILIES

        unknown = sorted(set(args.families) - set(FAMILIES))
        if unknown:
            sys.exit(f"error: unknown --families {unknown}; the demo families are {sorted(FAMILIES)}")
    if not args.source.is_file():
        sys.exit(f"error: {args.source} not found; make the demo data first (bash scripts/make_demo_data.sh)")
    wanted = count_attributes(tuple(args.skip))
    with args.source.open() as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if any(r.get("split") == "test" for r in rows):
        sys.exit(f"error: {args.source} holds held-out rows (split 'test'); RL must train on the training split")
    if args.all_families:
        kept = [r for r in rows if not any(f"{r.get('family')}.{a}" in args.skip for a in r.get("attributes") or {})]
    else:
        kept = list(select(rows, wanted))
    if args.families:
        kept = [r for r in kept if r.get("family") in args.families]
    if not kept:
        wanted_text = f"no attribute in {sorted(args.skip)}" if args.all_families else f"any of {sorted(wanted)}"
        wanted_text += f" in the families {args.families}" if args.families else ""
        sys.exit(f"error: no row of {args.source} has {wanted_text}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for r in kept:
            f.write(json.dumps(r) + "\n")
    per = collections.Counter(r["family"] for r in kept)
    print(f"{len(kept)} of {len(rows)} prompts kept ({len(per)} families: "
          + ", ".join(f"{k} {v}" for k, v in sorted(per.items())) + f") -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
