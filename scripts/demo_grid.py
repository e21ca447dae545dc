#!/usr/bin/env python3
"""A grid of renders of 12 prompts from a demo model, with a verdict under each mesh.

Why: issue #21 asks for "a grid of renders of 12 prompts before and after" in the model card.
The same script, prompts and seed make both grids, so before and after differ only in the model.
Rows are prompts (the issue's failure cases among them); columns are one-step, and with
``--two-step`` also the coarse and refined meshes of a two-step rollout. Each cell says what the
strict checker (`ar3d.procedural.strict`) reads and what the quality measure
(`ar3d.procedural.quality`: through-holes beyond the family's, floating fragments) finds on the
delivered mesh, so a reader need not judge holes from one picture.

    python3 scripts/demo_grid.py --out docs/images/demo_v1_grid.png --two-step
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# prompt, its family and the attributes it asks for (what the checkers compare against)
PROMPTS: list[tuple[str, str, dict]] = [
    ("a wooden chair with four legs", "chair", {"legs": 4}),
    ("a house with two windows", "house", {"windows": 2}),
    ("a staircase with 5 steps", "stairs", {"steps": 5}),
    ("a tall ceramic mug with a handle", "mug", {"handle": True, "size": "tall"}),
    ("a ladder with 6 rungs", "ladder", {"rungs": 6}),
    ("a tall ladder with six rungs", "ladder", {"rungs": 6, "size": "tall"}),
    ("a table lamp", "lamp", {"size": "short"}),  # v2 wording: a table lamp is the short lamp
    ("a fence with three rails", "fence", {"rails": 3}),
    ("a bookshelf with four shelves", "bookshelf", {"shelves": 4}),
    ("a tall table with four legs", "table", {"legs": 4, "size": "tall"}),
    ("a stool with three legs", "stool", {"legs": 3}),
    ("a snowman with a hat and three balls", "snowman", {"hat": True, "balls": 3}),
]


def verdict(occupancy, family: str, attrs: dict, refs) -> tuple[str, dict]:
    from ar3d.core.mesh import MeshConfig
    from ar3d.procedural.evaluate import classify_batch
    from ar3d.procedural.quality import QualityConfig, assess
    from ar3d.procedural.strict import check_attributes_strict

    got_family = classify_batch([occupancy], refs)[0][0] if refs is not None else None
    strict = check_attributes_strict(family, occupancy)
    q = assess(occupancy, family, attrs, QualityConfig(mesh=MeshConfig()), shown=strict)
    wrong = [f"{k}: {'unreadable' if strict.get(k) is None else strict.get(k)}"
             for k, v in attrs.items() if k in strict and strict.get(k) != v]  # fmt: skip
    parts = []
    if got_family is not None and got_family != family:
        parts.append(f"looks like {got_family}")
    parts += wrong
    if q.empty:
        parts.append("empty")
    if q.unwanted_holes:
        parts.append(f"{q.unwanted_holes} extra hole{'s' * (q.unwanted_holes > 1)}")
    if q.fragments:
        parts.append(f"{q.fragments} fragment{'s' * (q.fragments > 1)}")
    text = "ok" if not parts else ", ".join(parts)
    return text, {"family": got_family, "strict": strict, "quality": q.to_dict(), "ok": not parts}


def render(meshes: list, resolution: int) -> list[np.ndarray]:
    from ar3d.headless.pool import PoolConfig, RenderPool
    from ar3d.headless.render import RenderConfig
    from ar3d.headless.views import ring_views

    cams = [ring_views(8, 25.0)[1]]  # front-right three-quarter view
    cfg = RenderConfig(resolution=resolution, views=cams, background="white", workbench_aa="8")
    with RenderPool(PoolConfig(workers=1, timeout_s=300), cfg) as pool:
        out = []
        for job in pool.map(meshes):
            if not job.ok:
                raise RuntimeError(f"render failed: {job.error}")
            out.append(job.result.images[0])
    return out


def compose(rows: list[tuple[str, list[tuple[np.ndarray | None, str]]]], columns: list[str], title: str, cell: int):
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(11, cell // 16))
    label_w, head_h, text_h = int(cell * 1.1), cell // 5, cell // 4
    W = label_w + cell * len(columns)
    H = head_h * 2 + (cell + text_h) * len(rows)
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((8, 6), title, fill="black", font=font)
    for j, name in enumerate(columns):
        d.text((label_w + j * cell + 8, head_h + 4), name, fill="black", font=font)
    for i, (prompt, cells) in enumerate(rows):
        y = head_h * 2 + i * (cell + text_h)
        d.multiline_text((8, y + cell // 2 - 10), _wrap(prompt, 22), fill="black", font=font)
        for j, (pixels, text) in enumerate(cells):
            x = label_w + j * cell
            if pixels is not None:
                rgba = Image.fromarray(pixels, "RGBA")
                img.paste(rgba.convert("RGB").resize((cell, cell)), (x, y))
            d.multiline_text((x + 6, y + cell + 2), _wrap(text, cell // 8), fill=(0, 110, 0) if text == "ok" else (170, 0, 0),
                             font=font)  # fmt: skip
    return img


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(HERE.parent / "models" / "demo"), help="model folder (default: the bundled demo)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write; a JSON with every verdict goes beside it")
    ap.add_argument("--two-step", action="store_true", help="add the coarse and refined meshes of a two-step rollout")
    ap.add_argument("--seed", type=int, default=1234, help="seed of every prompt (the README example's)")
    ap.add_argument("--cell", type=int, default=224, help="pixels per cell")
    ap.add_argument("--refs", type=Path, default=None,
                    help="family references (.npz, as train_demo --stages refs writes); default: built here (~1 min)")
    ap.add_argument("--refs-per-family", type=int, default=12, help="references built per family without --refs")
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts (a quick look)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)

    from ar3d.core import threads
    from ar3d.core.engine import SamplingConfig
    from ar3d.core.pipeline import TextTo3D

    threads.apply()
    if args.refs is not None:
        from ar3d.core.rewards.procedural import load_references

        refs = load_references(args.refs)
    else:  # as the procedural.family reward builds them (12 a family, seed 10 000)
        from ar3d.procedural.evaluate import build_references

        refs = build_references(per_family=args.refs_per_family)
    pipe = TextTo3D.load(args.model, device="cpu")
    modes = [("one-step", False)] + ([("two-step", True)] if args.two_step else [])
    columns = ["one-step"] + (["coarse", "refined"] if args.two_step else [])
    rows, report, meshes = [], [], []
    t0 = time.time()
    prompts = PROMPTS[: args.limit]
    for prompt, family, attrs in prompts:
        cells, entry = [], {"prompt": prompt, "family": family, "attributes": attrs}
        for name, two_step in modes:
            out = pipe.generate(prompt, 1, two_step, SamplingConfig(), args.seed)
            r = out.results[0]
            grids = [("coarse", r.coarse_occupancy, r.coarse_mesh), ("refined", r.occupancy, r.mesh)] if two_step \
                else [(name, r.occupancy, r.mesh)]  # fmt: skip
            for col, occ, mesh in grids:
                text, facts = verdict(occ, family, attrs, refs)
                entry[col] = {**facts, "verdict": text}
                cells.append([mesh, text])
                meshes.append(mesh)
        rows.append((prompt, cells))
        report.append(entry)
        print(f"{len(rows)}/{len(prompts)} {prompt}: {' | '.join(c[1] for c in cells)} ({time.time() - t0:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip
    images = iter(render([m for m in meshes if m is not None], args.cell))
    for _, cells in rows:
        for c in cells:
            c[0] = next(images) if c[0] is not None else None
    title = args.title or f"{Path(args.model).name}: seed {args.seed}, CLI sampling defaults, delivered meshes"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid = compose([(p, [tuple(c) for c in cells]) for p, cells in rows], columns, title, args.cell)
    grid.quantize(64).save(args.out, optimize=True)  # grey renders + two text colours: a 64-colour palette is lossless enough
    ok = {col: sum(e[col]["ok"] for e in report) for col in columns}
    args.out.with_suffix(".json").write_text(json.dumps({"model": args.model, "seed": args.seed, "ok": ok, "rows": report},
                                                        indent=1, default=str))  # fmt: skip
    print(f"wrote {args.out} ({', '.join(f'{k}: {v}/{len(prompts)} ok' for k, v in ok.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
