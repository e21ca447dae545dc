"""The learning-rate schedule both training stages share: linear warmup, then cosine decay over
the time (or step) budget down to a floor."""

from __future__ import annotations

import math


def cosine_lr(base: float, frac: float, step: int, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    frac = min(max(frac, 0.0), 1.0)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))
