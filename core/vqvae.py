"""The 3D VQ-VAE that turns 64³ occupancy grids into 1024 mesh codes and back.

ar3d's own implementation of the public ShapeLLM-Omni VQ-VAE (the TRELLIS sparse-structure VAE
layout plus a codebook). Module and parameter names mirror the released ``3DVQVAE.bin`` so that
it loads with ``strict=True``; everything else (validation, batching, precision, file handling)
is ar3d's.

Layout, as the checkpoint fixes it (default widths)::

    encode: voxels [B,1,64³] → Conv3d(1→32) → ResBlocks/Down (32→128→512) → middle ResBlocks
            → norm, SiLU, Conv3d(512→16); keep the first 8 channels → latent [B,8,16³]
    tokens: latent → [B,16,16,16,8] (channels last) → flat → [B,1024,32] → nearest code
    decode: codes → embeddings → [B,16,16,16,8] → [B,8,16³] → Conv3d(8→512) → middle ResBlocks
            → ResBlocks/Up (512→128→32) → norm, SiLU, Conv3d(32→1) → logits [B,1,64³]

Token ``t`` therefore covers latent cell ``x = t // 64, y = (t // 4) % 16`` (axes in tensor order)
and the four z cells ``4 * (t % 4) .. 4 * (t % 4) + 3``; its 32 numbers are (z offset, channel).

Precision: float32 everywhere by default. On CUDA, :meth:`VQVAE3D.to_inference_dtype` runs the
ResBlock/Down/Up convolutions in float16 or bfloat16, as the released weights were stored;
channel LayerNorms, the input/output convolutions and the codebook always stay float32.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .errors import Ar3dError

__all__ = [
    "VQVAEConfig",
    "VQVAE3D",
    "VQVAELoadError",
    "load_vqvae",
    "save_vqvae",
]

PathLike = str | os.PathLike


class VQVAELoadError(Ar3dError, RuntimeError):
    """A weights file could not be read, or does not fit the model it was loaded into."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VQVAEConfig:
    """Widths and sizes of the VQ-VAE; the defaults are those of the released ``3DVQVAE.bin``.

    Attributes:
        num_embeddings: codebook size; mesh token ``<mesh{i}>`` is code ``i``.
        embedding_dim: length of one code vector.
        latent_channels: channels of the latent grid (the encoder emits twice as many and
            keeps the first half, the "mean" of the original VAE).
        encoder_channels: width of each encoder stage; a Down (×½) sits between stages.
        decoder_channels: width of each decoder stage; an Up (×2) sits between stages.
        num_res_blocks: ResBlocks per stage.
        num_res_blocks_middle: ResBlocks at the bottleneck, in encoder and decoder alike.
        resolution: side of the occupancy grid.
        tokens: codes per shape; must equal latent cells × latent_channels / embedding_dim.
        decode_threshold: a voxel is occupied where the decoder's logit exceeds it. 0 is the
            public code's choice; a lower value thickens shells (fewer holes, more merged parts).
            It travels in the weights' config because it belongs to a decoder: the demo's robust
            decoder ships −2 (MODEL_CARD.md, "Decoding threshold").
    """

    num_embeddings: int = 8192
    embedding_dim: int = 32
    latent_channels: int = 8
    encoder_channels: tuple[int, ...] = (32, 128, 512)
    decoder_channels: tuple[int, ...] = (512, 128, 32)
    num_res_blocks: int = 2
    num_res_blocks_middle: int = 2
    resolution: int = 64
    tokens: int = 1024
    decode_threshold: float = 0.0

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise lists from JSON into tuples so configs compare and hash.
        object.__setattr__(self, "encoder_channels", tuple(int(c) for c in self.encoder_channels))
        object.__setattr__(self, "decoder_channels", tuple(int(c) for c in self.decoder_channels))
        object.__setattr__(self, "decode_threshold", float(self.decode_threshold))
        if not math.isfinite(self.decode_threshold):
            raise ValueError(f"decode_threshold must be a finite logit, got {self.decode_threshold}")
        if len(self.encoder_channels) != len(self.decoder_channels):
            raise ValueError(
                f"encoder_channels {self.encoder_channels} and decoder_channels "
                f"{self.decoder_channels} need the same number of stages, or the decoder "
                "would not return to the input resolution"
            )
        factor = 2 ** (len(self.encoder_channels) - 1)
        if self.resolution % factor:
            raise ValueError(f"resolution {self.resolution} is not divisible by {factor}")
        side = self.resolution // factor
        latent_numbers = side**3 * self.latent_channels
        if latent_numbers != self.tokens * self.embedding_dim:
            raise ValueError(
                f"a {side}³×{self.latent_channels} latent holds {latent_numbers} numbers, but "
                f"tokens × embedding_dim = {self.tokens}×{self.embedding_dim} = "
                f"{self.tokens * self.embedding_dim}; fix tokens or embedding_dim"
            )

    @property
    def latent_resolution(self) -> int:
        return self.resolution // 2 ** (len(self.encoder_channels) - 1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VQVAEConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VQ-VAE config keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, path: PathLike) -> "VQVAEConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder_channels"] = list(self.encoder_channels)
        d["decoder_channels"] = list(self.decoder_channels)
        return d


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a [B,C,D,H,W] grid, always computed in float32.

    Half-precision mean/variance over 512 channels loses accuracy, and the released model
    computes its norms in float32; so they stay float32 whatever dtype the convolutions use.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float().movedim(1, -1)
        h = F.layer_norm(h, self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        # One copy back to x's dtype and to standard layout: a channels-last result would
        # steer CPU conv3d to a slow kernel and break bit-parity with the reference.
        return h.movedim(-1, 1).to(dtype=x.dtype, memory_format=torch.contiguous_format)


def _conv3(c_in: int, c_out: int) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, kernel_size=3, padding=1)


