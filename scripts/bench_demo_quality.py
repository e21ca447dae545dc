#!/usr/bin/env python3
"""CPU measurements for issue #21 ("before" values of the demo model v2 retraining).

* ``--gt``: the lenient and the strict attribute checkers and the mesh-quality measure on the
  ground-truth held-out grids (how often each agrees with the known attributes/topology);
* ``--model N``: one-step generation of the first N held-out captions with the bundled demo
  model (CLI sampling defaults, batches of ``--batch``, seeds 1234 + batch offset, as
  ``scripts/train_demo.py --stages eval`` seeds them), judged by ``ar3d.procedural.judge``'s
  ``judge`` / ``score`` as that evaluation is (family, lenient and strict attributes, quality
  raw and delivered);
* ``--vqvae N``: the first N held-out grids encoded and decoded by the model's VQ-VAE (fp32,
  occupancy = logits > the config's ``decode_threshold``, as ``train_demo --stages eval`` reconstructs them) and judged the same
  way: how often the VQ-VAE alone puts holes or fragments into solid parts (the v2 target: < 2%),
  plus the shell IoU;
* ``--chair``: the README's "a wooden chair with four legs" for seeds 0–9 (``--chair-seeds``) through ``TextTo3D``
  exactly as ``ar3d generate --seed S`` makes it, with a quality verdict per seed;
* ``--short S``: short prompts a newcomer types first: each family's plain noun ("a bookshelf")
  and the issue's partial prompts ("a house with two windows"), seeds 0 .. S-1, one-step. The
  family, the stated attributes only (strict) and the delivered quality are judged; training
  captions always named every attribute until ``--caption-partial`` (v4);
* ``--best-of K`` (with ``--model`` / ``--chair``): each prompt's K candidates ranked as
  ``ar3d generate --best-of K`` ranks them (demo_strict on the prompt alone, never the ground
  truth), the kept one judged; reported beside the plain numbers (``*_best_of_K``), which run too.

    python scripts/bench_demo_quality.py --data /work/wt20/data/demo --gt --vqvae 1000 --model 50 --chair --out bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported rather than run: find demo_training
    sys.path.insert(0, str(HERE))

from demo_training.data import RES, load_refs, load_split  # noqa: E402

from ar3d.procedural.dataset import unpack_occupancy  # noqa: E402


def ground_truth(data: Path, refs) -> dict:
    from ar3d.procedural.judge import judge, score

    packed, meta = load_split(data / "test.npz")
    gt = unpack_occupancy(packed, RES)
    t = time.time()
    fams = [m["family"] for m in meta]
    pred, _, attrs, strict, quality = judge(gt, fams, refs, 1, [m["attributes"] for m in meta], full=True)
    out = score(meta, pred, attrs, strict, quality)
    out["seconds"] = round(time.time() - t, 1)
    return out


def vqvae(data: Path, refs, model_dir: Path, n: int, batch: int) -> dict:
    import torch

    from ar3d.core.vqvae import load_vqvae
    from ar3d.procedural.judge import judge, score

    packed, meta = load_split(data / "test.npz", n)
    gt = unpack_occupancy(packed, RES)
    vq = load_vqvae(model_dir / "vqvae.safetensors", device=torch.device("cpu"))
    t = time.time()
    recon, ious = [], []
    with torch.no_grad():
        for i in range(0, len(gt), batch):
            x = torch.from_numpy(gt[i : i + batch])
            r = vq.decode_occupancy(vq.encode(x), batch_size=batch)[:, 0].numpy()
            inter, union = (r & gt[i : i + batch]).sum((1, 2, 3)), (r | gt[i : i + batch]).sum((1, 2, 3))
            ious += list(inter / np.maximum(union, 1))
            recon.append(r)
            print(f"reconstructed {min(len(gt), i + batch)}/{len(gt)} in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    recon_s = round(time.time() - t, 1)
    fams = [m["family"] for m in meta]
    pred, _, attrs, strict, quality = judge(np.concatenate(recon), fams, refs, 1, [m["attributes"] for m in meta], full=True)
    out = score(meta, pred, attrs, strict, quality)
    out.update(shell_iou_mean=float(np.mean(ious)), reconstruct_seconds=recon_s, seconds=round(time.time() - t, 1))
    return out


def make_ranker(data: Path, model_dir: Path):
    """The ranker ``ar3d generate --best-of`` uses for the demo model (demo_strict)."""
    from ar3d.headless.ranking import REFERENCES_FILE, Ranker

    refs = model_dir / REFERENCES_FILE
    return Ranker("demo_strict", views=False, references=refs if refs.is_file() else data / "refs.npz")


def best_of_grids(pipe, ranker, prompts: list[str], k: int, seed: int) -> list:
    """Per prompt, the occupancy grid ``ar3d generate --best-of k`` keeps (one-step, CLI sampling)."""
    from ar3d.core.engine import SamplingConfig
    from ar3d.headless.ranking import best_of, prompt_metadata

    out = pipe.generate(prompts, k, False, SamplingConfig(), seed)
    grids = []
    for j, prompt in enumerate(prompts):
        kept, _ = best_of(ranker, prompt, 1, out.results[j * k : (j + 1) * k], k, prompt_metadata(prompt))
        grids.append(kept[0].occupancy)
    return grids, out.generation


def model(data: Path, refs, model_dir: Path, n: int, batch: int, seed: int, k: int = 1,
          sampling: dict | None = None) -> dict:  # fmt: skip
    import torch

    from ar3d.core.engine import SamplingConfig
    from ar3d.core.policy import Policy
    from ar3d.core.vqvae import load_vqvae
    from ar3d.procedural.judge import judge, score

    packed, meta = load_split(data / "test.npz", n)
    prompts = [m["caption"].strip() for m in meta]
    cfg = SamplingConfig(**(sampling or {}))
    codes, secs = [], 0.0
    t = time.time()
    if k > 1:  # best-of-k, as `ar3d generate --best-of k` picks
        from ar3d.core.pipeline import TextTo3D

        pipe, ranker = TextTo3D.load(str(model_dir), device="cpu"), make_ranker(data, model_dir)
        grids = []
        for i in range(0, n, batch):
            g, out = best_of_grids(pipe, ranker, prompts[i : i + batch], k, seed + i)
            grids += g
            secs += out.seconds
            print(f"generated {min(n, i + batch)}/{n} (best of {k}) in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
        ranker.close()
        occ = np.stack(grids)
    else:
        policy = Policy.load(str(model_dir), device="cpu")
        vq = load_vqvae(model_dir / "vqvae.safetensors", device=torch.device("cpu"))
        for i in range(0, n, batch):
            out = policy.generate(prompts[i : i + batch], two_step=False, sampling=cfg, seed=seed + i)
            secs += out.seconds
            codes += [s.steps[-1].codes for s in out.samples]
            print(f"generated {min(n, i + batch)}/{n} in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
        with torch.no_grad():
            occ = vq.decode_occupancy(torch.as_tensor(np.stack(codes), dtype=torch.long))[:, 0].numpy()
    fams = [m["family"] for m in meta]
    pred, _, attrs, strict, quality = judge(occ, fams, refs, 1, [m["attributes"] for m in meta], full=True)
    res = score(meta, pred, attrs, strict, quality)
    res.update(generate_seconds=round(secs, 1), seconds_per_mesh=round(secs / n, 2), batch=batch, seed=seed,
               engine=out.engine, sampling=vars(cfg), best_of=k)  # fmt: skip
    return res


# what users typed in issue #21, beside each family's plain noun
PARTIAL_PROMPTS = ("a bookshelf with four shelves", "a house with two windows", "a staircase with 5 steps",
                   "a ladder with 6 rungs", "a table lamp", "a mug with a handle", "a chair with four legs")  # fmt: skip


def short_prompts() -> list[str]:
    """Each family's first noun ("a bookshelf"), then PARTIAL_PROMPTS."""
    from ar3d.procedural.wording import MUSHROOM_NOUNS, NOUNS_V2

    plain = [f"{'an' if nouns[0][0] in 'aeiou' else 'a'} {nouns[0]}" for nouns in NOUNS_V2.values()]
    return plain + [MUSHROOM_NOUNS["one"][0]] + list(PARTIAL_PROMPTS)


