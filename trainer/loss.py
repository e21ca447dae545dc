"""Hi-GRPO's per-step policy loss and the log-probs it needs.

For one step k (step 1: plan → coarse codes; step 2: visual plan → refined codes), the AR3D-R1
objective is

    L_k = −(1/Σ_i T_i) Σ_i Σ_t m_it [ min(r_it·A_i, clip(r_it, 1−ε_low, 1+ε_high)·A_i) − β·KL_it ]

with r_it = π_θ/π_old of token t of sample i, m_it = 1 on the reasoning and mesh tokens the
policy chose (never on forced or structural tokens), KL_it = π_ref/π_θ − log(π_ref/π_θ) − 1 (the
"k3" estimator), and the total loss L1 + L2.

The log-probs are those of the distribution each token was *sampled from*: the model's logits,
then the `MeshConstraint` masking, then the temperature — the order `HFEngine` applies them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch.utils.checkpoint import checkpoint

from ..core.constraint import ConstraintState, MeshConstraint

# --- packing -------------------------------------------------------------------------------


@dataclass
class PackedBatch:
    """Rows of `prompt + completion`, right-padded, with masks aligned to completion positions.

    Right padding puts every row's prompt at position 0, so the model's default positions
    (0, 1, 2, …) are the ones generation gave the real tokens; RoPE only sees differences anyway.
    Completion token t of row b sits at column `prompt_lens[b] + t` of `input_ids` and is
    predicted by the hidden state at column `prompt_lens[b] + t − 1`.
    """

    input_ids: torch.Tensor  # long [B, L], pad_id after each row's end
    attention_mask: torch.Tensor  # long [B, L]
    prompt_lens: torch.Tensor  # long [B]
    completion_ids: torch.Tensor  # long [B, Tc], pad_id after each completion
    completion_mask: torch.Tensor  # bool [B, Tc]: a real completion token (chosen or forced)
    reasoning_mask: torch.Tensor  # bool [B, Tc]: plan tokens the policy chose
    mesh_mask: torch.Tensor  # bool [B, Tc]: mesh codes the policy chose

    @property
    def loss_mask(self) -> torch.Tensor:
        """m_it: the tokens that enter the loss (reasoning | mesh)."""
        return self.reasoning_mask | self.mesh_mask

    @property
    def num_tokens(self) -> int:
        """Σ_i T_i of this batch; sum it over micro-batches and devices for `policy_loss`."""
        return int(self.loss_mask.sum())

    @property
    def num_sequences(self) -> int:
        """Rows with at least one loss token (the sequence-level normaliser's count)."""
        return int(self.loss_mask.any(dim=1).sum())

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def pack(samples_steps: Sequence, pad_id: int, device: torch.device | str = "cpu") -> PackedBatch:
    """Pack StepOutput-like rows (prompt_ids, completion_ids, reasoning_mask, mesh_mask)."""
    rows = list(samples_steps)
    if not rows:
        raise ValueError("pack needs at least one row")
    for i, r in enumerate(rows):
        n = len(r.completion_ids)
        if not r.prompt_ids:
            raise ValueError(f"row {i} has an empty prompt; a completion needs a token to condition on")
        if len(r.reasoning_mask) != n or len(r.mesh_mask) != n:
            raise ValueError(f"row {i}: masks of length {len(r.reasoning_mask)}/{len(r.mesh_mask)}, completion {n}")
    B = len(rows)
    L = max(len(r.prompt_ids) + len(r.completion_ids) for r in rows)
    Tc = max(len(r.completion_ids) for r in rows)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    comp = torch.full((B, Tc), pad_id, dtype=torch.long)
    cmask = torch.zeros((B, Tc), dtype=torch.bool)
    rmask = torch.zeros((B, Tc), dtype=torch.bool)
    mmask = torch.zeros((B, Tc), dtype=torch.bool)
    plens = torch.zeros(B, dtype=torch.long)
    for b, r in enumerate(rows):
        p, c = list(r.prompt_ids), list(r.completion_ids)
        ids[b, : len(p) + len(c)] = torch.tensor(p + c, dtype=torch.long)
        attn[b, : len(p) + len(c)] = 1
        plens[b] = len(p)
        if c:
            comp[b, : len(c)] = torch.tensor(c, dtype=torch.long)
            cmask[b, : len(c)] = True
            rmask[b, : len(c)] = torch.tensor([bool(x) for x in r.reasoning_mask])
            mmask[b, : len(c)] = torch.tensor([bool(x) for x in r.mesh_mask])
    if (rmask & mmask).any():
        raise ValueError("a token is marked both reasoning and mesh")
    return PackedBatch(*(t.to(device) for t in (ids, attn, plens, comp, cmask, rmask, mmask)))


# --- log-probs -----------------------------------------------------------------------------


def _sampling_logprobs(x, tokens, phase, n, head, constraint: MeshConstraint, temperature: float):
    """log π(token) and the entropy of one chunk of positions, as the sampler saw the distribution.

    `x` is hidden states (then `head` is the lm_head) or logits (then `head` is None).
    """
    logits = (head(x) if head is not None else x).float()  # generate() casts to fp32 before processing
    logits = constraint.mask_logits(logits, ConstraintState(phase, n))  # 1. the grammar
    logits = logits / temperature  # 2. TemperatureLogitsWarper
    logprobs = torch.log_softmax(logits, dim=-1)
    logp = logprobs.gather(-1, tokens[:, None])[:, 0]
    with torch.no_grad():  # entropy is a statistic: no graph, and -inf · 0 must not make NaN
        p = logprobs.exp()
        entropy = -torch.where(p > 0, p * logprobs, torch.zeros_like(p)).sum(-1)
    return logp, entropy


def completion_logprobs(
    model,
    packed: PackedBatch,
    constraint: MeshConstraint,
    temperature: float,
    chunk: int = 512,
    use_forward: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logp [B, Tc], entropy [B, Tc]) of each completion token under its sampling distribution.

    The distribution is exactly the one `HFEngine` samples from: model logits (cast to fp32)
    → `constraint.mask_logits` with the state before the token (`completion_states`, starting
    from `initial_state(prompt)`) → divided by `temperature`. That is the order transformers
    runs them: the custom logits processor (the constraint) first, then the temperature,
    top-k and top-p warpers.

    Top-k / top-p truncation is NOT part of the training distribution (as in TRL): the
    truncated distribution is not differentiable in a useful way and changes with every update.
    Rollouts used for training must therefore sample with `top_p=1.0, top_k=0`, so the
    sampled and trained distributions agree exactly (the ratio π_θ/π_old is then 1 at the first
    update, as it should). `temperature` must be the rollout's temperature (> 0: greedy decoding
    has no distribution to train).

    Forced tokens (`<mesh-start>` after max_plan_tokens, `<mesh-end>` after 1024 codes, anything
    after DONE) have probability 1, so logp 0; they are outside the loss mask anyway. Padding
    positions get logp 0 and entropy 0. `entropy` is of the masked, tempered distribution and
    carries no gradient; `logp` does.

    Memory: the 7B vocabulary is ~160k, so logits are never built for all [B, T, V] at once.
    By default the base model (`model.model`) gives hidden states and `model.lm_head` is applied
    here to chunks of `chunk` completion positions (prompt and padding positions get no logits at
    all); each chunk runs under activation checkpointing, so autograd keeps only the logp of a
    chunk, not its fp32 [chunk, V] intermediates, and recomputes them in backward. This is
    preferred over `model(..., logits_to_keep=…)`, which still projects all kept positions
    through lm_head in one go ([N, V] logits and their gradient in the model dtype).

    A wrapper whose own forward must run (DDP syncs gradients only through its forward) has no
    `lm_head` attribute; then, or with `use_forward=True`, the full forward runs with
    `logits_to_keep` = a boolean mask of the needed positions (transformers ≥ 5 flattens them to
    [N, V]), and the fp32 work is still done in checkpointed chunks.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for a sampling distribution, got {temperature}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    device = packed.input_ids.device
    B, Tc = packed.completion_ids.shape
    valid = packed.completion_mask
    out_logp = torch.zeros((B, Tc), dtype=torch.float32, device=device)
    out_ent = torch.zeros((B, Tc), dtype=torch.float32, device=device)
    if Tc == 0 or not bool(valid.any()):
        return out_logp, out_ent

    # Constraint state before every completion token, from the prompt's last token.
    last_prompt = packed.input_ids.gather(1, (packed.prompt_lens - 1)[:, None])
    states = constraint.completion_states(packed.completion_ids, constraint.initial_state(last_prompt))
    tokens, phase, n = packed.completion_ids[valid], states.phase[valid], states.n[valid]

    # Column of the hidden state that predicts completion token t of row b.
    t = torch.arange(Tc, device=device)
    cols = packed.prompt_lens[:, None] - 1 + t[None, :]  # [B, Tc]
    rows = torch.arange(B, device=device)[:, None].expand(B, Tc)

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: LoRA lives inside
    bare = hasattr(inner, "lm_head") and hasattr(inner, "model")
    if use_forward is None:
        use_forward = not bare
    if use_forward:
        x = _forward_logits(model, packed, rows[valid], cols[valid])
        head = None
    else:
        model = inner
        hidden = model.model(
            input_ids=packed.input_ids, attention_mask=packed.attention_mask, use_cache=False
        ).last_hidden_state
        x = hidden[rows[valid], cols[valid]]  # [N, H]
        head = model.lm_head
    if x.shape[0] != tokens.shape[0]:
        raise RuntimeError(f"got {x.shape[0]} positions for {tokens.shape[0]} completion tokens")

    logps, ents = [], []
    for s in range(0, tokens.shape[0], chunk):
        args = (x[s : s + chunk], tokens[s : s + chunk], phase[s : s + chunk], n[s : s + chunk])
        if torch.is_grad_enabled() and x.requires_grad:
            lp, en = checkpoint(
                _sampling_logprobs, *args, head, constraint, temperature, use_reentrant=False
            )
        else:
            lp, en = _sampling_logprobs(*args, head, constraint, temperature)
        logps.append(lp)
        ents.append(en)
    out_logp = out_logp.masked_scatter(valid, torch.cat(logps))
    out_ent = out_ent.masked_scatter(valid, torch.cat(ents))
    return out_logp, out_ent


