"""The heavy parts a run loads once and a comparison shares between its two runs: feature
extractors, the reward ensemble, the render pool's backend, and its jobs' results."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from .config import EvalConfig


def load_features(config: EvalConfig):
    """The feature extractors ``config`` asks for (see ``FeatureSet.load``)."""
    from .features import FeatureSet

    c = config
    return FeatureSet.load(c.metrics, clip_model=c.clip_model, clip_checkpoint=c.clip_checkpoint,
                           inception_weights=c.inception_weights, dinov2=c.dinov2, device=c.device,
                           batch_size=c.feature_batch_size, inception_tv_weights=c.inception_tv_weights)  # fmt: skip


def load_rewards(config: EvalConfig):
    """The reward ensemble of ``config.rewards`` (a preset, a TOML file, or none → None); judges
    it needs must be up (``health_check``)."""
    spec = config.rewards
    if spec in (None, "", "none"):
        return None
    from ..core.rewards import RewardConfig, RewardEnsemble

    if spec.endswith(".toml") or Path(spec).is_file():
        reward_config = RewardConfig.from_toml(spec)
    else:
        reward_config = RewardConfig.preset(spec)
    ensemble = RewardEnsemble(reward_config)
    try:
        ensemble.health_check()
    except BaseException:
        ensemble.close()
        raise
    return ensemble


def job_result(future: Future):
    """A pool job's JobResult; a job cancelled by a pool shutdown becomes a failed one."""
    from ..headless.pool import JobResult

    try:
        return future.result()
    except Exception as e:
        return JobResult(ok=False, error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)


def ray_config(c: EvalConfig):
    if c.render_backend != "ray":
        return None
    from ..headless.ray_pool import RayConfig

    return RayConfig(address=c.ray_address)
