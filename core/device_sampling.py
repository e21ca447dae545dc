"""Drawing the next tokens on the device, with no host synchronisation: the graph engine's
sampler, shared by its full-vocabulary step and its mesh-code step (`core.code_head`)."""

from __future__ import annotations

import torch

from .sampling import SamplingConfig


def sample_tokens(logits, sampling: SamplingConfig, temperature, top_p):
    """Next tokens under transformers' warper order (temperature → top-k → top-p), on the device,
    and log π of each under that final distribution (0 when greedy).

    With top-k, top-p is applied to the k survivors only (the others are at -inf already), so
    the vocabulary is never sorted. Sampling is the exponential race (argmax of p / E,
    E ~ Exp(1)), which draws exactly from p without the host synchronisation `torch.multinomial`
    may need."""
    if sampling.greedy:
        token = logits.argmax(dim=-1)
        return token, torch.zeros(token.shape, dtype=torch.float32, device=token.device)
    scores = logits / temperature
    k = sampling.top_k
    index = None
    if 0 < k < scores.shape[-1]:
        kept, index = torch.topk(scores, k, dim=-1)  # sorted, largest first
        # transformers keeps ties with the k-th value; they have the k-th score, so only their
        # count could differ, and random float logits do not tie
        scores = kept
    if sampling.top_p < 1.0:
        sorted_scores, order = (scores.flip(-1), None) if index is not None else torch.sort(scores, dim=-1)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)  # ascending, as transformers' TopP
        drop_sorted = cumulative <= (1 - top_p)
        drop_sorted[..., -1] = False  # always keep the most likely token
        drop = drop_sorted.flip(-1) if order is None else torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    probs = scores.softmax(dim=-1)
    race = torch.empty_like(probs).exponential_()
    choice = (probs / race).argmax(dim=-1)
    logp = scores.gather(-1, choice[..., None])[..., 0] - torch.logsumexp(scores, dim=-1)
    token = choice if index is None else index.gather(-1, choice[..., None])[..., 0]
    return token, logp
