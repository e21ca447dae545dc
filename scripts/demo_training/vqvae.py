"""The ``vqvae`` stage: train the small VQ-VAE (plain autoencoder first, then straight-through VQ
on a k-means-initialised EMA codebook) and measure its held-out reconstruction."""

from __future__ import annotations

import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from ar3d.core.vqvae import VQVAE3D, VQVAEConfig, load_vqvae, save_vqvae

from .data import RES, file_sha, load_split
from .quantizer import EMAQuantizer
from .report import Report, log
from .schedule import cosine_lr
from .voxels import fill_holes, iou, mesh_solid, unpack


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
