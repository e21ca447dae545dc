"""Group-relative advantages and dynamic sampling for Hi-GRPO (numpy, no torch).

Rewards come as [P, G] arrays: P prompts, G samples each, NaN where a sample has no reward
(a failed render or judge). Step 1 is trained on R̃_high = R_high + λ·R_low, step 2 on R_low;
each step's A is normalised within each prompt's group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np


def step_rewards(r_high, r_low, lam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(R̃_high, R_low): step 1 also answers for the refined mesh it led to (λ = 1 in the paper)."""
    r_high = np.asarray(r_high, dtype=np.float64)
    r_low = np.asarray(r_low, dtype=np.float64)
    if r_high.shape != r_low.shape:
        raise ValueError(f"R_high {r_high.shape} and R_low {r_low.shape} differ in shape")
    return r_high + lam * r_low, r_low.copy()


def group_advantages(rewards, eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """A = (R − mean)/(std + eps) within each group, std the POPULATION std of the valid samples.

    Returns (adv [P, G], valid [P, G]); adv is NaN where invalid. A group with fewer than two
    valid samples has no baseline to compare with, so all of it is invalid.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"rewards must be [P, G], got shape {r.shape}")
    valid = ~np.isnan(r)
    count = valid.sum(axis=1, keepdims=True)
    valid &= count >= 2
    safe = np.where(valid, r, 0.0)
    n = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = safe.sum(axis=1, keepdims=True) / n
    var = np.where(valid, (r - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / n
    adv = (r - mean) / (np.sqrt(var) + eps)
    return np.where(valid, adv, np.nan), valid


def zero_spread(rewards, tol: float = 1e-6) -> np.ndarray:
    """bool [P]: the group cannot teach anything: max − min of its valid rewards ≤ tol, or < 2 valid.

    A spread test, not a mean or equality test: continuous rewards tie only up to float noise,
    and a group mean says nothing about spread ([0, 1] and [0.5, 0.5] have the same mean).
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"rewards must be [P, G], got shape {r.shape}")
    valid = ~np.isnan(r)
    hi = np.where(valid, r, -np.inf).max(axis=1)
    lo = np.where(valid, r, np.inf).min(axis=1)
    return (valid.sum(axis=1) < 2) | (hi - lo <= tol)


@dataclass
class DynamicSampling:
    """DAPO's dynamic sampling, driven by the trainer: keep generating until enough groups can learn.

    Per rollout batch the trainer calls `add(groups, rewards1, rewards2)` with step 1's R̃_high and
    step 2's R_low ([P, G] each; rewards2 None for one-step training). A group is dropped when its
    rewards have zero spread (`zero_spread` with `tol`) in every step (`drop_when="all"`, the
    default for Hi-GRPO: a group tied in one step still teaches the other) or in any step
    (`"any"`). Kept groups accumulate up to `target_groups`; the surplus of the last batch is
    discarded (it is neither kept nor counted as dropped). The trainer stops asking for batches
    when `full`, or when `exhausted` (1 + `max_extra_batches` batches seen without filling up), and
    then trains on `groups` — fewer than the target if exhausted. `dropped_fraction` is for the
    logs; `reset()` starts the next optimiser step. Disabled, every group is kept.
    """

    target_groups: int
    enabled: bool = True
    tol: float = 1e-6
    drop_when: Literal["all", "any"] = "all"
    max_extra_batches: int = 3
    groups: list = field(default_factory=list, init=False)
    batches: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)

    def __post_init__(self):
        if self.target_groups < 1:
            raise ValueError(f"target_groups must be >= 1, got {self.target_groups}")
        if self.drop_when not in ("all", "any"):
            raise ValueError(f"drop_when must be 'all' or 'any', got {self.drop_when!r}")
        if self.max_extra_batches < 0:
            raise ValueError(f"max_extra_batches must be >= 0, got {self.max_extra_batches}")

    def keep_mask(self, rewards1, rewards2=None) -> np.ndarray:
        """bool [P]: which groups of a batch can learn (all of them when disabled)."""
        flat1 = zero_spread(rewards1, self.tol)
        if not self.enabled:
            return np.ones_like(flat1)
        if rewards2 is None:
            return ~flat1
        flat2 = zero_spread(rewards2, self.tol)
        if flat1.shape != flat2.shape:
            raise ValueError(f"step rewards cover {flat1.shape[0]} and {flat2.shape[0]} groups")
        drop = (flat1 & flat2) if self.drop_when == "all" else (flat1 | flat2)
        return ~drop

    def add(self, groups: Sequence[Any], rewards1, rewards2=None) -> list:
        """Take one rollout batch; return the groups kept into `groups` from it."""
        groups = list(groups)
        keep = self.keep_mask(rewards1, rewards2)
        if len(groups) != keep.shape[0]:
            raise ValueError(f"{len(groups)} groups but rewards for {keep.shape[0]}")
        self.batches += 1
        self.seen += len(groups)
        self.dropped += int((~keep).sum())
        room = self.target_groups - len(self.groups)
        kept = [g for g, k in zip(groups, keep) if k][: max(room, 0)]
        self.groups.extend(kept)
        return kept

    @property
    def full(self) -> bool:
        return len(self.groups) >= self.target_groups

    @property
    def exhausted(self) -> bool:
        """Out of extra batches without filling up: train on what there is."""
        return not self.full and self.batches >= 1 + self.max_extra_batches

    @property
    def dropped_fraction(self) -> float:
        return self.dropped / self.seen if self.seen else 0.0

    def reset(self) -> None:
        self.groups, self.batches, self.seen, self.dropped = [], 0, 0, 0