def short(data: Path, refs, model_dir: Path, seeds: int, batch: int, sampling: dict | None = None) -> dict:
    """One-step meshes of short prompts, judged on what each prompt states (ar3d.procedural.read_caption)."""
    import torch

    from ar3d.core.engine import SamplingConfig
    from ar3d.core.policy import Policy
    from ar3d.core.vqvae import load_vqvae
    from ar3d.procedural.judge import judge
    from ar3d.procedural.read_caption import read_caption

    prompts = short_prompts()
    stated = [read_caption(p) for p in prompts]
    unread = [p for p, (f, _) in zip(prompts, stated) if f is None]
    if unread:
        raise ValueError(f"prompts that name no demo family: {unread}")
    policy = Policy.load(str(model_dir), device="cpu")
    vq = load_vqvae(model_dir / "vqvae.safetensors", device=torch.device("cpu"))
    cfg = SamplingConfig(**(sampling or {}))
    rows, t = [], time.time()
    for seed in range(seeds):
        for i in range(0, len(prompts), batch):
            out = policy.generate(prompts[i : i + batch], two_step=False, sampling=cfg, seed=seed)
            with torch.no_grad():
                codes = torch.as_tensor(np.stack([x.steps[-1].codes for x in out.samples]), dtype=torch.long)
                occ = vq.decode_occupancy(codes)[:, 0].numpy()
            fams = [f for f, _ in stated[i : i + batch]]
            attrs = [dict(a) for _, a in stated[i : i + batch]]
            pred, _, _, strict, quality = judge(occ, fams, refs, 1, attrs, full=True)
            for j, prompt in enumerate(prompts[i : i + batch]):
                got = strict[j] or {}
                row = {"prompt": prompt, "seed": seed, "family": fams[j], "predicted": pred[j], "stated": attrs[j],
                       "stated_right": all(got.get(k) == v for k, v in attrs[j].items()),
                       "clean": quality[j]["delivered"]["clean"]}  # fmt: skip
                row["family_right"] = row["predicted"] == row["family"]
                row["right"] = row["family_right"] and row["stated_right"] and row["clean"]
                rows.append(row)
            print(f"short prompts: seed {seed}, {min(len(prompts), i + batch)}/{len(prompts)} in {time.time() - t:.0f}s",
                  file=sys.stderr, flush=True)  # fmt: skip
    per_prompt = {}
    for r in rows:
        d = per_prompt.setdefault(r["prompt"], {"family": 0, "right": 0, "clean": 0, "predicted": []})
        d["family"] += r["family_right"]
        d["right"] += r["right"]
        d["clean"] += r["clean"]
        d["predicted"].append(r["predicted"])
    share = lambda key: round(float(np.mean([r[key] for r in rows])), 4)  # noqa: E731
    return {"prompts": prompts, "seeds": seeds, "n": len(rows),
            "family_accuracy": share("family_right"), "stated_attributes_right": share("stated_right"), "clean": share("clean"), "right_and_clean": share("right"),
            "per_prompt": per_prompt, "rows": rows}  # fmt: skip


