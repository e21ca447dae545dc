#!/usr/bin/env python3
"""Train the offline demo text-to-3D model (issue #7) on the procedural shapes.

It is the real architecture, only small: a :class:`ar3d.core.vqvae.VQVAE3D` with narrow widths and
a small codebook, and a Qwen2.5-VL policy built by :mod:`ar3d.core.factory` with a BPE tokenizer
trained on the captions and plans. Everything is saved the way ``ar3d generate --model`` loads it:

    models/demo/
        config.json, generation_config.json, model.safetensors     the policy (bf16 weights)
        tokenizer.json, tokenizer_config.json, ...                   its tokenizer (chat template)
        vqvae.safetensors, vqvae_config.json                         the bundled VQ-VAE
        training_report.json                                         settings, seeds, metrics

Stages (``--stages``, comma-separated, run in this order):

    refs     CPU: fresh procedural reference samples for the family judge  -> DATA/refs.npz
    vqvae    train the VQ-VAE (straight-through VQ, EMA codebook, k-means init, dead-code restarts)
             and measure held-out reconstruction IoU (surface shell and filled solid)
    encode   all samples -> codes with the trained VQ-VAE             -> DATA/codes_{train,test}.npy
    policy   train the policy on chat-templated sequences, exactly as Policy.generate prompts it:
             one-step (ONE_STEP -> plan1 + codes), two-step step 1 (STEP1_PLAN -> plan1 + codes)
             and step 2 (STEP2_VISUAL with plan1 -> plan2 + codes); the loss is on the completion
    eval     held-out test captions -> Policy.load(out).generate -> VQ-VAE decode -> family judge
             (procedural.evaluate.classify_batch) and attribute checkers

Data (made on a CPU; see scripts/make_demo_data.sh)::

    python -m ar3d.procedural --n 20000 --split train --seed 1 --workers 2 --out data/demo/train.npz
    python -m ar3d.procedural --n 1000 --split test --seed 2 --workers 2 --out data/demo/test.npz
    python scripts/train_demo.py --stages refs

On the GPU machine (ar3d importable through a symlink, trimesh carried as a wheel for the judge)::

    python3 scripts/train_demo.py --stages vqvae,encode --vq-seconds 240
    python3 scripts/train_demo.py --stages encode,policy,eval --policy-seconds 330

CPU smoke test (tiny data made on the fly, tiny models, every stage; a few minutes on 2 cores):
``python scripts/train_demo.py --smoke [--out DIR --data DIR]`` (default /tmp/ar3d_demo_smoke/).
Training is time-budgeted (``--vq-seconds``, ``--policy-seconds``) with step caps; the report
records the steps actually made, the seeds and the versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ar3d.core.vqvae import VQVAE3D, VQVAEConfig, load_vqvae, save_vqvae

RES = 64
FORMATS = ("one_step", "two_step_1", "two_step_2")


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ---------------------------------------------------------------------------------------------
# data files (read without importing ar3d.procedural, whose generators need trimesh/manifold3d)
# ---------------------------------------------------------------------------------------------


def load_split(path: Path, limit: int | None = None):
    """(packed uint8 [N, R³/8], metadata list) of a procedural dataset file."""
    with np.load(path, allow_pickle=False) as z:
        packed = z["occupancy"]
        meta = [json.loads(x) for x in z["metadata"].tobytes().decode("utf-8").splitlines() if x.strip()]
        if int(z["resolution"]) != RES:
            raise ValueError(f"{path}: resolution {int(z['resolution'])}, the VQ-VAE needs {RES}")
    if limit:
        packed, meta = packed[:limit], meta[:limit]
    return packed, meta


_SHIFTS: dict = {}


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [B, R³/8] (np.packbits, big-endian bits) on any device -> float [B, 1, R, R, R]."""
    dev = packed.device
    if dev not in _SHIFTS:
        _SHIFTS[dev] = torch.arange(7, -1, -1, dtype=torch.uint8, device=dev)
    bits = (packed.unsqueeze(-1) >> _SHIFTS[dev]) & 1
    return bits.reshape(packed.shape[0], 1, RES, RES, RES).float()


def fill_holes(shell: torch.Tensor, max_iter: int = 512) -> torch.Tensor:
    """scipy.ndimage.binary_fill_holes (6-connected background) on the GPU: bool [B,1,R,R,R]."""
    bg = ~shell
    reach = torch.zeros_like(bg)
    reach[..., 0, :, :] = bg[..., 0, :, :]
    reach[..., -1, :, :] = bg[..., -1, :, :]
    reach[..., :, 0, :] |= bg[..., :, 0, :]
    reach[..., :, -1, :] |= bg[..., :, -1, :]
    reach[..., :, :, 0] |= bg[..., :, :, 0]
    reach[..., :, :, -1] |= bg[..., :, :, -1]
    for i in range(max_iter):
        r = reach.clone()
        r[..., 1:, :, :] |= reach[..., :-1, :, :]
        r[..., :-1, :, :] |= reach[..., 1:, :, :]
        r[..., :, 1:, :] |= reach[..., :, :-1, :]
        r[..., :, :-1, :] |= reach[..., :, 1:, :]
        r[..., :, :, 1:] |= reach[..., :, :, :-1]
        r[..., :, :, :-1] |= reach[..., :, :, 1:]
        r &= bg
        if i % 8 == 7 and torch.equal(r, reach):
            break
        reach = r
    return ~reach


