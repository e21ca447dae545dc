"""8-bit weights for generation: read half the bytes of bf16 per decoded token.

Decoding a mesh is bound by reading the weights once per token (BENCHMARKS.md, "Generation"):
the bf16 graph engine cannot go below weight bytes / bandwidth. Stored in 8 bits (fp8 e4m3 or
int8, one fp32 scale per output channel), the same matrices are half the bytes. Library GEMMs
are built for many rows, not the 1–8 rows of a decode step (cuBLASLt's fp8 `_scaled_mm` reached
48% of the fp8 floor at batch 1), so the product here is a Triton kernel that streams the 8-bit
weight tiles, widens them to the activation's dtype in registers (exact: e4m3 and int8 values
are all representable in bf16) and applies the scale once per output after the reduction.

`QuantLinear` replaces `nn.Linear` in the decoder's projections, MLP and `lm_head`
(`quantize_model`, once at load), so both engines and CUDA graph capture see the same module
calls as before; the embedding (a gather, not a full read) and the norms stay as they are. On a
CPU the module computes with the dequantized weight (for tests and for inspecting a quantized
model); running generation in 8 bits needs a CUDA GPU (`check_precision` says which fallback).
The trainer rolls out in bf16 by default; ``rollout.precision = "fp8"`` makes it sample from an
8-bit copy and weigh the loss by importance ratios (``trainer/rollout_weights.py``).
"""

from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import Ar3dError

PRECISIONS = ("default", "fp8", "int8")
_FORMATS = {"fp8": (torch.float8_e4m3fn, 448.0), "int8": (torch.int8, 127.0)}
# The decoder's linear layers (Qwen2 / Qwen2.5-VL names) and the output head.
_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Layers that read the same input, stored as one matrix: one kernel instead of three (two) per
# layer, which matters at decode where a small matrix costs its launch more than its bytes. The
# separate modules stay, as views of the fused storage, for code that calls them (transformers).
FUSED = {"ar3d_qkv": ("q_proj", "k_proj", "v_proj"), "ar3d_gate_up": ("gate_proj", "up_proj")}


class PrecisionError(Ar3dError, ValueError):
    """8-bit weights were asked for where they cannot run."""


def requested_precision(precision: str | None) -> str | None:
    """What was asked for: `precision`, else ``$AR3D_PRECISION``, else None (nothing asked)."""
    return precision or os.environ.get("AR3D_PRECISION") or None


def resolve_precision(precision: str | None) -> str:
    """`precision`, else ``$AR3D_PRECISION``, else "default" (the model's dtype: bf16 on GPUs)."""
    name = (requested_precision(precision) or "default").lower()
    name = {"bf16": "default", "bfloat16": "default", "none": "default", "e4m3": "fp8"}.get(name, name)
    if name not in PRECISIONS:
        raise PrecisionError(f"unknown precision '{name}': choose fp8, int8 or default (--precision or AR3D_PRECISION)")
    return name


def check_precision(precision: str, device) -> None:
    """Refuse 8-bit weights where the kernel cannot run, naming what to use instead."""
    if precision == "default":
        return
    device = torch.device(device)
    if device.type != "cuda":
        raise PrecisionError(
            f"--precision {precision} needs a CUDA GPU (8-bit weights are a GPU decoding path); on {device.type} "
            "leave --precision unset (or AR3D_PRECISION=default) to run in the default precision"
        )
    if precision == "fp8" and torch.cuda.get_device_capability(device) < (8, 9):
        name = torch.cuda.get_device_name(device)
        raise PrecisionError(
            f"--precision fp8 needs a GPU with fp8 support (compute capability 8.9+: Hopper H100/H200, Ada L4/L40); "
            f"{name} has {'.'.join(map(str, torch.cuda.get_device_capability(device)))}. Use --precision int8 "
            "(8-bit weights on any recent CUDA GPU) or leave it unset for bf16"
        )
    try:
        import triton  # noqa: F401
    except ImportError as e:
        raise PrecisionError(
            f"--precision {precision} needs Triton (the 8-bit kernel): pip install triton, or leave --precision unset"
        ) from e