class ResBlock3d(nn.Module):
    """Pre-norm residual block. Channels never change inside a block in this architecture,
    so the skip path is the identity (the checkpoint has no skip weights)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels)
        self.norm2 = ChannelLayerNorm(channels)
        self.conv1 = _conv3(channels, channels)
        self.conv2 = _conv3(channels, channels)
        # Zero-initialised so that a fresh block starts as the identity (training stability).
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)  # blocks may run in half precision, see VQVAE3D
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class Downsample3d(nn.Module):
    """Halve the grid with a stride-2 2³ convolution."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.to(self.conv.weight.dtype))


class Upsample3d(nn.Module):
    """Double the grid: a 3³ convolution to 8× the channels, then a 3D pixel shuffle.

    Shuffle order: output channel ``c`` takes conv channels ``8c .. 8c+7``, read as a 2×2×2
    block indexed (dz, dy, dx) with dx fastest, i.e. out[c, 2z+dz, 2y+dy, 2x+dx] =
    conv[8c + 4dz + 2dy + dx, z, y, x] (axes named here in tensor order D, H, W).
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = _conv3(c_in, c_out * 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.to(self.conv.weight.dtype))
        b, c8, d, hh, w = h.shape
        c = c8 // 8
        h = h.view(b, c, 2, 2, 2, d, hh, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
        return h.reshape(b, c, 2 * d, 2 * hh, 2 * w)


def _out_layer(channels: int, c_out: int) -> nn.Sequential:
    # Indices 0 (norm) and 2 (conv) are fixed by the checkpoint's names.
    return nn.Sequential(ChannelLayerNorm(channels), nn.SiLU(), _conv3(channels, c_out))


class Encoder3d(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch = cfg.encoder_channels
        self.input_layer = _conv3(1, ch[0])
        blocks: list[nn.Module] = []
        for i, c in enumerate(ch):
            blocks += [ResBlock3d(c) for _ in range(cfg.num_res_blocks)]
            if i + 1 < len(ch):
                blocks.append(Downsample3d(c, ch[i + 1]))
        self.blocks = nn.ModuleList(blocks)
        self.middle_block = nn.Sequential(*[ResBlock3d(ch[-1]) for _ in range(cfg.num_res_blocks_middle)])
        # Twice the latent channels: the VAE's mean and log-variance. Only the mean is used.
        self.out_layer = _out_layer(ch[-1], 2 * cfg.latent_channels)
        self.latent_channels = cfg.latent_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(x)
        for block in self.blocks:
            h = block(h)
        h = self.middle_block(h)
        h = self.out_layer(h.to(self.out_layer[2].weight.dtype))
        return h[:, : self.latent_channels]


class Decoder3d(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch = cfg.decoder_channels
        self.input_layer = _conv3(cfg.latent_channels, ch[0])
        self.middle_block = nn.Sequential(*[ResBlock3d(ch[0]) for _ in range(cfg.num_res_blocks_middle)])
        blocks: list[nn.Module] = []
        for i, c in enumerate(ch):
            blocks += [ResBlock3d(c) for _ in range(cfg.num_res_blocks)]
            if i + 1 < len(ch):
                blocks.append(Upsample3d(c, ch[i + 1]))
        self.blocks = nn.ModuleList(blocks)
        self.out_layer = _out_layer(ch[-1], 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.middle_block(self.input_layer(z))
        for block in self.blocks:
            h = block(h)
        return self.out_layer(h.to(self.out_layer[2].weight.dtype))


class Codebook(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        # Pass the weight in so that a meta-device build skips normal_ init (slow on meta).
        weight = torch.empty(num_embeddings, embedding_dim)
        if not weight.is_meta:
            nn.init.normal_(weight)
        self.embeddings = nn.Embedding(num_embeddings, embedding_dim, _weight=weight)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (Euclidean) for each row of ``z`` [N, D]."""
        e = self.embeddings.weight.float()
        z = z.float()
        # |z - e|² = |z|² - 2 z·e + |e|²; |z|² is the same for every code, so it drops out.
        d = (e * e).sum(1)[None, :] - 2.0 * (z @ e.t())
        return d.argmin(dim=1)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

