"""Rewards: score generated meshes from their six views (and the mesh itself).

    from ar3d.core.rewards import RewardEnsemble, RewardConfig, RewardBatch
    with RewardEnsemble(RewardConfig.preset("geometry")) as ensemble:
        scores = ensemble.score(RewardBatch(prompts, plans, views=views, meshes=meshes, step=1))

Modules: ``base`` (the protocol), ``ensemble`` (R_high, R_low, R̃_high; config), ``registry``
(names → rewards), ``hps`` (HPS v2.1), ``judges`` / ``judge_prompts`` / ``judge_client``
(VLM judges over vLLM's OpenAI-compatible API), ``vllm_serve`` (the commands that serve them),
``geometry`` (checks that need no weights), ``procedural`` (the demo model's attribute checks).
"""

from .base import VIEW_NAMES, Reward, RewardBatch, RewardConfigError, SampleScore
from .ensemble import HiGRPORewards, RewardConfig, RewardEnsemble, StepScores, TermConfig

__all__ = [
    "VIEW_NAMES",
    "Reward",
    "RewardBatch",
    "RewardConfigError",
    "SampleScore",
    "HiGRPORewards",
    "RewardConfig",
    "RewardEnsemble",
    "StepScores",
    "TermConfig",
]