def mesh_solid(shell: torch.Tensor, closing: int = 1) -> torch.Tensor:
    """The solid that core.mesh.occupancy_to_mesh meshes (default MeshConfig): a 3x3x3 binary
    closing (``closing`` iterations) seals pinholes, then holes are filled; bool [B,1,R,R,R]."""
    pad = closing + 1
    x = F.pad(shell.float(), (pad,) * 6)
    for _ in range(closing):
        x = F.max_pool3d(x, 3, 1, 1)
    for _ in range(closing):
        x = 1 - F.max_pool3d(1 - x, 3, 1, 1)
    solid = fill_holes(x > 0.5)
    r = shell.shape[-1]
    return solid[..., pad : pad + r, pad : pad + r, pad : pad + r] | shell


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample IoU of bool [B, ...] grids (1 where both are empty)."""
    a, b = a.flatten(1), b.flatten(1)
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class Report:
    """training_report.json in the model folder, updated stage by stage."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def update(self, key: str, value) -> None:
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_json_default))
        tmp.replace(self.path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)  # paths, dtypes, devices: a report must never fail to save


def environment(device: torch.device) -> dict:
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "numpy": np.__version__, "device": str(device), "host": platform.node()}  # fmt: skip
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def cosine_lr(base: float, frac: float, step: int, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    frac = min(max(frac, 0.0), 1.0)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


# ---------------------------------------------------------------------------------------------
# stage: refs
# ---------------------------------------------------------------------------------------------


def stage_refs(args, report: Report) -> None:
    from ar3d.procedural.evaluate import build_references

    t = time.time()
    refs = build_references(per_family=args.refs_per_family, seed=args.refs_seed, workers=args.workers)
    np.savez_compressed(
        args.data / "refs.npz",
        families=np.asarray(refs.families, dtype=str),
        features=np.packbits(refs.features.astype(bool), axis=1),
        n_features=np.int64(refs.features.shape[1]),
    )
    log(f"refs: {len(refs.families)} references ({args.refs_per_family}/family, seed {args.refs_seed}) "
        f"in {time.time() - t:.0f}s -> {args.data / 'refs.npz'}")  # fmt: skip


def load_refs(path: Path):
    from ar3d.core.rewards.procedural import load_references

    return load_references(path)


# ---------------------------------------------------------------------------------------------
# stage: vqvae
# ---------------------------------------------------------------------------------------------


class EMAQuantizer:
    """Nearest-code quantiser whose codebook (the model's ``vq.embeddings.weight``) follows an
    exponential moving average of the encoder vectors assigned to each code (k-means online).
    Codes that stop being used are restarted on badly represented encoder vectors."""

    def __init__(self, weight: torch.Tensor, decay: float = 0.99, eps: float = 1e-5):
        self.weight = weight  # the Codebook's parameter, updated in place (not by the optimiser)
        self.decay, self.eps = decay, eps
        k, d = weight.shape
        self.count = torch.ones(k, device=weight.device)
        self.sum = weight.detach().clone()
        self.usage = torch.zeros(k, device=weight.device)  # EMA of assignments per step

    def nearest(self, z: torch.Tensor):
        e = self.weight.detach()
        d = (e * e).sum(1)[None, :] - 2.0 * (z @ e.t())  # same rule as Codebook.nearest
        idx = d.argmin(1)
        return idx, e[idx]

    @torch.no_grad()
    def init_kmeans(self, z: torch.Tensor, iters: int = 20, seed: int = 0) -> dict:
        """k-means on encoder vectors z [N, D]; empty clusters are re-seeded far from their
        nearest centre (k-means++ style), which matters because empty space dominates."""
        g = torch.Generator(device=z.device).manual_seed(seed)
        k = self.weight.shape[0]
        c = z[torch.randint(len(z), (k,), generator=g, device=z.device)].clone()
        for _ in range(iters):
            d = (c * c).sum(1)[None, :] - 2.0 * (z @ c.t())
            idx = d.argmin(1)
            cnt = torch.bincount(idx, minlength=k).float()
            s = torch.zeros_like(c).index_add_(0, idx, z)
            alive = cnt > 0
            c[alive] = s[alive] / cnt[alive, None]
            dead = int((~alive).sum())
            if dead:
                err = (d.gather(1, idx[:, None])[:, 0] + (z * z).sum(1)).clamp(min=0)
                pick = torch.multinomial(err + 1e-12, dead, replacement=False, generator=g)
                c[~alive] = z[pick]
        d = (c * c).sum(1)[None, :] - 2.0 * (z @ c.t())
        idx = d.argmin(1)
        cnt = torch.bincount(idx, minlength=k).float()
        self.weight.data.copy_(c)
        self.count = cnt.clamp(min=1.0)
        self.sum = c * self.count[:, None]
        return {"kmeans_vectors": len(z), "kmeans_used": int((cnt > 0).sum())}

    @torch.no_grad()
    def update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        k = self.weight.shape[0]
        cnt = torch.bincount(idx, minlength=k).float()
        s = torch.zeros_like(self.sum).index_add_(0, idx, z)
        self.count.mul_(self.decay).add_(cnt, alpha=1 - self.decay)
        self.sum.mul_(self.decay).add_(s, alpha=1 - self.decay)
        self.usage.mul_(0.99).add_(cnt, alpha=0.01)
        n = self.count.sum()
        smoothed = (self.count + self.eps) / (n + k * self.eps) * n
        self.weight.data.copy_(self.sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, q: torch.Tensor, threshold: float, g) -> int:
        dead = (self.usage < threshold).nonzero()[:, 0]
        if len(dead) == 0:
            return 0
        err = ((z - q) ** 2).sum(1)
        pick = torch.multinomial(err + 1e-12, len(dead), replacement=len(dead) > len(z), generator=g)
        new = z[pick]
        self.weight.data[dead] = new
        self.sum[dead] = new
        self.count[dead] = 1.0
        self.usage[dead] = threshold * 4
        return len(dead)


def recon_loss(logits: torch.Tensor, x: torch.Tensor, pos_weight: float, dice_weight: float):
    pw = torch.tensor(pos_weight, device=logits.device)
    bce = F.binary_cross_entropy_with_logits(logits, x, pos_weight=pw)
    p = torch.sigmoid(logits).flatten(1)
    t = x.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + dice_weight * dice.mean(), bce, dice.mean()


def vq_config(args) -> VQVAEConfig:
    return VQVAEConfig(
        num_embeddings=args.codes,
        embedding_dim=32,
        latent_channels=8,
        encoder_channels=tuple(args.vq_enc),
        decoder_channels=tuple(args.vq_dec),
        num_res_blocks=args.vq_res_blocks,
        num_res_blocks_middle=args.vq_mid_blocks,
        resolution=RES,
        tokens=1024,
    )


def vq_forward(model: VQVAE3D, x: torch.Tensor, quant: EMAQuantizer | None, amp: bool):
    """Training forward: encoder -> straight-through VQ -> decoder; returns logits and VQ terms."""
    d = model.config.embedding_dim
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        latent = model.Encoder(x)
    vec = model.latent_to_vectors(latent.float())
    b = vec.shape[0]
    flat = vec.reshape(-1, d)
    commit = flat.new_zeros(())
    idx = q = None
    if quant is not None:
        idx, q = quant.nearest(flat.detach())
        commit = F.mse_loss(flat, q)
        flat = flat + (q - flat).detach()
    z = model.vectors_to_latent(flat.view(b, -1, d))
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model.Decoder(z)
    return logits.float(), commit, vec.reshape(-1, d).detach(), idx, q


def stage_vqvae(args, device, report: Report) -> None:
    train_packed, _ = load_split(args.data / "train.npz", args.limit)
    test_packed, _ = load_split(args.data / "test.npz", args.test_limit)
    cfg = vq_config(args)
    torch.manual_seed(args.seed)
    model = VQVAE3D(cfg).to(device)
    quant = EMAQuantizer(model.vq.embeddings.weight, decay=args.vq_decay)
    params = [p for n, p in model.named_parameters() if not n.startswith("vq.")]
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(params, lr=args.vq_lr, betas=(0.9, 0.99), weight_decay=0.0)
    data = torch.from_numpy(train_packed).to(device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    amp = device.type == "cuda"
    log(f"vqvae: {n_params / 1e6:.2f} M params, config {cfg.to_dict()}, {len(data)} train grids")

    t0 = time.time()
    step, quantized, history, restarts, kmeans = 0, False, [], 0, {}
    warm_steps = None
    while True:
        elapsed = time.time() - t0
        frac = max(elapsed / args.vq_seconds, step / args.vq_max_steps)
        if frac >= 1:
            break
        if not quantized and frac >= args.vq_warm_frac:
            # Plain autoencoder until here; now seed the codebook with k-means of encoder vectors.
            with torch.no_grad():
                vecs = []
                for _ in range(args.kmeans_batches):
                    idx = torch.randint(len(data), (args.vq_batch,), generator=g, device=device)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        lat = model.Encoder(unpack(data[idx]))
                    vecs.append(model.latent_to_vectors(lat.float()).reshape(-1, cfg.embedding_dim))
                kmeans = quant.init_kmeans(torch.cat(vecs), iters=args.kmeans_iters, seed=args.seed)
            quantized, warm_steps = True, step
            log(f"vqvae: step {step}: k-means codebook init {kmeans}")
        lr = cosine_lr(args.vq_lr, frac, step, 100)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(data), (args.vq_batch,), generator=g, device=device)
        x = unpack(data[idx])
        logits, commit, z, codes, q = vq_forward(model, x, quant if quantized else None, amp)
        loss, bce, dice = recon_loss(logits, x, args.pos_weight, args.dice_weight)
        loss = loss + args.beta * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if quantized:
            quant.update(z, codes)
            if step % 50 == 0 and step > warm_steps + 50:
                restarts += quant.restart_dead(z, q, args.dead_threshold, g)
        step += 1
        if step % args.log_every == 0 or step == 1:
            with torch.no_grad():
                pred = logits > 0
                tr_iou = float(iou(pred, x > 0.5).mean())
                used = int((quant.usage > args.dead_threshold).sum()) if quantized else 0
            h = dict(step=step, t=round(time.time() - t0, 1), lr=lr, loss=loss.item(), bce=bce.item(),
                     dice=dice.item(), commit=commit.item(), train_iou=tr_iou, codes_alive=used)  # fmt: skip
            history.append(h)
            log("vqvae:", json.dumps(h))
    train_seconds = time.time() - t0
    if not quantized:
        raise RuntimeError("the VQ-VAE never reached its quantised phase; give it more steps or time")

    out = args.out / "vqvae.safetensors"
    model.eval()
    save_vqvae(model, out)
    log(f"vqvae: {step} steps in {train_seconds:.0f}s -> {out} ({out.stat().st_size / 1e6:.1f} MB)")
    # Held-out reconstruction with the saved file, in float32, exactly as the pipeline decodes.
    vq = load_vqvae(out, device=device)
    metrics = evaluate_reconstruction(vq, test_packed, device, args.eval_batch)
    metrics_train = evaluate_reconstruction(vq, train_packed[: len(test_packed)], device, args.eval_batch)
    log("vqvae: held-out", json.dumps(metrics))
    report.update("vqvae", {
        "config": cfg.to_dict(), "params": n_params, "file_bytes": out.stat().st_size,
        "sha256_16": file_sha(out), "seed": args.seed, "steps": step, "ae_warmup_steps": warm_steps,
        "seconds": round(train_seconds, 1), "batch": args.vq_batch, "lr": args.vq_lr,
        "loss": {"pos_weight": args.pos_weight, "dice_weight": args.dice_weight, "beta": args.beta},
        "ema_decay": args.vq_decay, "kmeans": kmeans, "dead_code_restarts": restarts,
        "heldout": metrics, "train_subset": metrics_train, "history": history,
        "data": {"train": len(train_packed), "test": len(test_packed)},
    })  # fmt: skip


@torch.no_grad()
def evaluate_reconstruction(vq: VQVAE3D, packed: np.ndarray, device, batch: int) -> dict:
    shell, solid, closed, codes_all = [], [], [], []
    for i in range(0, len(packed), batch):
        x = unpack(torch.from_numpy(packed[i : i + batch]).to(device)) > 0.5
        codes = vq.encode(x, batch_size=batch)
        pred = vq.decode(codes, batch_size=batch) > 0
        shell.append(iou(pred, x).cpu())
        solid.append(iou(fill_holes(pred), fill_holes(x)).cpu())
        closed.append(iou(mesh_solid(pred), mesh_solid(x)).cpu())
        codes_all.append(codes.cpu())
    shell, solid, closed = torch.cat(shell), torch.cat(solid), torch.cat(closed)
    codes = torch.cat(codes_all).flatten()
    counts = torch.bincount(codes, minlength=vq.config.num_embeddings).float()
    p = counts / counts.sum()
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    return {
        "n": len(shell),
        "shell_iou_mean": float(shell.mean()), "shell_iou_median": float(shell.median()),
        "shell_iou_ge_0.9": float((shell >= 0.9).float().mean()),
        "solid_iou_mean": float(solid.mean()), "solid_iou_median": float(solid.median()),
        "solid_iou_ge_0.9": float((solid >= 0.9).float().mean()),
        "mesh_solid_iou_mean": float(closed.mean()), "mesh_solid_iou_median": float(closed.median()),
        "mesh_solid_iou_ge_0.9": float((closed >= 0.9).float().mean()),
        "codes_used": int((counts > 0).sum()), "code_perplexity": perplexity,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# stage: encode
# ---------------------------------------------------------------------------------------------


def stage_encode(args, device, report: Report) -> None:
    path = args.out / "vqvae.safetensors"
    sha = file_sha(path)
    vq = load_vqvae(path, device=device)
    for split, limit in (("train", args.limit), ("test", args.test_limit)):
        dest = args.data / f"codes_{split}.npz"
        if dest.is_file():
            with np.load(dest) as z:
                if str(z["vqvae_sha"]) == sha and len(z["codes"]) == len(load_split(args.data / f"{split}.npz", limit)[1]):
                    log(f"encode: {dest} is current")
                    continue
        packed, _ = load_split(args.data / f"{split}.npz", limit)
        t = time.time()
        out = []
        with torch.no_grad():
            for i in range(0, len(packed), args.eval_batch):
                x = unpack(torch.from_numpy(packed[i : i + args.eval_batch]).to(device))
                out.append(vq.encode(x, batch_size=args.eval_batch).to(torch.int16).cpu())
        codes = torch.cat(out).numpy()
        np.savez(dest, codes=codes, vqvae_sha=np.asarray(sha))
        log(f"encode: {split}: {codes.shape} in {time.time() - t:.1f}s -> {dest}")


def load_codes(args, split: str) -> np.ndarray:
    with np.load(args.data / f"codes_{split}.npz") as z:
        if str(z["vqvae_sha"]) != file_sha(args.out / "vqvae.safetensors"):
            raise RuntimeError(f"codes_{split}.npz was made with another VQ-VAE; run the encode stage")
        return z["codes"].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# stage: policy
# ---------------------------------------------------------------------------------------------


def tokenizer_corpus(meta: list[dict]) -> list[str]:
    from ar3d.core import prompts

    corpus = [prompts.ONE_STEP, prompts.STEP1_PLAN, prompts.STEP2_VISUAL, "You are a helpful assistant."]
    for m in meta:
        corpus += [m["caption"], m["plan1"], m["plan2"]]
    return corpus


def chat_prompts(tok, messages: list[list[dict]], batch: int = 2048) -> list[list[int]]:
    """Prompt ids as Policy.prompt_ids makes them (apply_chat_template, generation prompt on)."""
    out = []
    for i in range(0, len(messages), batch):
        texts = tok.apply_chat_template(messages[i : i + batch], add_generation_prompt=True, tokenize=False)
        out += tok(texts, add_special_tokens=False)["input_ids"]
    return out


def build_sequences(tok, meta: list[dict], codes: np.ndarray):
    """All three formats for every sample -> (ids int32 [M, L] right-padded, lengths, prompt
    lengths, format index). Completion: plan <mesh-start> codes <mesh-end> <|im_end|>."""
    from ar3d.core.prompts import step_messages
    from ar3d.core.tokens import MeshVocab

    vocab = MeshVocab.from_tokenizer(tok)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    captions = [m["caption"].strip() for m in meta]
    msgs = {
        0: [step_messages(1, c, two_step=False) for c in captions],
        1: [step_messages(1, c, two_step=True) for c in captions],
        2: [step_messages(2, c, plan=m["plan1"], two_step=True) for c, m in zip(captions, meta)],
    }
    plans = {1: tok([m["plan1"].strip() for m in meta], add_special_tokens=False)["input_ids"],
             2: tok([m["plan2"].strip() for m in meta], add_special_tokens=False)["input_ids"]}  # fmt: skip
    # The batch path must give exactly what Policy.prompt_ids gives (tokenize=True).
    for f in msgs:
        ref = tok.apply_chat_template(msgs[f][0], add_generation_prompt=True, tokenize=True)
        ref = ref["input_ids"] if hasattr(ref, "keys") else ref
        assert list(ref) == chat_prompts(tok, msgs[f][:1])[0], "chat template batch path differs"
    rows, fmts = [], []
    for f in (0, 1, 2):
        prompt_ids = chat_prompts(tok, msgs[f])
        plan_ids = plans[1] if f < 2 else plans[2]
        for i in range(len(meta)):
            mesh = (codes[i] + vocab.code_offset).tolist()
            comp = [*plan_ids[i], vocab.start_id, *mesh, vocab.end_id, im_end]
            rows.append((prompt_ids[i], comp))
            fmts.append(f)
    lengths = np.array([len(p) + len(c) for p, c in rows])
    plens = np.array([len(p) for p, _ in rows])
    ids = np.full((len(rows), lengths.max()), tok.pad_token_id, dtype=np.int32)
    for r, (p, c) in enumerate(rows):
        ids[r, : len(p)] = p
        ids[r, len(p) : len(p) + len(c)] = c
    return ids, lengths, plens, np.array(fmts)


def policy_shape(args):
    from ar3d.core.factory import PolicyShape

    return PolicyShape(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=4096,
    )


def stage_policy(args, device, report: Report) -> None:
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from ar3d.core.factory import build_tokenizer, policy_config

    _, meta = load_split(args.data / "train.npz", args.limit)
    codes = load_codes(args, "train")
    t = time.time()
    tok = build_tokenizer(tokenizer_corpus(meta), bpe_vocab=args.bpe_vocab, num_codes=args.codes)
    ids, lengths, plens, fmts = build_sequences(tok, meta, codes)
    log(f"policy: tokenizer {len(tok)} tokens; {len(ids)} sequences, length {lengths.min()}..{lengths.max()} "
        f"(mean {lengths.mean():.0f}), prompts {plens.min()}..{plens.max()}; built in {time.time() - t:.0f}s")  # fmt: skip

    config = policy_config(tok, policy_shape(args))
    torch.manual_seed(args.seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    n_lm = sum(p.numel() for n, p in model.named_parameters() if "visual" not in n)
    log(f"policy: {n_params / 1e6:.2f} M params ({n_lm / 1e6:.2f} M language model + head), vocab {config.text_config.vocab_size}")

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")  # fmt: skip
    ids_t = torch.from_numpy(ids).to(device)
    len_t = torch.from_numpy(lengths).to(device)
    plen_t = torch.from_numpy(plens).to(device)
    weights = torch.tensor([args.format_weights[f] for f in fmts], dtype=torch.float, device=device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    amp = device.type == "cuda"
    history, tokens_seen, step = [], 0, 0
    t0 = time.time()
    while True:
        frac = max((time.time() - t0) / args.policy_seconds, step / args.policy_max_steps)
        if frac >= 1:
            break
        lr = cosine_lr(args.lr, frac, step, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.multinomial(weights, args.batch, replacement=True, generator=g)
        width = int(len_t[idx].max())
        x = ids_t[idx, :width].long()
        pos = torch.arange(1, width, device=device)[None, :]
        mask = (pos >= plen_t[idx, None]) & (pos < len_t[idx, None])  # targets in the completion
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            # Right padding and no attention mask: causal attention never lets a real token see a
            # pad (pads come after it), positions are 0..T-1 as in generation, and SDPA can use
            # its fused causal kernel.
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits[mask].float(), x[:, 1:][mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += int(args.batch * width)
        if step % args.log_every == 0 or step == 1:
            h = dict(step=step, t=round(time.time() - t0, 1), lr=lr, loss=float(loss), grad_norm=float(gn),
                     tokens=tokens_seen, tok_per_s=round(tokens_seen / (time.time() - t0)))  # fmt: skip
            history.append(h)
            log("policy:", json.dumps(h))
    seconds = time.time() - t0

    model.eval()
    model.to(torch.bfloat16)  # ship bf16 weights (half the bytes); Policy.load casts to its dtype
    model.generation_config = GenerationConfig(
        eos_token_id=config.text_config.eos_token_id, pad_token_id=config.text_config.pad_token_id
    )
    vq_path = args.out / "vqvae.safetensors"
    vq_bytes = vq_path.read_bytes()
    model.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    if not vq_path.is_file() or vq_path.read_bytes() != vq_bytes:  # save_pretrained must leave it alone
        vq_path.write_bytes(vq_bytes)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    log(f"policy: {step} steps, {tokens_seen / 1e6:.1f} M tokens in {seconds:.0f}s; folder {size / 1e6:.1f} MB")
    fmt_counts = {FORMATS[f]: int((fmts == f).sum()) for f in range(3)}
    report.update("policy", {
        "shape": vars(policy_shape(args)), "params": n_params, "params_language": n_lm,
        "tokenizer": {"bpe_vocab": args.bpe_vocab, "len": len(tok), "mesh_codes": args.codes},
        "vocab_size": config.text_config.vocab_size, "seed": args.seed, "steps": step,
        "seconds": round(seconds, 1), "tokens": tokens_seen, "batch": args.batch, "lr": args.lr,
        "warmup": args.warmup, "schedule": "linear warmup, cosine to 10% over the time budget",
        "optimizer": "AdamW(0.9, 0.95), wd 0.1 (not on norms/biases), clip 1.0, bf16 autocast",
        "format_weights": dict(zip(FORMATS, args.format_weights)), "sequences": fmt_counts,
        "sequence_length": {"min": int(lengths.min()), "max": int(lengths.max()), "mean": float(lengths.mean())},
        "final_loss": history[-1]["loss"] if history else None, "history": history, "folder_bytes": size,
    })  # fmt: skip


# ---------------------------------------------------------------------------------------------
# stage: eval
# ---------------------------------------------------------------------------------------------

_POOL_STATE: dict = {}


def _judge_chunk(args):
    """(families, IoU, attributes read, strict attributes read, quality) for a chunk of grids;
    runs in a worker process. Quality is judged before and after the delivered mesh's relative
    debris removal ("raw" / "delivered", see ar3d.procedural.quality)."""
    from ar3d.core.mesh import MeshConfig
    from ar3d.procedural.evaluate import check_attributes, classify_batch
    from ar3d.procedural.quality import QualityConfig, assess
    from ar3d.procedural.strict import check_attributes_strict

    grids, fams, attrs_wanted = args
    pred, best = classify_batch(list(grids), _POOL_STATE["refs"])
    attrs, strict, quality = [], [], []
    delivered = QualityConfig(mesh=MeshConfig())
    for g, f, want in zip(grids, fams, attrs_wanted):
        try:
            attrs.append(check_attributes(f, g) if g.any() else None)
        except Exception:  # a degenerate grid the checker cannot read counts as wrong
            attrs.append(None)
        try:
            strict.append(check_attributes_strict(f, g))
        except Exception:
            strict.append(None)
        quality.append({"raw": assess(g, f, want).to_dict(), "delivered": assess(g, f, want, delivered).to_dict()})
    return pred, best.tolist(), attrs, strict, quality


def judge(grids: np.ndarray, families: list[str], refs, workers: int, attributes: list[dict] | None = None,
          full: bool = False):  # fmt: skip
    """classify_batch + check_attributes (+ strict checkers and mesh quality) on many grids, in
    processes. Returns (families, IoU, attributes), or with ``full`` also (strict, quality)."""
    _POOL_STATE["refs"] = refs
    attributes = attributes if attributes is not None else [{} for _ in families]
    chunk = max(1, -(-len(grids) // max(1, workers * 2)))
    jobs = [(grids[i : i + chunk], families[i : i + chunk], attributes[i : i + chunk])
            for i in range(0, len(grids), chunk)]  # fmt: skip
    results = None
    if workers > 1:
        try:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                results = list(pool.map(_judge_chunk, jobs))
        except Exception as e:  # fall back to one process
            log(f"eval: process pool failed ({type(e).__name__}: {e}); judging serially")
    if results is None:
        results = [_judge_chunk(j) for j in jobs]
    pred, best, attrs, strict, quality = [], [], [], [], []
    for p, b, a, st, q in results:
        pred += p
        best += b
        attrs += a
        strict += st
        quality += q
    if full:
        return pred, np.array(best), attrs, strict, quality
    return pred, np.array(best), attrs


def score(meta: list[dict], pred: list[str], attrs: list, strict: list | None = None,
          quality: list | None = None) -> dict:  # fmt: skip
    """Family and attribute accuracy; with ``strict`` and ``quality`` (from ``judge(full=True)``)
    also strict attribute accuracy and the share of meshes with unwanted holes or fragments."""
    from ar3d.procedural.evaluate import CHECKERS

    fams = [m["family"] for m in meta]
    acc = float(np.mean([p == f for p, f in zip(pred, fams)]))
    per_family: dict = {}
    for p, f in zip(pred, fams):
        per_family.setdefault(f, []).append(p == f)
    per_attr: dict = {}
    for i, m in enumerate(meta):
        for k in CHECKERS.get(m["family"], {}):  # every checkable attribute; unreadable = wrong
            name = f"{m['family']}.{k}"
            got = (attrs[i] or {}).get(k, None)
            per_attr.setdefault(name, []).append(got == m["attributes"].get(k))
    novel = [m.get("novel_combo", False) for m in meta]
    out = {
        "n": len(meta),
        "family_accuracy": acc,
        "family_accuracy_novel_combos": float(np.mean([p == f for p, f, n in zip(pred, fams, novel) if n]))
        if any(novel) else None,
        "per_family": {f: round(float(np.mean(v)), 3) for f, v in sorted(per_family.items())},
        "attribute_accuracy_mean": float(np.mean([np.mean(v) for v in per_attr.values()])) if per_attr else None,
        "attribute_checks": int(sum(len(v) for v in per_attr.values())),
        "per_attribute": {k: round(float(np.mean(v)), 3) for k, v in sorted(per_attr.items())},
    }  # fmt: skip
    if strict is not None:
        from ar3d.procedural.strict import STRICT_CHECKERS

        per_strict: dict = {}
        for i, m in enumerate(meta):
            for k in STRICT_CHECKERS.get(m["family"], {}):  # unreadable (None) = wrong
                got = (strict[i] or {}).get(k, None)
                per_strict.setdefault(f"{m['family']}.{k}", []).append(got == m["attributes"].get(k))
        out["strict_attribute_accuracy_mean"] = float(np.mean([np.mean(v) for v in per_strict.values()])) if per_strict else None
        out["strict_per_attribute"] = {k: round(float(np.mean(v)), 3) for k, v in sorted(per_strict.items())}
    if quality is not None:
        out["quality"] = {}
        for which in ("raw", "delivered"):
            qs = [q[which] for q in quality]
            share = lambda cond: round(float(np.mean([cond(q) for q in qs])), 4)  # noqa: E731
            out["quality"][which] = {
                "defective": share(lambda q: not q["clean"]),
                "unwanted_holes": share(lambda q: q["unwanted_holes"] > 0),
                "fragments": share(lambda q: q["fragments"] > 0),
                "perforated": share(lambda q: q["perforated"]),
                "missing_holes": share(lambda q: q["missing_holes"] > 0),
                "empty": share(lambda q: q["empty"]),
                "score_mean": round(float(np.mean([q["score"] for q in qs])), 4),
            }
    return out


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
                     "precision": policy.precision}  # fmt: skip
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

    def decode(codes: np.ndarray) -> np.ndarray:
        occ = []
        with torch.no_grad():
            for i in range(0, len(codes), args.eval_batch):
                c = torch.from_numpy(codes[i : i + args.eval_batch]).to(device)
                occ.append(vq.decode_occupancy(c, batch_size=args.eval_batch)[:, 0].cpu().numpy())
        return np.concatenate(occ)

    prompts = [m["caption"].strip() for m in meta]
    fams = [m["family"] for m in meta]
    t = time.time()
    codes1, plans1, secs1 = generate(prompts, two_step=False)
    log(f"eval: one-step generation of {n} in {secs1:.0f}s")
    occ1 = decode(codes1[:, -1])
    gt = np.unpackbits(test_packed, axis=1, count=RES**3).reshape(n, RES, RES, RES).astype(bool)
    with torch.no_grad():
        recon = decode(np.concatenate([vq.encode(torch.from_numpy(gt[i : i + args.eval_batch]).to(device)).cpu().numpy()
                                       for i in range(0, n, args.eval_batch)]))  # fmt: skip

    saved = {"codes_one_step": codes1[:, -1].astype(np.int16)}
    try:
        import ar3d.procedural.evaluate  # noqa: F401  (needs scipy and trimesh)

        judge_ok = True
    except Exception as e:
        judge_ok = False
        log(f"eval: cannot import the judge ({type(e).__name__}: {e}); saving codes only")
    wanted = [m["attributes"] for m in meta]
    if judge_ok:
        gt_pred, _, gt_attrs, gt_strict, gt_q = judge(gt, fams, refs, args.workers, wanted, full=True)
        results["ground_truth"] = score(meta, gt_pred, gt_attrs, gt_strict, gt_q)
        rc_pred, _, rc_attrs, rc_strict, rc_q = judge(recon, fams, refs, args.workers, wanted, full=True)
        results["vqvae_reconstruction"] = score(meta, rc_pred, rc_attrs, rc_strict, rc_q)
        p1, best1, a1, s1, q1 = judge(occ1, fams, refs, args.workers, wanted, full=True)
        results["one_step"] = score(meta, p1, a1, s1, q1)
        # The same, counted only on attributes the checker reads right on the ground truth.
        results["one_step"]["attribute_accuracy_where_checker_right_on_gt"] = _conditional(meta, a1, gt_attrs)
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
        results["examples_two_step"] = [{"prompt": prompts[i], "plans": plans2[i]} for i in range(min(3, m2))]
    results["one_step_seconds"] = secs1
    results["examples_one_step"] = [{"prompt": prompts[i], "family": fams[i], "plan": plans1[i][0]} for i in range(min(5, n))]
    results["seconds"] = round(time.time() - t, 1)
    report.update("eval", results)
    if args.save_eval:
        np.savez_compressed(args.save_eval, **saved, families=np.asarray(fams, dtype=str))
    log(f"eval: done in {results['seconds']}s")


def _conditional(meta, attrs, gt_attrs) -> float | None:
    hits = []
    for m, a, g in zip(meta, attrs, gt_attrs):
        for k, v in (g or {}).items():
            if v == m["attributes"].get(k):
                hits.append((a or {}).get(k) == v)
    return float(np.mean(hits)) if hits else None


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", default="vqvae,encode,policy,eval")
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--out", type=Path, default=Path("models/demo"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--limit", type=int, default=None, help="use the first N training samples")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of every stage into /tmp/ar3d_demo_smoke")
    # references for the judge
    ap.add_argument("--refs-per-family", type=int, default=60)
    ap.add_argument("--refs-seed", type=int, default=10_000)
    # VQ-VAE
    ap.add_argument("--codes", type=int, default=1024, help="codebook size = mesh tokens")
    ap.add_argument("--vq-enc", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--vq-dec", type=int, nargs="+", default=[64, 32, 16])
    ap.add_argument("--vq-res-blocks", type=int, default=1)
    ap.add_argument("--vq-mid-blocks", type=int, default=2)
    ap.add_argument("--vq-seconds", type=float, default=300)
    ap.add_argument("--vq-max-steps", type=int, default=100_000)
    ap.add_argument("--vq-batch", type=int, default=32)
    ap.add_argument("--vq-lr", type=float, default=1e-3)
    ap.add_argument("--vq-warm-frac", type=float, default=0.15, help="plain-autoencoder share of the budget")
    ap.add_argument("--vq-decay", type=float, default=0.99)
    ap.add_argument("--kmeans-batches", type=int, default=4)
    ap.add_argument("--kmeans-iters", type=int, default=20)
    ap.add_argument("--dead-threshold", type=float, default=0.05)
    ap.add_argument("--pos-weight", type=float, default=2.0)
    ap.add_argument("--dice-weight", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=0.25, help="commitment loss weight")
    ap.add_argument("--eval-batch", type=int, default=64)
    # policy
    ap.add_argument("--bpe-vocab", type=int, default=1536)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--policy-seconds", type=float, default=330)
    ap.add_argument("--policy-max-steps", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--format-weights", type=float, nargs=3, default=[0.5, 0.25, 0.25],
                    help="sampling weights of one-step, two-step step 1, two-step step 2")  # fmt: skip
    # eval
    ap.add_argument("--eval-n", type=int, default=1000)
    ap.add_argument("--eval-two-step-n", type=int, default=200)
    ap.add_argument("--eval-seed", type=int, default=1234)
    ap.add_argument("--eval-max-plan", type=int, default=None)
    ap.add_argument("--precision", default="default", help="eval: fp8 / int8 weights (core/quantize.py; GPU)")
    ap.add_argument("--gen-batch", type=int, default=1000)
    ap.add_argument("--save-eval", type=Path, default=None, help="npz of generated codes")
    args = ap.parse_args(argv)
    if args.smoke:
        # Never touch the shipped model: smoke runs write elsewhere unless told where.
        if args.out == ap.get_default("out"):
            args.out = Path("/tmp/ar3d_demo_smoke/model")
        if args.data == ap.get_default("data"):
            args.data = Path(os.environ.get("SMOKE_DATA", "/tmp/ar3d_demo_smoke/data"))
        args.device = args.device or "cpu"
        args.stages = "vqvae,encode,policy,eval" if args.stages == ap.get_default("stages") else args.stages
        args.vq_enc, args.vq_dec, args.vq_mid_blocks = [4, 8, 8], [8, 8, 4], 1
        args.vq_seconds, args.vq_max_steps, args.vq_batch = 600, 6, 2
        args.kmeans_batches, args.kmeans_iters, args.codes = 1, 3, 64
        args.hidden, args.layers, args.heads, args.kv_heads, args.intermediate = 64, 2, 4, 2, 128
        args.policy_seconds, args.policy_max_steps, args.batch, args.bpe_vocab = 600, 6, 2, 400
        args.eval_n, args.eval_two_step_n, args.gen_batch, args.eval_max_plan = 2, 1, 2, 8
        args.log_every, args.eval_batch, args.workers, args.warmup = 2, 2, 1, 2
        args.refs_per_family = 2
    return args


def make_smoke_data(args) -> None:
    """Tiny train/test files and judge references for --smoke, made once (seconds)."""
    from ar3d.procedural import generate_dataset, write_dataset

    for split, n, seed in (("train", 16, 1), ("test", 4, 2)):
        if not (args.data / f"{split}.npz").is_file():
            write_dataset(args.data / f"{split}.npz", generate_dataset(n, split, seed=seed), jsonl=False)
    if not (args.data / "refs.npz").is_file():
        stage_refs(args, None)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    args.data.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        make_smoke_data(args)
    report = Report(args.out / "training_report.json")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - {"refs", "vqvae", "encode", "policy", "eval"}
    if unknown:
        raise SystemExit(f"unknown stages {sorted(unknown)}")
    runs = report.data.get("runs", [])
    runs.append({"argv": sys.argv[1:], "stages": stages, "env": environment(device),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})  # fmt: skip
    report.update("runs", runs)
    for name in ("refs", "vqvae", "encode", "policy", "eval"):
        if name in stages:
            t = time.time()
            log(f"=== {name}")
            {"refs": lambda: stage_refs(args, report), "vqvae": lambda: stage_vqvae(args, device, report),
             "encode": lambda: stage_encode(args, device, report), "policy": lambda: stage_policy(args, device, report),
             "eval": lambda: stage_eval(args, device, report)}[name]()  # fmt: skip
            log(f"=== {name} done in {time.time() - t:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
