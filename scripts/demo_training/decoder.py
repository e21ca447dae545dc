"""The ``decoder`` stage: make the VQ-VAE's decoder robust to the code errors a sampling policy makes.

Why: the decoder was trained on the encoder's codes only, and it is brittle off them. Replacing
2% of a held-out shape's 1,024 codes by random ones turns 5% defective reconstructions into 55%
spongy shells with tunnels (5% of codes: 80%), and the policy's sampled meshes are defective at
about that rate (41%, models/demo/MODEL_CARD.md). So the decoder is fine-tuned to map *corrupted*
codes of a training shape back to that shape, while the encoder and the codebook stay frozen:
every token keeps its meaning, the policy needs no retraining, and the codes cached by the
``encode`` stage stay valid (their VQ-VAE hash is re-stamped: the encoder is checked unchanged).

Corruption, per training sample (``--decoder-noise``):

* ``random``: a rate r ~ U(0, ``--decoder-random-max``) of codes replaced by uniform random codes;
* ``policy``: the policy's own alternatives. Teacher-forced on the shape's true codes (one-step
  prompt and plan), the policy draws a code at every position with the evaluation's sampling
  (temperature 0.7, top-p 0.7, `core.device_sampling`); a share q ~ U(0, 1) of the positions where
  its draw differs from the truth take the draw. These are the confusions the policy really makes;
* ``mixed`` (default): half of the corrupted samples each way.

``--decoder-clean-frac`` of the samples stay clean, so reconstruction of exact codes is kept.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from ar3d.core.vqvae import load_vqvae, save_vqvae

from .data import file_sha, load_split
from .report import Report, log
from .voxels import unpack
from .vqvae import evaluate_reconstruction, recon_loss


@torch.no_grad()
def policy_proposals(args, device, codes: np.ndarray, meta: list[dict]) -> np.ndarray:
    """[N, tokens] codes the policy draws at each position, teacher-forced on the true codes."""
    from ar3d.core.device_sampling import sample_tokens
    from ar3d.core.engine import SamplingConfig
    from ar3d.core.policy import Policy

    from .policy import build_sequences

    policy = Policy.load(str(args.out), device=str(device))
    model, tok = policy.model, policy.tokenizer
    vocab = policy.vocab
    sampling = SamplingConfig()
    temperature = torch.tensor(sampling.temperature, device=device)
    top_p = torch.tensor(sampling.top_p, device=device)
    ids, lengths, _, fmts = build_sequences(tok, meta, codes)
    keep = fmts == 0  # the one-step format: prompt, plan1, <mesh-start>, codes, <mesh-end>, <|im_end|>
    ids, lengths = ids[keep], lengths[keep]
    n_tok = codes.shape[1]
    first_code = lengths - n_tok - 2  # position of the first code in each row
    out = np.empty_like(codes)
    torch.manual_seed(args.seed)  # the sampler draws from the global generator
    for i in range(0, len(ids), args.decoder_batch):
        rows = torch.from_numpy(ids[i : i + args.decoder_batch].astype(np.int64)).to(device)
        logits = model(input_ids=rows).logits  # [B, T, V]
        start = torch.from_numpy(first_code[i : i + len(rows)]).to(device)
        pos = start[:, None] - 1 + torch.arange(n_tok, device=device)[None]  # logits that predict each code
        picked = logits[torch.arange(len(rows), device=device)[:, None], pos]  # [B, tokens, V]
        picked = picked[..., vocab.code_offset : vocab.code_offset + vocab.num_codes].float()
        draw, _ = sample_tokens(picked.reshape(-1, vocab.num_codes), sampling, temperature, top_p)
        out[i : i + len(rows)] = draw.view(len(rows), n_tok).cpu().numpy()
    return out


def corrupt(codes: torch.Tensor, proposals: torch.Tensor | None, num_codes: int, args, g: torch.Generator) -> torch.Tensor:
    """A corrupted copy of a batch of codes [B, tokens] (see the module docstring)."""
    b, n = codes.shape
    dev = codes.device
    u = torch.rand(b, 1, generator=g, device=dev)
    clean = torch.rand(b, 1, generator=g, device=dev) < args.decoder_clean_frac
    use_policy = {"random": False, "policy": True}.get(args.decoder_noise)
    if use_policy is None:  # mixed
        use_policy = torch.rand(b, 1, generator=g, device=dev) < 0.5
    else:
        use_policy = torch.full((b, 1), use_policy, device=dev)
    if proposals is None:
        use_policy = torch.zeros_like(use_policy)
    rand_mask = torch.rand(b, n, generator=g, device=dev) < u * args.decoder_random_max
    rand_codes = torch.randint(0, num_codes, (b, n), generator=g, device=dev)
    out = torch.where(rand_mask & ~use_policy, rand_codes, codes)
    if proposals is not None:
        take = torch.rand(b, n, generator=g, device=dev) < u
        out = torch.where(take & use_policy, proposals, out)
    return torch.where(clean, codes, out)


@torch.no_grad()
def corrupted_defects(vq, packed: np.ndarray, meta: list[dict], device, rate: float, seed: int) -> dict:
    """Defective share of held-out reconstructions with `rate` of the codes replaced at random."""
    from ar3d.procedural.quality import assess, summarize

    g = torch.Generator(device=device).manual_seed(seed)
    qs = []
    for i in range(0, len(packed), 64):
        x = unpack(torch.from_numpy(packed[i : i + 64]).to(device)) > 0.5
        codes = vq.encode(x, batch_size=64)
        mask = torch.rand(codes.shape, generator=g, device=device) < rate
        codes = torch.where(mask, torch.randint(0, vq.config.num_embeddings, codes.shape, generator=g, device=device), codes)
        occ = vq.decode_occupancy(codes, batch_size=64)[:, 0].cpu().numpy()
        qs += [assess(o, m["family"], m.get("attributes")) for o, m in zip(occ, meta[i : i + 64])]
    s = summarize(qs)
    return {k: s[k] for k in ("n", "defective", "unwanted_holes", "fragments", "missing_holes")}


def stage_decoder(args, device, report: Report) -> None:
    from .encode import load_codes

    path = args.out / "vqvae.safetensors"
    vq = load_vqvae(path, device=device)
    train_packed, train_meta = load_split(args.data / "train.npz", args.limit)
    test_packed, test_meta = load_split(args.data / "test.npz", args.test_limit)
    test_packed, test_meta = test_packed[: args.decoder_eval_n], test_meta[: args.decoder_eval_n]
    codes = load_codes(args, "train")
    before = {"reconstruction": evaluate_reconstruction(vq, test_packed, device, args.eval_batch)}
    try:  # the judge's quality measure needs scipy (ar3d.procedural.quality)
        before["defects"] = {f"random_{r:g}": corrupted_defects(vq, test_packed, test_meta, device, r, args.seed)
                             for r in (0.0, 0.02)}  # fmt: skip
    except ImportError as e:
        log(f"decoder: no quality measure ({e}); defects not measured")
    log("decoder: before", json.dumps(before))

    t = time.time()
    proposals = differ = None
    if args.decoder_noise != "random":
        proposals = policy_proposals(args, device, codes, train_meta)
        differ = float((proposals != codes).mean())
        log(f"decoder: policy proposals for {len(codes)} shapes in {time.time() - t:.0f}s; they differ from the "
            f"true code at {differ:.1%} of positions")  # fmt: skip
    encoder_state = {k: v.clone() for k, v in vq.state_dict().items() if not k.startswith("Decoder.")}
    params = list(vq.Decoder.parameters())
    for p in vq.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    vq.Decoder.train()
    opt = torch.optim.AdamW(params, lr=args.decoder_lr, betas=(0.9, 0.99), weight_decay=0.0)
    data = torch.from_numpy(train_packed).to(device)
    codes_t = torch.from_numpy(codes).to(device)
    prop_t = None if proposals is None else torch.from_numpy(proposals.astype(np.int64)).to(device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    amp = device.type == "cuda"
    t0, step, history = time.time(), 0, []
    while time.time() - t0 < args.decoder_seconds and step < args.decoder_max_steps:
        frac = (time.time() - t0) / args.decoder_seconds
        for group in opt.param_groups:
            warm = min(1.0, (step + 1) / 100)  # a trained decoder: no full-size Adam steps before the moments settle
            group["lr"] = warm * args.decoder_lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, frac))))
        idx = torch.randint(len(data), (args.vq_batch,), generator=g, device=device)
        x = unpack(data[idx])
        c = corrupt(codes_t[idx], None if prop_t is None else prop_t[idx], vq.config.num_embeddings, args, g)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = vq.Decoder(vq.vectors_to_latent(vq.vq.embeddings(c))).float()
        loss, bce, dice = recon_loss(logits, x, args.pos_weight, args.dice_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == 1:
            h = dict(step=step, t=round(time.time() - t0, 1), loss=loss.item(), bce=bce.item(), dice=dice.item())
            history.append(h)
            log("decoder:", json.dumps(h))
    vq.eval()
    for k, v in vq.state_dict().items():  # the tokens' meaning must not have moved
        if k in encoder_state and not torch.equal(v, encoder_state[k]):
            raise RuntimeError(f"decoder stage changed {k}: only the decoder may train")
    old_sha = file_sha(path)
    save_vqvae(vq, path)
    new_sha = file_sha(path)
    for split in ("train", "test"):  # same encoder and codebook: the cached codes are still this VQ-VAE's
        dest = args.data / f"codes_{split}.npz"
        if dest.is_file():
            with np.load(dest) as z:
                if str(z["vqvae_sha"]) == old_sha:
                    np.savez(dest, codes=z["codes"], vqvae_sha=np.asarray(new_sha))
    vq = load_vqvae(path, device=device)
    after = {"reconstruction": evaluate_reconstruction(vq, test_packed, device, args.eval_batch)}
    if "defects" in before:
        after["defects"] = {f"random_{r:g}": corrupted_defects(vq, test_packed, test_meta, device, r, args.seed)
                            for r in (0.0, 0.02)}  # fmt: skip
    log("decoder: after", json.dumps(after))
    report.update("decoder", {
        "noise": args.decoder_noise, "seconds": round(time.time() - t0, 1), "steps": step, "lr": args.decoder_lr,
        "clean_frac": args.decoder_clean_frac, "random_max": args.decoder_random_max, "batch": args.vq_batch,
        "policy_proposals_differ": differ,
        "heldout_before": before, "heldout_after": after, "history": history, "sha256_16": new_sha,
    })  # fmt: skip