_BOOL_LOGITS_TO_KEEP = [True]  # transformers < 5.2x slices logits_to_keep on one dim only


def _forward_logits(model, packed: PackedBatch, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """[N, V] logits of the (row, col) positions through the wrapper's own forward."""
    kwargs = dict(input_ids=packed.input_ids, attention_mask=packed.attention_mask, use_cache=False)
    if _BOOL_LOGITS_TO_KEEP[0]:
        keep = torch.zeros_like(packed.attention_mask, dtype=torch.bool)
        keep[rows, cols] = True  # row-major order = (b, t) order: cols rise with t
        try:
            return model(**kwargs, logits_to_keep=keep).logits
        except IndexError:  # this transformers cannot take a [B, L] mask: all logits, then pick
            _BOOL_LOGITS_TO_KEEP[0] = False
    return model(**kwargs, logits_to_keep=0).logits[rows, cols]


# --- the loss -------------------------------------------------------------------------------


@dataclass
class LossConfig:
    """Hi-GRPO loss settings.

    eps_low / eps_high: DAPO's decoupled clip ("clip-higher"): the ratio may rise to 1+ε_high
        for A > 0 but fall only to 1−ε_low for A < 0; the paper does not release its ε, DAPO uses
        0.2 / 0.28 and the paper's ablation credits decoupled clip with a gain.
    clip: False gives the plain r·A surrogate. With one update per rollout batch r = 1 exactly
        and the clip never acts; it matters with several updates per batch or stale rollouts.
    beta: β of the k3 KL penalty to the reference policy (paper: 0.01; 0 turns it off).
    aggregation: "token" divides the sum over all loss tokens by Σ_i T_i (the paper's form,
        DAPO's token-level average: long sequences are not down-weighted); "sequence" is GRPO's
        original mean over sequences of each sequence's token mean.
    """

    eps_low: float = 0.2
    eps_high: float = 0.28
    clip: bool = True
    beta: float = 0.01
    aggregation: Literal["token", "sequence"] = "token"

    def __post_init__(self):
        if self.aggregation not in ("token", "sequence"):
            raise ValueError(f"aggregation must be 'token' or 'sequence', got {self.aggregation!r}")
        if not 0 <= self.eps_low < 1 or self.eps_high < 0:
            raise ValueError(f"need 0 <= eps_low < 1 and eps_high >= 0, got {self.eps_low}, {self.eps_high}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """KL_it = π_ref/π_θ − log(π_ref/π_θ) − 1: unbiased for KL(π_θ‖π_ref), always ≥ 0."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cfg: LossConfig,
    num_tokens: float | None = None,
    num_sequences: float | None = None,
    entropy: torch.Tensor | None = None,
    behavior_logp: torch.Tensor | None = None,
    tis_cap: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_k for one micro-batch of one step, and detached statistics.

    logp, old_logp, ref_logp: [B, T] log-probs under π_θ (with gradient), π_old (the rollout
        policy; None means on-policy, r = 1 with the gradient of r) and π_ref (None: no KL).
    advantages: A per sequence [B] (or per token [B, T]).
    mask: m_it, bool [B, T].
    num_tokens: Σ_i T_i over the GLOBAL batch (every micro-batch of the optimiser step, every
        device) for "token" aggregation, so that accumulated micro-batches give the gradient of
        one big batch; default this batch's count. num_sequences: likewise for "sequence".
    behavior_logp: [B, T] log-probs of the policy that actually sampled when it is not π_old
        (rollouts from 8-bit weights): the clipped surrogate of each token is weighted by
        min(π_old / π_behavior, tis_cap), detached (truncated importance sampling).
    """
    mask = mask.bool()
    logp = logp.float()
    old = logp.detach() if old_logp is None else old_logp.float().detach()
    A = advantages.float().to(logp.device)
    if A.ndim == 1:
        A = A[:, None]
    A = A.expand_as(logp)
    zeros = torch.zeros_like(logp)

    ratio = torch.exp(torch.where(mask, logp - old, zeros))  # padded positions: r = 1, no inf
    A = torch.where(mask, A, zeros)  # a NaN advantage outside the mask must not poison the sum
    surrogate = ratio * A
    if cfg.clip:
        clipped = torch.clamp(ratio, 1 - cfg.eps_low, 1 + cfg.eps_high) * A
        surrogate = torch.minimum(surrogate, clipped)
    tis = None
    if behavior_logp is not None:
        gap = torch.where(mask, old - behavior_logp.float().to(old.device), zeros)
        tis = torch.exp(gap).clamp(max=tis_cap)
        surrogate = tis * surrogate
    per_token = -surrogate
    kl = None
    if ref_logp is not None and cfg.beta > 0:
        kl = k3_kl(logp, torch.where(mask, ref_logp.float().detach(), logp.detach()))
        per_token = per_token + cfg.beta * kl
    per_token = torch.where(mask, per_token, zeros)

    count = mask.sum()
    if cfg.aggregation == "token":
        denom = float(num_tokens) if num_tokens is not None else max(int(count), 1)
        if denom <= 0:
            raise ValueError(f"num_tokens must be > 0, got {num_tokens}")
        loss = per_token.sum() / denom
    else:
        lengths = mask.sum(dim=1)
        seq_mean = per_token.sum(dim=1) / lengths.clamp(min=1)
        denom = float(num_sequences) if num_sequences is not None else max(int((lengths > 0).sum()), 1)
        if denom <= 0:
            raise ValueError(f"num_sequences must be > 0, got {num_sequences}")
        loss = seq_mean.sum() / denom

    with torch.no_grad():
        k = max(int(count), 1)
        low = mask & (ratio < 1 - cfg.eps_low) & (A < 0)  # the clip binds: no gradient from these
        high = mask & (ratio > 1 + cfg.eps_high) & (A > 0)
        stats = {
            "loss": float(loss.detach()),
            "tokens": float(count),
            "ratio_mean": float(torch.where(mask, ratio, zeros).sum() / k),
            "clip_frac_low": float(low.sum() / k) if cfg.clip else 0.0,
            "clip_frac_high": float(high.sum() / k) if cfg.clip else 0.0,
        }
        if kl is not None:
            stats["kl"] = float(torch.where(mask, kl, zeros).sum() / k)
        if tis is not None:
            stats["tis_weight_mean"] = float(torch.where(mask, tis, zeros).sum() / k)
            stats["tis_capped_frac"] = float((mask & (tis >= tis_cap)).sum() / k)
            stats["rollout_logp_gap"] = float(gap.abs().sum() / k)  # |log π_old − log π_8bit| per token
        if entropy is not None:
            stats["entropy"] = float(torch.where(mask, entropy.float(), zeros).sum() / k)
    return loss, stats
