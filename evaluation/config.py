"""What one `ar3d eval` run is asked to do, and the error it raises when it cannot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.engine import SamplingConfig
from ..core.errors import Ar3dError

TRELLIS_RING = "ring:8@30"  # 8 views every 45° at 30° elevation, radius 2, FoV 40° (TRELLIS-style)


class EvalError(Ar3dError):
    """The evaluation cannot start or continue (bad settings, no Blender, an incompatible OUT)."""


@dataclass
class EvalConfig:
    """One evaluation run. Every field has a working default except ``out``.

    benchmark: a bundled suite's name or a JSONL file (default: the bundled ``ar3d-reason``).
    categories / limit: evaluate only these categories / the first ``limit`` prompts of each.
    model / vqvae / device / dtype: as ``ar3d generate`` (default model: $AR3D_MODEL, the demo…).
    label: the run's name in reports (default: the model's folder name).
    samples: samples per prompt. two_step: Hi-GRPO two-step generation (the refined mesh is scored).
    seed: base seed (see ``generation``). batch_size: prompts per generate call.
    sampling: temperature, top-p, top-k, plan length (the public demo's by default).
    views: the evaluation ring (``ring:8@30``: 8 views at 30° elevation; ``ring:4@30`` for 4;
        any ``headless.views.parse_views`` spec). resolution / engine / render_samples: renders.
    workers: Blender worker processes (None: ``PoolConfig``'s default). render_timeout_s: per mesh.
    render_backend: "local" (worker processes here) or "ray" (render actors on the Ray cluster at
        ``ray_address``: "auto", "local" or HOST:PORT; see ``ar3d.headless.ray_pool``).
    rewards: a reward preset (``geometry``, ``demo``, ``paper``), a TOML file, or ``none``.
    reward_resolution: side of the six reward views (rendered only when a reward reads views).
    metrics: None ("auto": clip, the FID inception and dinov2 whenever their weights are found;
        torchvision's inception_tv only in place of a missing FID Inception) or a list of
        ``clip``, ``inception``, ``inception_tv``, ``dinov2`` (required: missing weights are an error).
    clip_model / clip_checkpoint / inception_weights / inception_tv_weights / dinov2: where the
        extractors come from (see ``features``); an explicit one is required.
    feature_batch_size: images per forward pass of the extractors.
    kd_subsets / kd_subset_size: KD's random subsets (100 of 1000, shrunk to the smaller set).
    top_k: samples in the report's best / worst grids. progress: tqdm bars on stderr.
    """

    out: Path
    benchmark: str | None = None
    categories: list[str] | None = None
    limit: int | None = None
    model: str | None = None
    vqvae: str | None = None
    device: str | None = None
    dtype: str | None = None
    precision: str | None = None  # fp8 / int8 weights for generation (GPU; core/quantize.py)
    label: str | None = None
    samples: int = 1
    two_step: bool = False
    seed: int = 0
    batch_size: int = 8
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    views: str = TRELLIS_RING
    resolution: int = 512
    engine: str = "workbench"
    render_samples: int = 16
    workers: int | None = None
    render_timeout_s: float = 300.0
    render_backend: str = "local"
    ray_address: str = "auto"
    rewards: str = "geometry"
    reward_resolution: int = 256
    metrics: list[str] | None = None
    clip_model: str = "ViT-L-14"
    clip_checkpoint: str | None = None
    inception_weights: str | None = None
    dinov2: str | None = None
    inception_tv_weights: str | None = None
    feature_batch_size: int = 32
    kd_subsets: int = 100
    kd_subset_size: int = 1000
    top_k: int = 4
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.samples < 1:
            raise EvalError(f"samples must be >= 1, got {self.samples}")
        if self.batch_size < 1:
            raise EvalError(f"batch size must be >= 1, got {self.batch_size}")
        if self.kd_subsets < 1 or self.kd_subset_size < 2:
            raise EvalError("KD needs at least 1 subset of at least 2 features")

    def render_config(self):
        from ..headless.render_config import RenderConfig

        try:
            return RenderConfig(engine=self.engine, resolution=self.resolution, samples=self.render_samples,
                                views=self.views, background="transparent").validate()  # fmt: skip
        except ValueError as e:
            raise EvalError(f"render settings: {e}") from None

    def reward_render_config(self):
        from ..headless.render_config import RenderConfig

        return RenderConfig(engine=self.engine, resolution=self.reward_resolution, samples=self.render_samples,
                            views="six", background="transparent")  # fmt: skip
