"""prompt → plan + codes (policy) → occupancy (VQ-VAE) → mesh: the whole chain in one call.

The CLI, the server and the trainer all go through `TextTo3D`, so a mesh made anywhere in ar3d
is made the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .engine import GenerationCancelled, SamplingConfig
from .errors import Ar3dError
from .hub import resolve_vqvae
from .mesh import MeshConfig, mesh_or_reason
from .policy import GenerationResult, Policy, Sample
from .vqvae import VQVAE3D, load_vqvae


class MismatchedModelsError(Ar3dError, ValueError):
    """The policy's mesh vocabulary and the VQ-VAE's codebook differ in size."""


@dataclass
class MeshResult:
    sample: Sample
    occupancy: np.ndarray  # bool [64, 64, 64], (x, y, z), z-up: the decoded surface shell
    mesh: object | None  # trimesh.Trimesh in ar3d's z-up unit cube; None when degenerate
    error: str | None = None  # why there is no mesh (e.g. an empty decoded grid)
    coarse_occupancy: np.ndarray | None = None  # two-step only: the step-1 shape
    coarse_mesh: object | None = None


@dataclass
class PipelineOutput:
    results: list[MeshResult]
    generation: GenerationResult
    timings: dict = field(default_factory=dict)


class TextTo3D:
    def __init__(self, policy: Policy, vqvae: VQVAE3D, mesh_config: MeshConfig | None = None, vqvae_path: str = ""):
        self.policy, self.vqvae, self.mesh_config = policy, vqvae, mesh_config or MeshConfig()
        self.vqvae_path = vqvae_path
        if vqvae.config.num_embeddings != policy.vocab.num_codes:
            raise MismatchedModelsError(
                f"the VQ-VAE has {vqvae.config.num_embeddings} codes but the policy writes "
                f"{policy.vocab.num_codes}: they are not a pair. Use the VQ-VAE that belongs to the model."
            )

    @classmethod
    def load(cls, model=None, vqvae=None, device: str | None = None, dtype=None, mesh_config=None,
             engine: str | None = None, precision: str | None = None) -> "TextTo3D":  # fmt: skip
        policy = Policy.load(model, device=device, dtype=dtype, engine=engine, precision=precision)
        vqvae_path = resolve_vqvae(vqvae, policy.path)
        device = policy.model.device
        # The released blocks are fp16; on a GPU run them so (norms stay fp32), on a CPU in fp32.
        vq = load_vqvae(vqvae_path, device=device, dtype=torch.float16 if device.type == "cuda" else None)
        return cls(policy, vq, mesh_config, str(vqvae_path))

    def decode(self, codes: np.ndarray, should_stop=None) -> np.ndarray:
        """Codes [N, 1024] → bool occupancy [N, 64, 64, 64]. With `should_stop`, a cancel stops the
        decoder between two of its layers (a decode takes seconds on a busy CPU)."""
        codes_t = torch.as_tensor(np.asarray(codes).reshape(-1, self.vqvae.config.tokens), dtype=torch.long)
        handles = []
        if should_stop is not None:

            def stop_here(module, args):
                if should_stop():
                    raise GenerationCancelled("generation cancelled")

            handles = [m.register_forward_pre_hook(stop_here) for m in self.vqvae.Decoder.modules()]
        try:
            with torch.inference_mode():
                occ = self.vqvae.decode_occupancy(codes_t.to(self.vqvae.device))
        finally:
            for h in handles:
                h.remove()
        return occ.reshape(occ.shape[0], *occ.shape[-3:]).cpu().numpy()

    def mesh(self, occupancy: np.ndarray, mesh_config: MeshConfig | None = None):
        """Occupancy → (mesh, None), or (None, reason) when the shape is degenerate."""
        return mesh_or_reason(occupancy, mesh_config or self.mesh_config)

    def generate(self, prompts, samples: int = 1, two_step: bool = False, sampling: SamplingConfig | None = None,
                 seed: int | None = None, progress=None, should_stop=None,
                 mesh_config: MeshConfig | None = None) -> PipelineOutput:  # fmt: skip
        """``mesh_config`` overrides the pipeline's for this call (e.g. a server job's smoothing)."""
        gen = self.policy.generate(prompts, samples, two_step, sampling, seed, progress, should_stop)

        def check():  # a cancel lands between samples too, not only between tokens
            if should_stop is not None and should_stop():
                raise GenerationCancelled("generation cancelled")

        t0 = time.perf_counter()
        final = self.decode(np.stack([s.codes for s in gen.samples]), should_stop)
        coarse = self.decode(np.stack([s.steps[0].codes for s in gen.samples]), should_stop) if two_step else None
        t1 = time.perf_counter()
        results = []
        for i, sample in enumerate(gen.samples):
            check()
            mesh, error = self.mesh(final[i], mesh_config)
            r = MeshResult(sample, final[i], mesh, error)
            if coarse is not None:
                r.coarse_occupancy = coarse[i]
                r.coarse_mesh, _ = self.mesh(coarse[i], mesh_config)
            results.append(r)
        t2 = time.perf_counter()
        timings = dict(gen.timings, generate_seconds=gen.seconds, decode_seconds=t1 - t0, mesh_seconds=t2 - t1)
        return PipelineOutput(results, gen, timings)