def quantize_weight(weight: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric quantization: weight ≈ q * scale[:, None]."""
    dtype, qmax = _FORMATS[precision]
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / qmax).clamp(min=torch.finfo(torch.float32).tiny)
    q = w / scale[:, None]
    q = q.round().clamp(-qmax, qmax) if precision == "int8" else q.clamp(-qmax, qmax)
    return q.to(dtype), scale


def dequantize_weight(q: torch.Tensor, scale: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    return (q.float() * scale[:, None]).to(dtype)


class QuantLinear(torch.nn.Module):
    """`nn.Linear` with an 8-bit weight and fp32 per-output scales (see the module docstring)."""

    def __init__(self, weight_q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, precision: str):
        super().__init__()
        self.precision = precision
        self.out_features, self.in_features = weight_q.shape
        # `weight` keeps the name (and shape) code elsewhere reads, e.g. lm_head.weight.shape[0].
        self.register_buffer("weight", weight_q)
        self.register_buffer("weight_scale", scale.float().contiguous())
        self.register_buffer("bias", bias.detach().clone() if bias is not None else None)

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, precision: str) -> "QuantLinear":
        q, scale = quantize_weight(linear.weight, precision)
        return cls(q.contiguous(), scale, linear.bias, precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            from ._w8_kernel import w8_linear

            return w8_linear(x, self.weight, self.weight_scale, self.bias)
        w = dequantize_weight(self.weight, self.weight_scale, x.dtype)
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, precision={self.precision}"


def quantize_model(model: torch.nn.Module, precision: str, include_lm_head: bool = True, *,
                   stored: Callable[[str], torch.Tensor | None] | None = None, progress=None) -> list[str]:  # fmt: skip
    """Replace the decoder's linear layers (and `lm_head`) by `QuantLinear` in place; the names.

    The vision tower (unused for text-to-3D) and the embedding are left alone. A LoRA-wrapped
    model is refused: its adapters would be lost (merge them first). `stored` (state-dict key →
    tensor, or None) gives the 8-bit weights, scales and biases of a pre-quantized folder
    (`ar3d quantize`, core/prequantized.py) instead of quantizing: same modules, same layout, and
    the linear layers may sit on the meta device. `progress` wraps the list of blocks (tqdm)."""
    if precision == "default":
        return []
    if precision not in _FORMATS:
        raise PrecisionError(f"unknown precision '{precision}': choose fp8 or int8")
    if any("lora_" in n for n, _ in model.named_modules()):
        raise PrecisionError("8-bit weights are for inference: merge the LoRA adapter into the model first")
    blocks = [(name, module) for name, module in model.named_modules() if "visual" not in name.split(".")
              and any(type(c) is torch.nn.Linear and n in _TARGETS for n, c in module.named_children())]  # fmt: skip
    names = []
    for name, module in progress(blocks) if progress is not None else blocks:
        for fused_name, parts in FUSED.items():
            children = [getattr(module, p, None) for p in parts]
            if all(type(c) is torch.nn.Linear for c in children):
                _fuse(module, fused_name, parts, children, precision, stored, _join(name, fused_name))
                names += [f"{name}.{p}" for p in parts]
        for child_name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear and child_name in _TARGETS:
                setattr(module, child_name, _make(child, precision, stored, _join(name, child_name)))
                names.append(_join(name, child_name))
    if include_lm_head:
        head = model.get_output_embeddings()
        if type(head) is torch.nn.Linear:
            key = next(n for n, m in model.named_modules() if m is head)
            model.set_output_embeddings(_make(head, precision, stored, key))
            names.append("lm_head")
    if not names:
        raise PrecisionError("found no Qwen2 linear layers to quantize in this model")
    model.config.ar3d_precision = precision  # shown in sidecars and `ar3d info`
    return names


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _make(linear: torch.nn.Linear, precision: str, stored, key: str) -> QuantLinear:
    if stored is None:
        return QuantLinear.from_linear(linear, precision)
    bias_dtype = None if linear.bias is None else linear.bias.dtype
    return QuantLinear(*_read(stored, key, linear.out_features, linear.in_features, bias_dtype, precision), precision)


def _read(stored, key: str, rows: int, cols: int, bias_dtype, precision: str):
    """(q, scale, bias) of `key` from a pre-quantized state dict, checked against the model."""
    q, scale, bias = stored(f"{key}.weight"), stored(f"{key}.weight_scale"), stored(f"{key}.bias")
    dtype = _FORMATS[precision][0]
    problem = None
    if q is None or scale is None:
        problem = "is missing"
    elif q.dtype != dtype or tuple(q.shape) != (rows, cols):
        problem = f"is {q.dtype} {tuple(q.shape)}, the model needs {dtype} {(rows, cols)}"
    elif scale.dtype != torch.float32 or tuple(scale.shape) != (rows,):
        problem = f"has scales {scale.dtype} {tuple(scale.shape)}, the model needs float32 {(rows,)}"
    elif (bias is None) != (bias_dtype is None):
        problem = "has a bias the model lacks" if bias is not None else "lacks the bias the model has"
    if problem:
        raise PrecisionError(f"the pre-quantized weight '{key}' {problem}: the folder does not match its "
                             "config.json; write it again with `ar3d quantize`")  # fmt: skip
    return q, scale, None if bias is None else bias.to(bias_dtype)


def _fuse(module, fused_name, parts, children, precision, stored=None, key="") -> None:
    has_bias = any(c.bias is not None for c in children)
    if stored is not None:
        rows = sum(c.out_features for c in children)
        bias_dtype = next(c.bias.dtype for c in children if c.bias is not None) if has_bias else None
        fused = QuantLinear(*_read(stored, key, rows, children[0].in_features, bias_dtype, precision), precision)
        views = with_views(fused, [c.out_features for c in children])
    else:
        fused, views = quantize_group([c.weight for c in children], [c.bias for c in children], precision)
    module.add_module(fused_name, fused)
    for part, view in zip(parts, views):
        setattr(module, part, view)


def quantize_group(weights, biases, precision: str) -> tuple[QuantLinear, list[QuantLinear]]:
    """One `QuantLinear` over the rows of matrices that read the same input (q/k/v, gate/up), and
    a view of it per matrix. Scales are per output row, so this equals quantizing one by one."""
    weight, bias = stack_rows(weights, biases)
    q, scale = quantize_weight(weight, precision)
    fused = QuantLinear(q.contiguous(), scale, bias, precision)
    return fused, with_views(fused, [w.shape[0] for w in weights])


def stack_rows(weights, biases) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The matrices of a group one under the other, and their biases (zeros where a part has none;
    None when no part has one). One matrix is returned as it is."""
    weights = [w.detach() for w in weights]
    weight = torch.cat(weights) if len(weights) > 1 else weights[0]
    bias = None
    present = [b for b in biases if b is not None]
    if present:
        bias = torch.cat([b.detach() if b is not None else present[0].new_zeros(w.shape[0]) for w, b in zip(weights, biases)])
    return weight, bias


def with_views(fused: QuantLinear, sizes: list[int]) -> list[QuantLinear]:
    """`QuantLinear`s over consecutive row blocks of `fused`, sharing its storage."""
    fused.split_sizes = list(sizes)
    views, start = [], 0
    for size in sizes:
        stop = start + size
        view = QuantLinear(fused.weight[start:stop], fused.weight_scale[start:stop],
                           None if fused.bias is None else fused.bias[start:stop], fused.precision)  # fmt: skip
        view.view_of = True  # its tensors are the fused ones: saved once (`state_dict_to_save`)
        views.append(view)
        start = stop
    return views


@torch.no_grad()
def requantize_(target: QuantLinear, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """Write new weights into `target` in place (its tensors keep their addresses, so a captured
    CUDA graph that reads them stays valid): the trainer's 8-bit rollouts after each update."""
    if tuple(weight.shape) != (target.out_features, target.in_features):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {target.out_features}x{target.in_features}")
    q, scale = quantize_weight(weight, target.precision)
    target.weight.copy_(q)
    target.weight_scale.copy_(scale)
    if target.bias is not None:
        target.bias.copy_(bias if bias is not None else torch.zeros_like(target.bias))


def state_dict_to_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with each tensor once: the views of fused groups left out."""
    views = {name for name, m in model.named_modules() if getattr(m, "view_of", None)}
    return {k: v.contiguous() for k, v in model.state_dict().items() if k.rpartition(".")[0] not in views}


def fused(module, name: str, x: torch.Tensor):
    """The outputs of a fused group (`FUSED`) for `x`, or None when `module` has no such group."""
    f = getattr(module, name, None)
    return None if f is None else f(x).split(f.split_sizes, dim=-1)


def quantized_bytes(model: torch.nn.Module) -> int:
    """Bytes of the 8-bit weights and scales (fused groups and their views counted once)."""
    storages = {}
    for m in model.modules():
        if isinstance(m, QuantLinear):
            for t in (m.weight, m.weight_scale):
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(storages.values())
