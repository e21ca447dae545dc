"""8-bit rollouts: the policy's decoder as fp8 / int8 weights while it generates, its training
weights untouched.

Why: a rollout is mostly decoding, and decoding reads every weight once per token, so 8-bit
weights halve the bytes of a token (``core/quantize.py``, BENCHMARKS.md issue #20). The samples
then come from a slightly different policy (π_8bit) than the one trained (π_θ in bf16); the loss
weighs each token by the truncated importance ratio min(π_old / π_8bit, C) (Yao et al. 2025,
"truncated importance sampling"; ``algorithm.tis_cap``), with π_8bit the engine's own log-prob
of the token it drew (``StepOutput.sample_logprobs``) and π_old the bf16 policy's.

How: before each rollout every decoder projection (and ``lm_head``) is quantized from its
current weight — base + LoRA delta for adapted layers — into persistent 8-bit buffers, and the
``QuantLinear`` modules holding them are swapped into the model (q/k/v and gate/up fused, as
inference does). Afterwards the original modules go back. The buffers keep their addresses, so
the graph engine's captured CUDA graph is replayed by every later rollout. Memory: one 8-bit copy
of the decoder (~7.6 GB at 7B; ``lora.merge_rollouts`` needs a bf16 copy, ~13 GB, instead).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..core.graph_engine import unwrap_peft
from ..core.quantize import _TARGETS, FUSED, QuantLinear, quantize_group, quantize_weight, requantize_, stack_rows


@dataclass
class _Group:
    """Layers of one module stored as one 8-bit matrix (a fused group, or a single layer)."""

    owner: torch.nn.Module
    parts: list[str]  # attribute names on `owner`
    originals: list[torch.nn.Module]  # what they are outside a rollout
    fused_name: str | None  # attribute of the fused module (q/k/v, gate/up), None for a single layer
    quant: QuantLinear | None = None
    views: list[QuantLinear] | None = None


class QuantizedRollout:
    """``with rollout(): ...`` runs the model's decoder in 8 bits (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, precision: str) -> None:
        if precision not in ("fp8", "int8"):
            raise ValueError(f"precision must be fp8 or int8, got {precision!r}")
        self.model = model
        self.precision = precision
        self._groups: list[_Group] | None = None

    def _find(self) -> list[_Group]:
        inner = unwrap_peft(self.model)
        groups = []
        for name, module in inner.named_modules():
            if "visual" in name.split("."):
                continue  # the vision tower never runs in text-to-3D
            children = {n: c for n, c in module.named_children() if n in _TARGETS and _linear(c) is not None}
            if not children:
                continue
            for fused_name, parts in FUSED.items():
                if all(p in children for p in parts):
                    groups.append(_Group(module, list(parts), [children.pop(p) for p in parts], fused_name))
            groups += [_Group(module, [n], [c], None) for n, c in children.items()]
        head = inner.get_output_embeddings()
        if _linear(head) is not None:
            owner, attr = _owner_of(inner, head)
            groups.append(_Group(owner, [attr], [head], None))
        if not groups:
            raise ValueError("found no Qwen2 linear layers to run in 8 bits")
        return groups

    @torch.no_grad()
    def _quantize(self) -> None:
        first = self._groups is None
        if first:
            self._groups = self._find()
        for g in self._groups:
            weights, biases = zip(*(_effective(m) for m in g.originals))
            if first:
                if g.fused_name is not None:
                    g.quant, g.views = quantize_group(weights, biases, self.precision)
                else:
                    q, scale = quantize_weight(weights[0], self.precision)
                    g.quant = QuantLinear(q.contiguous(), scale, biases[0], self.precision)
                    g.views = [g.quant]
            else:
                requantize_(g.quant, *stack_rows(weights, biases))

    @contextlib.contextmanager
    def __call__(self):
        self._quantize()
        swapped: list[_Group] = []
        try:
            for g in self._groups:
                if g.fused_name is not None:
                    g.owner.add_module(g.fused_name, g.quant)
                for part, view in zip(g.parts, g.views):
                    setattr(g.owner, part, view)
                swapped.append(g)
            yield len(self._groups)
        finally:
            for g in swapped:
                for part, original in zip(g.parts, g.originals):
                    setattr(g.owner, part, original)
                if g.fused_name is not None:
                    delattr(g.owner, g.fused_name)

    def clear(self) -> None:
        """Free the 8-bit buffers (the next rollout allocates them again)."""
        self._groups = None


def _linear(module):
    """The `nn.Linear` inside `module` (itself, or the base layer of a peft LoRA layer), or None."""
    if type(module) is torch.nn.Linear:
        return module
    base = getattr(module, "get_base_layer", None)
    if base is not None and type(base()) is torch.nn.Linear:
        return base()
    return None


def _effective(module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) the layer computes with now: W + Σ s·B·A over active LoRA adapters."""
    base = _linear(module)
    weight = base.weight.detach()
    if base is not module and not getattr(module, "disable_adapters", False):
        active = [a for a in module.active_adapters if a in module.lora_A]
        if active:
            weight = weight.float()
            for a in active:
                weight = weight + module.get_delta_weight(a).float()
    return weight, None if base.bias is None else base.bias.detach()


def _owner_of(root: torch.nn.Module, target: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    for name, module in root.named_modules():
        if module is target:
            parent, _, attr = name.rpartition(".")
            return root.get_submodule(parent) if parent else root, attr
    raise ValueError("the output head is not a submodule of the model")
