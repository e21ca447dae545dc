"""LoRA rollouts at the speed of the plain model: the adapter folded into the weights for the
rollout, and the exact training weights back afterwards.

Why: a LoRA-wrapped linear layer runs the base product plus two thin products, a dropout and
dtype casts for every token — on a 7B policy that made a token cost ~12.7 ms instead of ~7.5 ms
(BENCHMARKS.md). Generation only needs W + s·B·A, which is one product.

Why not peft's ``merge_adapter``/``unmerge_adapter``: they add the delta to W in place and
subtract it again, which in bf16 does not give W back bit for bit, so the frozen base would
drift a little with every rollout (and resumed runs would differ). Here W is never written:
each adapted layer gets a persistent buffer that is filled with W + ΔW before the rollout and
swapped in as the layer's weight; afterwards the original tensor is swapped back, untouched.
The buffers are allocated once (one copy of the adapted weights, in their dtype: ~13 GB for a
bf16 7B policy with every projection adapted) and keep their addresses, so the graph engine's
captured CUDA graph stays valid from one rollout to the next. The layer is marked merged while
swapped, so peft's own forward runs the base layer alone; the graph engine and transformers'
``generate`` both call that forward, and nothing else changes for them.
"""

from __future__ import annotations

import contextlib

import torch


class MergedLora:
    """``with merged(): ...`` runs the LoRA layers of ``model`` as plain merged linears."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self._buffers: dict[int, torch.Tensor] = {}

    def layers(self) -> list:
        """The adapted linear layers that can be merged (active adapters, not merged already)."""
        try:
            from peft.tuners.lora import LoraLayer
        except ImportError:  # no peft: no LoRA layers
            return []
        found = []
        for m in self.model.modules():
            if isinstance(m, LoraLayer) and isinstance(m.get_base_layer(), torch.nn.Linear):
                if not m.merged and not m.disable_adapters and any(a in m.lora_A for a in m.active_adapters):
                    found.append(m)
        return found

    @contextlib.contextmanager
    def __call__(self):
        swapped = []
        try:
            with torch.no_grad():
                for layer in self.layers():
                    weight = layer.get_base_layer().weight
                    buf = self._buffers.get(id(layer))
                    if buf is None or buf.shape != weight.shape or buf.dtype != weight.dtype or buf.device != weight.device:
                        buf = self._buffers[id(layer)] = torch.empty_like(weight.data)
                    buf.copy_(weight.data)
                    active = [a for a in layer.active_adapters if a in layer.lora_A]
                    for a in active:
                        buf.add_(layer.get_delta_weight(a).to(buf.dtype))
                    original = weight.data
                    weight.data = buf
                    layer.merged_adapters = list(active)
                    swapped.append((layer, weight, original))
            yield len(swapped)
        finally:
            for layer, weight, original in swapped:
                weight.data = original
                layer.merged_adapters = []

    def clear(self) -> None:
        """Free the buffers (the next rollout allocates them again)."""
        self._buffers.clear()
