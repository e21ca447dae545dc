"""Sampling settings, without torch: the command line reads their defaults for `--help`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplingConfig:
    """Sampling settings; defaults are the public ShapeLLM-Omni demo's."""

    temperature: float = 0.7  # 0 means greedy decoding
    top_p: float = 0.7
    top_k: int = 8192
    # The demo's max_new_tokens is 2048; 1026 of them are <mesh-start>, 1024 codes, <mesh-end>.
    max_plan_tokens: int = 1022

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.max_plan_tokens < 0:
            raise ValueError(f"max_plan_tokens must be >= 0, got {self.max_plan_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0
