"""The rows that enter Hi-GRPO's loss: one step of one sample, with its advantage and the
log-probs the loss compares it against (π_old, π_ref, and π of the rollout's own weights when
those were 8-bit), plus the reward statistics of the rollouts they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .advantages import group_advantages
from .rollout import Rollout


@dataclass
class Row:
    """One step of one sample that enters the loss."""

    output: Any  # StepOutput: prompt_ids, completion_ids, reasoning_mask, mesh_mask
    advantage: float
    step: int  # 1 or 2
    micro: int  # which micro-batch (grad_accum index)
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    behavior_logp: torch.Tensor | None = None  # the engine's log π_8bit (8-bit rollouts only)


def loss_rows(rollouts: list[Rollout], kept, cfg) -> tuple[list[Row], dict[str, float]]:
    """Rows of the kept groups (``kept``: (rollout index, prompt index) pairs from dynamic
    sampling) with per-step group advantages; samples with a missing reward are left out."""
    rows: list[Row] = []
    excluded = total = 0
    adv_all: list[float] = []
    rewards_by_step: dict[int, list[float]] = {1: [], 2: []}
    per_micro = cfg.rollout.prompts_per_step
    for gi, (ri, p) in enumerate(kept):
        rollout = rollouts[ri]
        G = rollout.group_size
        for k, R in enumerate(rollout.rewards, start=1):
            adv, valid = group_advantages(R[p : p + 1], eps=cfg.algorithm.adv_eps)
            rewards_by_step[k] += [float(x) for x in R[p] if np.isfinite(x)]
            for g in range(G):
                total += 1
                if not valid[0, g]:
                    excluded += 1
                    continue
                sample = rollout.samples[p * G + g]
                rows.append(Row(sample.steps[k - 1], float(adv[0, g]), k, min(gi // per_micro, cfg.train.grad_accum - 1)))
                adv_all.append(float(adv[0, g]))
    stats = {"rollout/excluded_sample_fraction": excluded / total if total else 0.0,
             "advantage/mean": float(np.mean(adv_all)) if adv_all else 0.0,
             "advantage/std": float(np.std(adv_all)) if adv_all else 0.0,
             "advantage/abs_mean": float(np.mean(np.abs(adv_all))) if adv_all else 0.0}  # fmt: skip
    name = {1: "reward/r_high_tilde" if cfg.rollout.two_step else "reward/r", 2: "reward/r_low"}
    for k, vals in rewards_by_step.items():
        if vals:
            stats[name[k]] = float(np.mean(vals))
    stats.update(term_means(rollouts))
    return rows, stats


def attach_behavior_logprobs(rows: list[Row], device) -> None:
    """Each row's log π under the weights that sampled it, as the engine reported them."""
    for r in rows:
        lp = r.output.sample_logprobs
        if lp is None:
            raise ValueError(
                "rollout.precision fp8/int8 needs the log-probs the engine sampled with, and this engine does not "
                "report them: use the graph engine (AR3D_ENGINE=graph or unset) or rollout.precision = \"default\""
            )
        r.behavior_logp = torch.tensor(lp, dtype=torch.float32, device=device)


def term_means(rollouts: list[Rollout]) -> dict[str, float]:
    """Every reward dimension, per step, averaged over all rolled-out samples (kept or not)."""
    sums: dict[str, list[float]] = {}
    for r in rollouts:
        s = r.scores
        steps = [(1, s.step1), (2, s.step2)] if hasattr(s, "step1") else [(2, s)]  # one-step: step 2's terms
        if hasattr(s, "r_high"):
            sums.setdefault("reward/r_high", []).extend(v for v in s.r_high if v is not None)
        for k, st in steps:
            for term, scores in st.terms.items():
                vals = [x.value for x in scores if x.value is not None]
                sums.setdefault(f"reward/step{k}/{term}", []).extend(vals)
                n = len(scores)
                sums.setdefault(f"reward/step{k}/{term}_missing", []).append((n - len(vals)) / n if n else 0.0)
    return {k: float(np.mean(v)) for k, v in sums.items() if v}


def stack(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """Per-row 1-D tensors of differing lengths as one zero-padded [B, width] tensor."""
    out = torch.zeros(len(rows), width, device=rows[0].device, dtype=rows[0].dtype)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r[:width]
    return out
