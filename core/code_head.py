"""The output head over the mesh codes only, for decode steps where nothing else can be written.

Of the ~1,090 steps of a mesh, 1,024 can only emit a code (`MeshConstraint`: once a row is in
MESH, everything but the codes is masked). Yet a full step multiplies the whole `lm_head` (a
7B's 152k × 3,584: 1.1 GB in bf16, 0.57 GB in fp8, the largest single read of the step), then
masks, sorts and samples 152k logits per row. Here the head is the block of `lm_head` rows that
hold the codes, a view of the same storage (no copy; an optimizer step or an in-place 8-bit
requantization is seen at once), and sampling runs over those rows alone.

The distribution is the same one: masked logits are -inf, so softmax, top-k and top-p over the
codes give what they give over the masked vocabulary, and the forced `<mesh-end>` (after 1,024
codes) and the DONE rows' filler keep log-prob 0 as before (tests/test_code_head.py).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .constraint import DONE, MESH, ConstraintState, MeshConstraint, finite_logits
from .device_sampling import sample_tokens
from .quantize import QuantLinear
from .sampling import SamplingConfig


class CodeHead:
    """Logits of the mesh codes from the final hidden state, and a draw among them."""

    def __init__(self, project: Callable[[torch.Tensor], torch.Tensor], constraint: MeshConstraint):
        self.project = project
        vocab = constraint.vocab
        self.code_offset, self.num_codes = vocab.code_offset, vocab.num_codes
        self.tokens_per_mesh, self.end_id, self.done_id = vocab.tokens_per_mesh, vocab.end_id, constraint.done_id

    @classmethod
    def of(cls, lm_head: torch.nn.Module, constraint: MeshConstraint) -> "CodeHead | None":
        """The code rows of `lm_head` (an `nn.Linear` or an 8-bit `QuantLinear`), or None where the
        head is anything else (a LoRA wrapper, …) or has hooks that expect the full logits."""
        if type(lm_head) not in (torch.nn.Linear, QuantLinear) or _has_hooks(lm_head):
            return None
        a, b = constraint.vocab.code_offset, constraint.vocab.code_offset + constraint.vocab.num_codes
        if b > lm_head.weight.shape[0]:
            return None
        bias = None if lm_head.bias is None else lm_head.bias[a:b]
        if type(lm_head) is torch.nn.Linear:
            weight = lm_head.weight[a:b]
            return cls(lambda h: F.linear(h, weight, bias), constraint)
        rows = QuantLinear(lm_head.weight[a:b], lm_head.weight_scale[a:b], None, lm_head.precision)
        rows.bias = bias  # a view too (the constructor would copy it)
        return cls(rows, constraint)

    def sample(self, h: torch.Tensor, state: ConstraintState, sampling: SamplingConfig, temperature, top_p):
        """(tokens, log π, rows with a non-finite code logit) for hidden states [B, hidden] of rows
        that are all in MESH or DONE: a code while the mesh is open, else the forced token."""
        logits, bad = finite_logits(self.project(h))  # [B, num_codes]
        # as MeshConstraint.sanitize: rows with no finite code logit draw uniformly among the codes
        dead = ~torch.isfinite(logits).any(dim=-1, keepdim=True)
        logits = torch.where(dead, torch.zeros_like(logits), logits)
        code, logp = sample_tokens(logits, sampling, temperature, top_p)
        forced = (state.phase != MESH) | (state.n >= self.tokens_per_mesh)
        fill = torch.where(state.phase == DONE, self.done_id, self.end_id)
        token = torch.where(forced, fill, code + self.code_offset)
        return token, torch.where(forced, torch.zeros_like(logp), logp), bad


def _has_hooks(module: torch.nn.Module) -> bool:
    from torch.nn.modules import module as m

    return bool(module._forward_hooks or module._forward_pre_hooks or m._global_forward_hooks
                or m._global_forward_pre_hooks)  # fmt: skip