_HALF_DTYPES = (torch.float16, torch.bfloat16)
_DTYPE_NAMES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPE_NAMES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPE_NAMES)}")
        dtype = _DTYPE_NAMES[dtype.lower()]
    if dtype not in (torch.float32, *_HALF_DTYPES):
        raise ValueError(f"VQ-VAE compute dtype must be float32, float16 or bfloat16, not {dtype}")
    return dtype


class VQVAE3D(nn.Module):
    """3D VQ-VAE: ``encode`` occupancy → codes, ``decode`` codes → occupancy logits.

    Build it on ``torch.device("meta")`` to inspect shapes for free; use :func:`load_vqvae`
    to get one with weights.
    """

    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = config or VQVAEConfig()
        self.Encoder = Encoder3d(self.config)
        self.Decoder = Decoder3d(self.config)
        self.vq = Codebook(self.config.num_embeddings, self.config.embedding_dim)

    # ----- precision -----------------------------------------------------------------------

    def _block_convs(self):
        for part in (self.Encoder.blocks, self.Encoder.middle_block,
                     self.Decoder.middle_block, self.Decoder.blocks):
            for m in part.modules():
                if isinstance(m, nn.Conv3d):
                    yield m

    @property
    def compute_dtype(self) -> torch.dtype:
        """Dtype the ResBlock/Up/Down convolutions run in."""
        return next(self._block_convs()).weight.dtype

    @property
    def device(self) -> torch.device:
        return self.vq.embeddings.weight.device

    def to_inference_dtype(self, dtype: torch.dtype | str) -> "VQVAE3D":
        """Run the inner convolutions in ``dtype`` (fp16/bf16 on CUDA only; fp32 anywhere).

        Norms, the input/output convolutions and the codebook stay float32, matching how the
        released weights are stored, so code assignment and the final logits keep full range.
        Half precision is refused on CPU, where it is slower than fp32 and poorly supported.
        """
        dtype = _as_dtype(dtype)
        if dtype in _HALF_DTYPES and self.device.type == "cpu":
            raise ValueError(
                f"{dtype} inference needs a CUDA device; on CPU use float32 "
                "(move the model with .to('cuda') first, or load with device='cuda')"
            )
        for conv in self._block_convs():
            conv.to(dtype)
        return self

    # ----- tokens <-> latent -----------------------------------------------------------------

    def latent_to_vectors(self, latent: torch.Tensor) -> torch.Tensor:
        """[B,C,S,S,S] latent → [B,tokens,embedding_dim]: channels last, then flat chunks."""
        b = latent.shape[0]
        return latent.permute(0, 2, 3, 4, 1).reshape(b, self.config.tokens, self.config.embedding_dim)

    def vectors_to_latent(self, vectors: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`latent_to_vectors`."""
        s, c = self.config.latent_resolution, self.config.latent_channels
        return vectors.reshape(vectors.shape[0], s, s, s, c).permute(0, 4, 1, 2, 3).contiguous()

    # ----- public API --------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, voxels: torch.Tensor, batch_size: int | None = 16) -> torch.Tensor:
        """Occupancy [B,1,R,R,R] or [B,R,R,R] (bool/uint8/float) → codes LongTensor [B,tokens].

        ``batch_size`` bounds peak memory for large batches (None: all at once).
        """
        x = self._check_voxels(voxels)
        out = [self._encode_chunk(chunk) for chunk in _chunks(x, batch_size)]
        if not out:
            return torch.empty(0, self.config.tokens, dtype=torch.long, device=self.device)
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, batch_size: int | None = 16) -> torch.Tensor:
        """Codes [B,tokens] → float32 occupancy logits [B,1,R,R,R]; occupied where logit >
        ``config.decode_threshold`` (:meth:`decode_occupancy`)."""
        c = self._check_codes(codes)
        out = [self._decode_chunk(chunk) for chunk in _chunks(c, batch_size)]
        if not out:
            r = self.config.resolution
            return torch.empty(0, 1, r, r, r, device=self.device)
        return torch.cat(out)

    def decode_occupancy(self, codes: torch.Tensor, batch_size: int | None = 16,
                         threshold: float | None = None) -> torch.Tensor:  # fmt: skip
        """Codes [B,tokens] → bool occupancy [B,1,R,R,R]: logits above ``threshold`` (None: the
        config's ``decode_threshold``; lower values give thicker shells, fewer holes, more merged
        parts)."""
        if threshold is None:
            threshold = self.config.decode_threshold
        return self.decode(codes, batch_size=batch_size) > threshold

    def _encode_chunk(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(device=self.device, dtype=self.Encoder.input_layer.weight.dtype)
        latent = self.Encoder(x)
        vectors = self.latent_to_vectors(latent)
        b = vectors.shape[0]
        return self.vq.nearest(vectors.reshape(-1, self.config.embedding_dim)).view(b, -1)

    def _decode_chunk(self, codes: torch.Tensor) -> torch.Tensor:
        vectors = self.vq.embeddings(codes.to(self.device))
        latent = self.vectors_to_latent(vectors).to(self.Decoder.input_layer.weight.dtype)
        return self.Decoder(latent).float()

    # ----- validation --------------------------------------------------------------------------

    def _check_voxels(self, voxels: Any) -> torch.Tensor:
        x = torch.as_tensor(voxels)
        r = self.config.resolution
        if x.dtype.is_complex:
            raise TypeError(f"voxels must be bool, integer or float occupancy, not {x.dtype}")
        if x.dim() == 4:
            x = x.unsqueeze(1)
        if x.dim() != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != (r, r, r):
            hint = " (a single grid? add a batch axis: voxels[None])" if x.dim() == 3 else ""
            raise ValueError(
                f"voxels must have shape [B,1,{r},{r},{r}] or [B,{r},{r},{r}], got "
                f"{list(x.shape)}{hint}; resample the occupancy to {r}³ first"
            )
        return x

    def _check_codes(self, codes: Any) -> torch.Tensor:
        c = torch.as_tensor(codes)
        n, k = self.config.tokens, self.config.num_embeddings
        if c.dtype.is_floating_point or c.dtype.is_complex or c.dtype == torch.bool:
            raise TypeError(f"codes must be an integer tensor, got {c.dtype}; use codes.long()")
        if c.dim() == 1 and c.numel() == n:
            raise ValueError(f"codes must have shape [B,{n}], got [{n}]; add a batch axis: codes[None]")
        if c.dim() != 2:
            raise ValueError(f"codes must have shape [B,{n}], got {list(c.shape)}")
        if c.shape[1] != n:
            raise ValueError(
                f"each shape needs exactly {n} codes, got {c.shape[1]}; the mesh token sequence "
                f"was cut short or ran on — decode only complete <mesh-start> … <mesh-end> spans"
            )
        if c.numel():
            lo, hi = int(c.min()), int(c.max())
            if lo < 0 or hi >= k:
                bad = ((c < 0) | (c >= k)).nonzero()[0].tolist()
                raise ValueError(
                    f"codes must lie in [0, {k}); found min {lo}, max {hi} (first bad one at "
                    f"[{bad[0]}, {bad[1]}]). Codes are codebook indices, not tokenizer ids: "
                    f"subtract the id of <mesh0> from the token ids"
                )
        return c.long()


def _chunks(x: torch.Tensor, batch_size: int | None):
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
    step = batch_size or max(1, x.shape[0])
    return [x[i : i + step] for i in range(0, x.shape[0], step)]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _resolve_config(config: VQVAEConfig | Mapping[str, Any] | PathLike | None, weights: Path) -> VQVAEConfig:
    """Explicit config wins; otherwise a json beside the weights; otherwise the release defaults."""
    if isinstance(config, VQVAEConfig):
        return config
    if isinstance(config, Mapping):
        return VQVAEConfig.from_dict(config)
    if config is not None:
        return VQVAEConfig.from_json(config)
    own = weights.with_name(weights.stem + "_config.json")
    if own.is_file():
        return VQVAEConfig.from_json(own)
    shared = weights.with_name("config.json")
    if shared.is_file() and not _is_transformers_config(shared):
        return VQVAEConfig.from_json(shared)
    return VQVAEConfig()


def _is_transformers_config(path: Path) -> bool:
    """A policy's config.json (a VQ-VAE bundled in a model folder sits beside one): not ours."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and ("model_type" in data or "architectures" in data)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"VQ-VAE weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            # weights_only: a checkpoint is data; never let it run code on load.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and safetensors readers all raise their own types
        raise VQVAELoadError(
            f"could not read {path} as VQ-VAE weights ({type(e).__name__}: {str(e)[:200]}); "
            "is the file complete (re-download it) and a torch state dict (.bin/.pt) or .safetensors?"
        ) from e
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VQVAELoadError(f"{path} does not hold a state dict of tensors (got {type(state).__name__})")
    return dict(state)


def _check_compatible(model: VQVAE3D, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Compare names and shapes before any real memory is allocated, and explain mismatches."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {expected[k]}"
             for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if not (missing or unexpected or wrong):
        return

    def show(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f", … ({len(items)} in all)" if len(items) > 5 else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    if wrong:
        parts.append(f"wrong shapes: {show(wrong)}")
    raise VQVAELoadError(
        f"{path} does not fit VQVAE3D({model.config}).\n  " + "\n  ".join(parts) + "\n"
        "The file may come from a model with other widths or depths: pass a matching config "
        "(VQVAEConfig, dict or json path), or put '<weights stem>_config.json' beside the weights."
    )


def load_vqvae(
    path: PathLike,
    config: VQVAEConfig | Mapping[str, Any] | PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
) -> VQVAE3D:
    """Load weights (``.bin``/``.pt`` torch state dict, or ``.safetensors``) with strict names.

    ``dtype`` picks the inner convolutions' precision (see :meth:`VQVAE3D.to_inference_dtype`);
    the file's own dtypes do not matter, tensors are cast to the model's.
    """
    path = Path(path)
    cfg = _resolve_config(config, path)
    device = torch.device(device)
    dtype = _as_dtype(dtype)
    if dtype in _HALF_DTYPES and device.type != "cuda":
        raise ValueError(f"{dtype} inference needs device='cuda'; on {device.type} use float32")
    state = _read_state_dict(path)
    # Build on the meta device: shape checks cost nothing and no random init is wasted.
    with torch.device("meta"):
        model = VQVAE3D(cfg)
    _check_compatible(model, state, path)
    # assign=True adopts the file's tensors (and their dtypes: the release stores blocks in
    # fp16), so normalise everything to fp32 first and then apply the requested precision.
    model.load_state_dict(state, strict=True, assign=True)
    model = model.to(device=device, dtype=torch.float32)
    return model.to_inference_dtype(dtype).eval()


def save_vqvae(model: VQVAE3D, path: PathLike) -> Path:
    """Write ``path`` (safetensors, forced to that suffix) and ``<stem>_config.json`` beside it.

    Returns the weights path. The config travels with the weights so that a later
    :func:`load_vqvae` needs no arguments.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", "ar3d": "vqvae"})
    with open(path.with_name(path.stem + "_config.json"), "w", encoding="utf-8") as f:
        json.dump(model.config.to_dict(), f, indent=1)
    return path
