"""The ``eval`` stage: held-out captions -> ``Policy.load(out).generate`` -> VQ-VAE decode ->
family judge, attribute checkers and mesh quality (:mod:`ar3d.procedural.judge`), for the
one-step and the two-step paths, with the ground truth and the VQ-VAE's reconstructions as the
ceilings the model is measured against."""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from ar3d.core.vqvae import load_vqvae
from ar3d.procedural.dataset import unpack_occupancy

from .data import RES, load_refs, load_split
from .report import Report, log
from .vqvae import evaluate_reconstruction


def stage_eval(args, device, report: Report) -> None:
    from ar3d.core.engine import SamplingConfig
    from ar3d.core.policy import Policy

    test_packed, meta = load_split(args.data / "test.npz", args.test_limit)
    n = min(len(meta), args.eval_n)
    test_packed, meta = test_packed[:n], meta[:n]
    refs = load_refs(args.data / "refs.npz")
    policy = Policy.load(str(args.out), device=str(device), precision=args.precision)
    vq = load_vqvae(args.out / "vqvae.safetensors", device=device)
    sampling = SamplingConfig(max_plan_tokens=args.eval_max_plan) if args.eval_max_plan is not None else SamplingConfig()
    results: dict = {"sampling": vars(sampling), "seed": args.eval_seed, "n": n, "dtype": str(policy.model.dtype),
                     "precision": policy.precision, "decode_threshold": vq.config.decode_threshold}  # fmt: skip
    results["vqvae_heldout"] = evaluate_reconstruction(vq, test_packed, device, args.eval_batch)
    log("eval: VQ-VAE held-out", json.dumps(results["vqvae_heldout"]))

    def generate(prompts: list[str], two_step: bool):
        codes, plans, secs = [], [], 0.0
        for i in range(0, len(prompts), args.gen_batch):
            out = policy.generate(prompts[i : i + args.gen_batch], two_step=two_step, sampling=sampling,
                                  seed=args.eval_seed + i)  # fmt: skip
            secs += out.seconds
            for s in out.samples:
                codes.append([st.codes for st in s.steps])
                plans.append(s.plans)
        return np.array(codes), plans, secs

    def decode(codes: np.ndarray, threshold: float | None = None, decoder=None) -> np.ndarray:
        """Occupancy at `threshold` (None: the decoder's own `decode_threshold`, as generation)."""
        occ = []
        with torch.no_grad():
            for i in range(0, len(codes), args.eval_batch):
                c = torch.from_numpy(codes[i : i + args.eval_batch]).to(device)
                occ.append((decoder or vq).decode_occupancy(c, batch_size=args.eval_batch, threshold=threshold)[:, 0].cpu().numpy())
        return np.concatenate(occ)

    prompts = [m["caption"].strip() for m in meta]
    fams = [m["family"] for m in meta]
    t = time.time()
    codes1, plans1, secs1 = generate(prompts, two_step=False)
    log(f"eval: one-step generation of {n} in {secs1:.0f}s")
    occ1 = decode(codes1[:, -1])
    gt = unpack_occupancy(test_packed, RES)
    with torch.no_grad():
        recon = decode(np.concatenate([vq.encode(torch.from_numpy(gt[i : i + args.eval_batch]).to(device)).cpu().numpy()
                                       for i in range(0, n, args.eval_batch)]))  # fmt: skip

    saved = {"codes_one_step": codes1[:, -1].astype(np.int16)}
    try:
        from ar3d.procedural.judge import conditional_accuracy, judge, plan_agreement, score  # needs scipy, trimesh

        judge_ok = True
    except Exception as e:
        judge_ok = False
        log(f"eval: cannot import the judge ({type(e).__name__}: {e}); saving codes only")
    wanted = [m["attributes"] for m in meta]
    if judge_ok:
        skip = getattr(args, "skip_reference_eval", False)
        if not skip:
            gt_pred, _, gt_attrs, gt_strict, gt_q = judge(gt, fams, refs, args.workers, wanted, full=True)
            results["ground_truth"] = score(meta, gt_pred, gt_attrs, gt_strict, gt_q)
            rc_pred, _, rc_attrs, rc_strict, rc_q = judge(recon, fams, refs, args.workers, wanted, full=True)
            results["vqvae_reconstruction"] = score(meta, rc_pred, rc_attrs, rc_strict, rc_q)
        p1, best1, a1, s1, q1 = judge(occ1, fams, refs, args.workers, wanted, full=True)
        results["one_step"] = score(meta, p1, a1, s1, q1)
        if not skip:  # the same, counted only on attributes the checker reads right on the ground truth
            results["one_step"]["attribute_accuracy_where_checker_right_on_gt"] = conditional_accuracy(meta, a1, gt_attrs)
        results["one_step"]["plan"] = plan_agreement(meta, [p[0] for p in plans1], s1)
        results["one_step"]["nearest_reference_iou_mean"] = float(best1.mean())
        results["one_step"]["empty_grids"] = int(sum(not o.any() for o in occ1))
        log("eval: one-step", json.dumps({k: results["one_step"][k] for k in ("family_accuracy", "attribute_accuracy_mean",
                                                                           "strict_attribute_accuracy_mean", "quality")}))  # fmt: skip
    m2 = min(n, args.eval_two_step_n)
    if m2:
        codes2, plans2, secs2 = generate(prompts[:m2], two_step=True)
        saved["codes_two_step"] = codes2.astype(np.int16)
        results["two_step_seconds"] = secs2
        if judge_ok:
            for s, name in ((0, "two_step_coarse"), (1, "two_step_refined")):
                occ = decode(codes2[:, s])
                p, _, a, st, q = judge(occ, fams[:m2], refs, args.workers, wanted[:m2], full=True)
                results[name] = score(meta[:m2], p, a, st, q)
                # coarse: the global plan it was drawn from; refined: the visual plan
                results[name]["plan"] = plan_agreement(meta[:m2], [pl[s] for pl in plans2], st)
        results["examples_two_step"] = [{"prompt": prompts[i], "plans": plans2[i]} for i in range(min(3, m2))]
    runs = [("one_step", codes1[:, -1], n)] + ([("two_step_coarse", codes2[:, 0], m2),
                                               ("two_step_refined", codes2[:, 1], m2)] if m2 else [])  # fmt: skip

    def judge_again(section: str, key: str, **decode_args) -> None:
        r = results.setdefault(section, {})[key] = {}
        for name, c, m in runs:
            p, _, a, st, q = judge(decode(c, **decode_args), fams[:m], refs, args.workers, wanted[:m], full=True)
            r[name] = score(meta[:m], p, a, st, q)
        log(f"eval: {section} {key}, one-step", json.dumps({k: r["one_step"][k] for k in
            ("family_accuracy", "strict_attribute_accuracy_mean", "quality")}))  # fmt: skip

    if judge_ok:
        # the same codes decoded at other logit thresholds (holes vs merged parts) and by other
        # decoders of the same codebook (demo_training/decoder.py)
        for thr in [t for t in getattr(args, "eval_thresholds", None) or [] if t != vq.config.decode_threshold]:
            judge_again("thresholds", f"{thr:g}", threshold=thr)
        for spec in getattr(args, "eval_vqvae", None) or []:
            label, _, path = spec.rpartition("=")
            other = load_vqvae(path, device=device)
            if not torch.equal(other.vq.embeddings.weight, vq.vq.embeddings.weight):
                raise SystemExit(f"--eval-vqvae {spec}: another codebook; the codes mean other shapes there")
            judge_again("decoders", label or path, decoder=other)
    results["one_step_seconds"] = secs1
    results["examples_one_step"] = [{"prompt": prompts[i], "family": fams[i], "plan": plans1[i][0]} for i in range(min(5, n))]
    results["seconds"] = round(time.time() - t, 1)
    report.update("eval", results)
    if args.save_eval:
        np.savez_compressed(args.save_eval, **saved, families=np.asarray(fams, dtype=str))
    log(f"eval: done in {results['seconds']}s")
