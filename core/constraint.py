"""The mesh-token constraint: whatever the logits, a completion is `plan <mesh-start> 1024 codes <mesh-end>`.

Each row of a batch is in one of three phases, with a count `n` of tokens already in it:

    PLAN  --<mesh-start> (sampled, or forced after max_plan_tokens)-->  MESH
    MESH  --1024 codes, then <mesh-end> forced-->                       DONE

In PLAN, mesh codes and `<mesh-end>` are masked and the probability the model gives to ending
its turn (EOS / `<|im_end|>`) is moved onto `<mesh-start>`: ending the plan *is* starting the
mesh, so the distribution stays a distribution and no sample ends without a mesh. In MESH only
codes are allowed until 1024 are written, then only `<mesh-end>`.

The same `mask_logits` serves generation ([B, V] logits, state carried token by token) and
training ([B, T, V] logits, state recomputed from the completion by `completion_states`), so
the trainer's log-probs are those of the distribution the tokens were sampled from. All of it
is tensor arithmetic on the logits' device: no host synchronisation per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tokens import MeshVocab

PLAN, MESH, DONE = 0, 1, 2
SAFE_LOGIT = 1e4  # what +inf becomes: wins over any real logit, and survives temperature and softmax


def finite_logits(logits: torch.Tensor, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 logits where NaN never wins (-inf) and +inf is capped at `SAFE_LOGIT`, and bool
    rows [...] that had a non-finite logit among their first `width` entries (all by default)."""
    logits = logits.float()
    bad = ~torch.isfinite(logits[..., :width]).all(dim=-1)
    return torch.nan_to_num(logits, nan=float("-inf"), posinf=SAFE_LOGIT).clamp(max=SAFE_LOGIT), bad


@dataclass
class ConstraintState:
    phase: torch.Tensor  # long [B] (or [B, T] for a whole completion)
    n: torch.Tensor  # long, tokens already written in the current phase


