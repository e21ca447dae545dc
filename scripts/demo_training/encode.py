"""The ``encode`` stage: every sample's grid -> VQ-VAE codes, cached next to the data and tied to
the VQ-VAE file by its hash so that the policy never trains on codes of another VQ-VAE."""

from __future__ import annotations

import time

import numpy as np
import torch

from ar3d.core.vqvae import load_vqvae

from .data import file_sha, load_split
from .report import Report, log
from .voxels import unpack


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