def chair(model_dir: Path, refs, seeds=range(10), prompt="a wooden chair with four legs", k: int = 1,
          data: Path | None = None) -> dict:  # fmt: skip
    from ar3d.core.engine import SamplingConfig
    from ar3d.core.mesh import MeshConfig
    from ar3d.core.pipeline import TextTo3D
    from ar3d.procedural.evaluate import check_attributes, classify_batch
    from ar3d.procedural.quality import QualityConfig, assess
    from ar3d.procedural.strict import check_attributes_strict

    pipe = TextTo3D.load(str(model_dir), device="cpu")
    ranker = make_ranker(data, model_dir) if k > 1 else None
    rows = []
    for seed in seeds:
        if ranker is None:
            out = pipe.generate(prompt, 1, False, SamplingConfig(), seed)
            g = out.results[0].occupancy
            generation = out.generation
        else:
            (g,), generation = best_of_grids(pipe, ranker, [prompt], k, seed)
        mesh, _ = pipe.mesh(g)
        raw = assess(g, "chair", {"legs": 4})
        delivered = assess(g, "chair", {"legs": 4}, QualityConfig(mesh=MeshConfig()))
        fam = classify_batch([g], refs)[0][0]
        rows.append({
            "seed": seed, "family": fam, "legs_lenient": check_attributes("chair", g).get("legs"),
            "legs_strict": check_attributes_strict("chair", g).get("legs"),
            "raw": raw.to_dict(), "delivered": delivered.to_dict(),
            "mesh_watertight": bool(mesh.is_watertight) if mesh is not None else None,
            "generate_seconds": round(generation.seconds, 1),
        })  # fmt: skip
        print(f"chair seed {seed}: {fam}, legs {rows[-1]['legs_lenient']}/{rows[-1]['legs_strict']}, "
              f"genus {raw.genus} (expected {raw.expected_genus}), fragments {raw.fragments}, "
              f"clean raw {raw.clean} delivered {delivered.clean}", file=sys.stderr, flush=True)  # fmt: skip
    if ranker is not None:
        ranker.close()
    return {"prompt": prompt, "best_of": k, "rows": rows,
            "clean_raw": sum(r["raw"]["clean"] for r in rows), "clean_delivered": sum(r["delivered"]["clean"] for r in rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data/demo"), help="folder with test.npz and refs.npz")
    ap.add_argument("--model-dir", type=Path, default=HERE.parent / "models" / "demo")
    ap.add_argument("--gt", action="store_true")
    ap.add_argument("--model", type=int, default=0, help="held-out captions to generate (0 = skip)")
    ap.add_argument("--vqvae", type=int, default=0, help="held-out grids to reconstruct with the VQ-VAE (0 = skip)")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--chair", action="store_true")
    ap.add_argument("--short", type=int, default=0, help="short prompts, seeds 0 .. N-1 (0 = skip)")
    ap.add_argument("--chair-seeds", type=int, default=10, help="--chair: seeds 0 .. N-1")
    ap.add_argument("--best-of", type=int, default=1,
                    help="--model and --chair: keep the best of N candidates, as `ar3d generate --best-of N` does")
    ap.add_argument("--temperature", type=float, help="--model and --short (plain): sampling temperature (default: the CLI's)")
    ap.add_argument("--top-p", type=float, help="--model and --short (plain): top-p (default: the CLI's)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    refs = load_refs(args.data / "refs.npz")
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report["machine"] = {"cpu_threads": __import__("torch").get_num_threads(), "date": time.strftime("%Y-%m-%d")}
    sampling = {k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p)) if v is not None}
    tag = "".join(f"_{k}_{v:g}" for k, v in sampling.items())  # other sampling: other keys in the report
    steps = [("ground_truth", args.gt, lambda: ground_truth(args.data, refs)),
             ("vqvae_reconstruction", args.vqvae > 0, lambda: vqvae(args.data, refs, args.model_dir, args.vqvae, args.batch)),
             ("one_step" + tag, args.model > 0,
              lambda: model(args.data, refs, args.model_dir, args.model, args.batch, args.seed, sampling=sampling)),
             ("short_prompts" + tag, args.short > 0,
              lambda: short(args.data, refs, args.model_dir, args.short, args.batch, sampling)),
             ("readme_chair", args.chair, lambda: chair(args.model_dir, refs, range(args.chair_seeds), data=args.data))]  # fmt: skip
    if args.best_of > 1:  # the plain rows, then the best-of rows beside them in one report
        k = args.best_of
        steps += [(f"one_step_best_of_{k}", args.model > 0,
                   lambda: model(args.data, refs, args.model_dir, args.model, args.batch, args.seed, k)),
                  (f"readme_chair_best_of_{k}", args.chair,
                   lambda: chair(args.model_dir, refs, range(args.chair_seeds), k=k, data=args.data))]  # fmt: skip
    for key, wanted, fn in steps:
        if wanted:
            report[key] = fn()
            args.out.write_text(json.dumps(report, indent=1, default=str))
            print(f"{key}: done", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