class MeshConstraint:
    def __init__(self, vocab: MeshVocab, vocab_size: int, stop_ids: list[int], max_plan_tokens: int = 1022,
                 tokenizer_size: int | None = None):  # fmt: skip
        """`vocab_size`: rows of `lm_head`; `tokenizer_size`: ids the tokenizer knows. Checkpoints pad
        `lm_head` (to a multiple of 64 or 128): the rows beyond the tokenizer are never allowed."""
        if max_plan_tokens < 0:
            raise ValueError("max_plan_tokens must be >= 0 (0 forces <mesh-start> at once)")
        self.vocab = vocab
        self.vocab_size = vocab_size
        self.tokenizer_size = min(vocab_size, tokenizer_size or vocab_size)
        self.stop_ids = sorted({int(i) for i in stop_ids} - {vocab.end_id, vocab.start_id})
        self.max_plan_tokens = max_plan_tokens
        self.done_id = self.stop_ids[0] if self.stop_ids else vocab.end_id
        self._masks: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    # --- masks over the vocabulary, cached per device ----------------------------------
    def _vocab_masks(self, device):
        if device not in self._masks:
            v = self.vocab
            ids = torch.arange(self.vocab_size, device=device)
            is_code = (ids >= v.code_offset) & (ids < v.code_offset + v.num_codes)
            is_start, is_end, is_done = ids == v.start_id, ids == v.end_id, ids == self.done_id
            is_stop = torch.zeros_like(is_code)
            is_stop[self.stop_ids] = True
            plan_ok = ~(is_code | is_end | is_stop) & (ids < self.tokenizer_size)
            redirect = torch.tensor([v.start_id, *self.stop_ids], device=device)
            self._masks[device] = (plan_ok, is_code, is_start, is_end, is_done, redirect)
        return self._masks[device]

    def mask_logits(self, logits: torch.Tensor, state: ConstraintState) -> torch.Tensor:
        """Logits with every token the grammar forbids at -inf; works on [..., V] for any leading shape."""
        if logits.shape[-1] < self.vocab_size:
            raise ValueError(f"logits have {logits.shape[-1]} entries, the vocabulary {self.vocab_size}")
        logits = logits[..., : self.vocab_size]
        plan_ok, is_code, is_start, is_end, is_done, redirect = self._vocab_masks(logits.device)
        phase, n = state.phase[..., None], state.n[..., None]
        force_start = (phase == PLAN) & (n >= self.max_plan_tokens)
        free_plan = (phase == PLAN) & ~force_start
        force_end = (phase == MESH) & (n >= self.vocab.tokens_per_mesh)
        free_mesh = (phase == MESH) & ~force_end
        allowed = (
            (free_plan & plan_ok)
            | (free_mesh & is_code)
            | (force_start & is_start)
            | (force_end & is_end)
            | ((phase == DONE) & is_done)
        )
        out = logits.masked_fill(~allowed, float("-inf"))
        # In a free plan, ending the turn means starting the mesh: move the stop mass there.
        start_logit = torch.logsumexp(logits.index_select(-1, redirect).float(), dim=-1).to(logits.dtype)
        start_col = out[..., self.vocab.start_id]
        out[..., self.vocab.start_id] = torch.where(free_plan[..., 0], start_logit, start_col)
        # A forced token must survive any logits (even -inf from the model).
        forced = (force_start | force_end | (phase == DONE)) & (is_start | is_end | is_done)
        return torch.where(forced & allowed, torch.zeros_like(out), out)

    def sanitize(self, logits: torch.Tensor, state: ConstraintState) -> tuple[torch.Tensor, torch.Tensor]:
        """`mask_logits` for sampling from logits that may hold NaN or ±inf (fp16 overflow on GPUs
        without bf16): NaN and -inf never win, +inf becomes a large finite logit, and a row left
        with nothing allowed samples uniformly among the allowed tokens. All on the device, no
        host synchronisation; returns (masked float32 logits, bool [B] rows that had a bad logit)."""
        clean, bad = finite_logits(logits, self.vocab_size)
        masked = self.mask_logits(clean, state)
        dead = ~torch.isfinite(masked).any(dim=-1, keepdim=True)  # nothing allowed is finite
        uniform = self.mask_logits(torch.zeros_like(clean), state)
        return torch.where(dead, uniform, masked), bad

    # --- state tracking ------------------------------------------------------------------
    def initial_state(self, prompt_ids: torch.Tensor) -> ConstraintState:
        """A prompt that already ends with `<mesh-start>` (a fed mesh start) begins in MESH."""
        last = prompt_ids[:, -1]
        phase = torch.where(last == self.vocab.start_id, MESH, PLAN).long()
        return ConstraintState(phase, torch.zeros_like(phase))

    def advance(self, state: ConstraintState, token: torch.Tensor) -> ConstraintState:
        v = self.vocab
        phase, n = state.phase, state.n
        to_mesh = (phase == PLAN) & (token == v.start_id)
        to_done = (phase == MESH) & (token == v.end_id)
        new_phase = torch.where(to_mesh, MESH, torch.where(to_done, DONE, phase))
        new_n = torch.where(to_mesh | to_done, torch.zeros_like(n), n + 1)
        return ConstraintState(new_phase, new_n)

    def completion_states(self, completion: torch.Tensor, initial: ConstraintState) -> ConstraintState:
        """State before each token of a [B, T] completion, vectorised (for the trainer's log-probs)."""
        B, T = completion.shape
        t = torch.arange(T, device=completion.device).expand(B, T)
        big = torch.full_like(t, T + 1)
        start_at = torch.where(completion == self.vocab.start_id, t, big).min(dim=1, keepdim=True).values
        in_mesh0 = initial.phase[:, None] == MESH
        start_at = torch.where(in_mesh0, torch.full_like(start_at, -1), start_at)
        end_cand = torch.where((completion == self.vocab.end_id) & (t > start_at), t, big)
        end_at = end_cand.min(dim=1, keepdim=True).values
        phase = torch.where(t <= start_at, PLAN, torch.where(t <= end_at, MESH, DONE))
        n = torch.where(phase == PLAN, t + initial.n[:, None], torch.where(phase == MESH, t - start_at - 1, t - end_at - 1))
        n = torch.where(in_mesh0 & (phase == MESH), n + initial.n[:, None], n)
        return ConstraintState(phase.long(), n.long())

    def loss_masks(self, completion: torch.Tensor, initial: ConstraintState):
        """(reasoning, mesh) bool masks of the tokens the policy chose; forced and structural tokens are in neither."""
        st = self.completion_states(completion, initial)
        reasoning = (st.phase == PLAN) & (completion != self.vocab.start_id) & (st.n < self.max_plan_tokens)
        mesh = (st.phase == MESH) & (st.n < self.vocab.tokens_per_mesh)
        return reasoning, mesh
