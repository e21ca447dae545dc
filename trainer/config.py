"""The training configuration: one dataclass tree, read from TOML or YAML, with `--set` overrides.

Why one tree: a run is reproducible only if everything that shapes it is in one place, saved
next to every checkpoint (``TrainConfig.save``) and printed at start. Every field has a default;
``TrainConfig()`` *is* the paper's Hi-GRPO recipe (reference §3) except ``data.path``, which has
no sensible default (the paper's 8,400 captions are unreleased) and must be given.

Sections (``[model]``, ``[data]``, ``[rollout]``, ``[render]``, ``[rewards]``, ``[algorithm]``,
``[optim]``, ``[train]``, ``[checkpoint]``, ``[logging]``) are dataclasses below; their
docstrings document each field. ``[rewards]`` is kept as the plain table that
``ar3d.core.rewards.ensemble.RewardConfig.from_dict`` parses (``TrainConfig.reward_config()``),
so the reward code owns its own schema.

Units: a *training step* (``train.steps``, ``checkpoint.every``, ``logging.*_every``,
``optim.warmup_steps``) is one rollout batch — ``rollout.prompts_per_step × train.grad_accum``
prompts per process, each with ``rollout.group_size`` samples — followed by
``algorithm.updates_per_batch`` optimizer updates over it. The paper's 8 GPUs × 1 prompt ×
grad-accum 2 is 16 prompts (128 samples) a step.

Loading: ``load_config(path, overrides)`` reads ``.toml`` (tomllib), ``.yaml``/``.yml``
(PyYAML) or ``.json``; overrides are ``section.key=value`` with ``value`` parsed as a TOML
literal (``3``, ``1e-6``, ``true``, ``[1, 2]``, ``"text"``) and taken as a plain string when it
is not one (``rewards.preset=demo``). Optional fields accept ``none``/``null`` to unset them.
Unknown keys, wrong types and bad values raise ``ConfigError`` naming the key and the fix.

Saving: ``save(path)`` writes TOML with a tiny writer in this module (the stdlib reads TOML but
cannot write it; no extra dependency), or JSON/YAML by extension. ``None`` fields are left out
of TOML (it has no null) — every optional field defaults to ``None``, so the round trip holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import re
import tomllib
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence, Union, get_args, get_origin, get_type_hints

from ..core.errors import Ar3dError


class ConfigError(Ar3dError, ValueError):
    """The training configuration is invalid; the message names the key and the fix."""


# Qwen2 attention + MLP projections. Qwen2.5-VL's vision blocks reuse the MLP names, hence
# ``exclude_modules``: text-to-3D never runs the vision tower, so adapters there would get no
# gradient (and DDP would complain about unused parameters).
QWEN2_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = ("bf16", "fp16", "fp32")
DATA_FORMATS = ("auto", "txt", "jsonl", "csv")
AGGREGATIONS = ("token", "sequence")
DROP_WHEN = ("all", "any")
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------
@dataclass
class LoraSection:
    """LoRA adapters (peft). Off by default: the paper fine-tunes the full model (lr 1e-6).

    enabled: train adapters instead of all weights (the reference policy is then the base
        model with adapters disabled, so no second copy of the weights is needed).
    r / alpha / dropout: rank, scaling numerator (scale = alpha / r) and dropout of the adapters.
    target_modules: module-name suffixes that get adapters (Qwen2 attention + MLP projections).
    exclude_modules: regex of module names that never get adapters (the vision tower).
    """

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(QWEN2_LORA_TARGETS))
    exclude_modules: str | None = r".*visual.*"

    def peft_config(self):
        """The ``peft.LoraConfig`` these settings describe."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=list(self.target_modules),
            exclude_modules=self.exclude_modules, bias="none", task_type="CAUSAL_LM",
        )  # fmt: skip

    def check(self) -> list[tuple[str, str]]:
        p = []
        if self.r < 1:
            p.append(("r", f"must be >= 1, got {self.r}"))
        if self.alpha <= 0:
            p.append(("alpha", f"must be > 0, got {self.alpha}"))
        if not 0 <= self.dropout < 1:
            p.append(("dropout", f"must be in [0, 1), got {self.dropout}"))
        if self.enabled and not self.target_modules:
            p.append(("target_modules", "is empty; name the modules to adapt (e.g. [\"q_proj\", \"v_proj\"])"))
        if self.exclude_modules:
            try:
                re.compile(self.exclude_modules)
            except re.error as e:
                p.append(("exclude_modules", f"is not a valid regex: {e}"))
        return p


@dataclass
class ModelSection:
    """The policy being trained.

    policy: local folder or Hugging Face id. None: ``ar3d.core.hub.default_policy()`` (the
        ``AR3D_MODEL`` setting, else the bundled demo model, else AR3D-R1).
    vqvae: the 3D VQ-VAE (folder/file/HF id). None: the hub's order (``AR3D_VQVAE``, a VQ-VAE
        bundled in the policy folder, then ``yejunliang23/3DVQVAE``).
    dtype: weights and autocast dtype, "bf16" | "fp16" | "fp32".
    gradient_checkpointing: recompute activations in the backward pass (saves most activation
        memory for ~30 % more compute; needed for 2×1024-token sequences on a 7B model).
    lora: see ``LoraSection``; when disabled every weight is trained (full fine-tune).
    """

    policy: str | None = None
    vqvae: str | None = None
    dtype: str = "bf16"
    gradient_checkpointing: bool = True
    lora: LoraSection = field(default_factory=LoraSection)

    def resolved_policy(self) -> str:
        from ..core.hub import default_policy

        return self.policy or default_policy()

    def check(self) -> list[tuple[str, str]]:
        p = [] if self.dtype in DTYPES else [("dtype", f"must be one of {list(DTYPES)}, got {self.dtype!r}")]
        return p + [(f"lora.{k}", m) for k, m in self.lora.check()]


@dataclass
class DataSection:
    """The training prompts (``ar3d.trainer.data.PromptSource``).

    path: a .txt (one prompt a line, ``#`` comments), .jsonl (one object a line) or .csv (header
        row) file. Required.
    format: "auto" (by extension) | "txt" | "jsonl" | "csv".
    prompt_field: the JSONL key / CSV column holding the prompt; with the default "prompt", rows
        without it fall back to "caption". Other fields are kept as metadata (rewards may use them).
    shuffle: a fresh permutation each epoch (deterministic from ``seed`` and the epoch number).
    seed: the shuffle seed (separate from ``train.seed`` so that runs with different sampling
        seeds can see the same prompt order).
    """

    path: str | None = None
    format: str = "auto"
    prompt_field: str = "prompt"
    shuffle: bool = True
    seed: int = 0

    def check(self) -> list[tuple[str, str]]:
        p = []
        if not self.path:
            p.append(("path", "is required: the prompt file to train on (set it in the config or --set data.path=FILE)"))
        if self.format not in DATA_FORMATS:
            p.append(("format", f"must be one of {list(DATA_FORMATS)}, got {self.format!r}"))
        elif self.format == "auto" and self.path:
            from .data import format_of

            try:
                format_of(self.path)
            except ValueError as e:
                p.append(("format", str(e)))
        if not self.prompt_field:
            p.append(("prompt_field", "must not be empty"))
        return p


@dataclass
class SamplingSection:
    """Rollout sampling (``ar3d.core.engine.SamplingConfig``). RL samples the policy's own
    distribution: temperature 1, no top-p/top-k truncation (the demo app's 0.7/0.7 would bias
    the log-probs the loss is computed on).

    temperature: > 0 for RL (0 = greedy gives identical samples and zero advantages).
    top_p: nucleus mass in (0, 1]; 1 = off. top_k: 0 = off.
    max_plan_tokens: cap on each reasoning text before ``<mesh-start>`` is forced.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_plan_tokens: int = 1022

    def to_sampling_config(self):
        from ..core.engine import SamplingConfig

        return SamplingConfig(**dataclasses.asdict(self))

    def check(self) -> list[tuple[str, str]]:
        try:
            self.to_sampling_config()
        except (ValueError, TypeError) as e:
            return [(_field_in(str(e), self), str(e))]
        return []


@dataclass
class RolloutSection:
    """How samples are generated.

    group_size: G, samples per prompt (GRPO compares them with each other; paper 8).
    prompts_per_step: prompts per process per micro-batch (the paper's per-device batch 1).
    two_step: True = Hi-GRPO (global plan → coarse mesh, then visual plan → refined mesh, two
        losses); False = one-step GRPO (one plan → one mesh, rewarded with step 2's terms).
    sampling: see ``SamplingSection``.
    """

    group_size: int = 8
    prompts_per_step: int = 1
    two_step: bool = True
    sampling: SamplingSection = field(default_factory=SamplingSection)

    def check(self) -> list[tuple[str, str]]:
        p = []
        if self.group_size < 2:
            p.append(("group_size", f"must be >= 2 (GRPO's advantage compares samples of one prompt), got {self.group_size}"))
        if self.prompts_per_step < 1:
            p.append(("prompts_per_step", f"must be >= 1, got {self.prompts_per_step}"))
        return p + [(f"sampling.{k}", m) for k, m in self.sampling.check()]


@dataclass
class RenderSection:
    """Rendering the decoded meshes for the rewards (``ar3d.headless``: ``RenderConfig`` +
    ``PoolConfig``).

    engine: "workbench" (fast OpenGL) | "eevee" | "cycles".
    resolution: square view side in pixels (judges see (resolution/28)² tokens a view).
    views: view layout ("six" = the six views every reward expects).
    background: "transparent" (rewards composite on white) | "white" | "black" | "gray" | [r, g, b].
    options: any other ``RenderConfig`` field (e.g. ``{workbench_aa = "FXAA"}``).
    workers: render processes; None = ``PoolConfig``'s default (min(4, CPUs)).
    timeout_s: per-render limit; a stuck worker is killed and the job retried.
    max_retries: re-runs of a render whose worker crashed or timed out.
    threads_per_worker: CPU threads per renderer; None = CPUs shared out between workers.
    backend: "local" (render processes on this machine) | "ray" (render actors on every node of
        the Ray cluster at ``ray_address``: "auto", "local" or HOST:PORT; a GPU node started
        with ``ray start --num-cpus 0`` renders nothing itself).
    workers_per_node: with "ray", render actors per node; None = the node's CPUs.
    python: the Python with bpy the render workers run under (None: $AR3D_BLENDER_PYTHON, else
        this one), so the training environment itself needs no bpy.
    """

    engine: str = "workbench"
    resolution: int = 512
    views: str | int = "six"
    background: str | list[float] = "transparent"
    options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    timeout_s: float = 300.0
    max_retries: int = 2
    threads_per_worker: int | None = None
    backend: str = "local"
    ray_address: str = "auto"
    workers_per_node: int | None = None
    python: str | None = None

    def to_render_config(self):
        from ..headless.render import RenderConfig

        bg = tuple(self.background) if isinstance(self.background, list) else self.background
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in self.options.items()}
        return RenderConfig(engine=self.engine, resolution=self.resolution, views=self.views, background=bg, **opts)

    def to_pool_config(self):
        from ..headless.pool import PoolConfig

        return PoolConfig(workers=self.workers, timeout_s=self.timeout_s, max_retries=self.max_retries,
                          threads_per_worker=self.threads_per_worker, python=self.python)  # fmt: skip

    def open_pool(self):
        """The render pool of this section: local worker processes or Ray render actors."""
        from ..headless.pool import open_pool

        ray = None
        if self.backend == "ray":
            from ..headless.ray_pool import RayConfig

            ray = RayConfig(address=self.ray_address, workers_per_node=self.workers_per_node)
        return open_pool(self.to_pool_config(), self.to_render_config(), self.backend, ray)

    def check(self) -> list[tuple[str, str]]:
        from ..headless.render import RenderConfig

        p = []
        known = {f.name for f in fields(RenderConfig)} - {"engine", "resolution", "views", "background"}
        bad = sorted(set(self.options) - known)
        if bad:
            p.append(("options", f"unknown RenderConfig fields {bad}; valid: {sorted(known)}"))
        else:
            try:
                self.to_render_config().validate()
            except (ValueError, TypeError) as e:
                p.append((_field_in(str(e), self, default="options"), str(e)))
        if self.workers is not None and self.workers < 1:
            p.append(("workers", f"must be >= 1 or none (automatic), got {self.workers}"))
        if self.timeout_s <= 0:
            p.append(("timeout_s", f"must be > 0, got {self.timeout_s}"))
        if self.max_retries < 0:
            p.append(("max_retries", f"must be >= 0, got {self.max_retries}"))
        if self.backend not in ("local", "ray"):
            p.append(("backend", f"must be 'local' or 'ray', got {self.backend!r}"))
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            p.append(("threads_per_worker", f"must be >= 1 or none, got {self.threads_per_worker}"))
        return p


@dataclass
class AlgorithmSection:
    """The policy-gradient objective (reference §3; DAPO's improvements are the defaults).

    eps_low / eps_high: decoupled clip range of the ratio, [1−eps_low, 1+eps_high] (DAPO
        0.2 / 0.28; the paper's values are unreleased).
    clip: apply the PPO clip at all (False: plain ratio·A).
    beta: weight of the k3 KL penalty to the reference (initial) policy (paper 0.01; 0 = no
        reference model is needed).
    aggregation: "token" = Σ over all tokens / Σ_i T_i (the paper's, DAPO's token-level mean);
        "sequence" = mean over samples of each sample's token mean (original GRPO).
    updates_per_batch: μ, optimizer updates per rollout batch. ar3d's choice is 2: with μ = 1
        the ratio is exactly 1 and the clip never acts (reference §3), so eps_low/eps_high and
        the paper's "decoupled clip" gain would be dead settings; the second pass costs one
        more forward/backward, small next to generation, rendering and judging.
    adv_eps: ε in A = (R − mean)/(std + ε), population std (paper 1e-4).
    dynamic_sampling: drop groups whose rewards do not spread (their advantage is 0 and only
        dilutes the batch) and generate more until the batch is full (DAPO).
    zero_spread_tol: a group "does not spread" when max(R) − min(R) <= this (tests the spread,
        not the mean, so ties of continuous rewards are caught).
    drop_when: for Hi-GRPO's two steps, "all" drops a group only when every step is flat (a
        flat step then just contributes no gradient); "any" drops it when one step is flat.
    max_extra_batches: how many extra rollout batches dynamic sampling may generate per step
        before it trains on what it has (a bound on the cost of a saturated reward).
    """

    eps_low: float = 0.2
    eps_high: float = 0.28
    clip: bool = True
    beta: float = 0.01
    aggregation: str = "token"
    updates_per_batch: int = 2
    adv_eps: float = 1e-4
    dynamic_sampling: bool = True
    zero_spread_tol: float = 1e-6
    drop_when: str = "all"
    max_extra_batches: int = 3

    def check(self) -> list[tuple[str, str]]:
        p = []
        for name in ("eps_low", "eps_high"):
            v = getattr(self, name)
            if not 0 < v < 1:
                p.append((name, f"must be in (0, 1), got {v} (DAPO uses eps_low 0.2, eps_high 0.28)"))
        if self.beta < 0:
            p.append(("beta", f"must be >= 0 (0 turns the KL penalty off), got {self.beta}"))
        if self.aggregation not in AGGREGATIONS:
            p.append(("aggregation", f"must be one of {list(AGGREGATIONS)}, got {self.aggregation!r}"))
        if self.updates_per_batch < 1:
            p.append(("updates_per_batch", f"must be >= 1, got {self.updates_per_batch}"))
        if self.adv_eps <= 0:
            p.append(("adv_eps", f"must be > 0, got {self.adv_eps}"))
        if self.zero_spread_tol < 0:
            p.append(("zero_spread_tol", f"must be >= 0, got {self.zero_spread_tol}"))
        if self.drop_when not in DROP_WHEN:
            p.append(("drop_when", f"must be one of {list(DROP_WHEN)}, got {self.drop_when!r}"))
        if self.max_extra_batches < 0:
            p.append(("max_extra_batches", f"must be >= 0, got {self.max_extra_batches}"))
        return p


@dataclass
class OptimSection:
    """AdamW and the learning-rate schedule.

    lr: peak learning rate (paper 1e-6, full fine-tune; LoRA usually wants ~1e-5–1e-4).
    weight_decay: AdamW's decoupled weight decay (0: RL fine-tunes should stay near the start).
    betas / eps: AdamW's moment decays and denominator epsilon.
    grad_clip: clip the global gradient norm to this (0 = off).
    warmup_steps: training steps of linear warm-up (ar3d's choice, 10: Adam's first updates
        are full-size whatever the gradient scale; the paper does not say).
    scheduler: "constant_with_warmup" | "constant" | "linear" | "cosine" (transformers'
        ``get_scheduler`` names; it steps once per optimizer update, so use
        ``TrainConfig.optimizer_updates()`` / ``warmup_updates()`` for its lengths).
    """

    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0
    warmup_steps: int = 10
    scheduler: str = "constant_with_warmup"

    def check(self) -> list[tuple[str, str]]:
        p = []
        if not self.lr > 0:
            p.append(("lr", f"must be > 0, got {self.lr}"))
        if self.weight_decay < 0:
            p.append(("weight_decay", f"must be >= 0, got {self.weight_decay}"))
        if not all(0 <= b < 1 for b in self.betas):
            p.append(("betas", f"both must be in [0, 1), got {list(self.betas)}"))
        if self.eps <= 0:
            p.append(("eps", f"must be > 0, got {self.eps}"))
        if self.grad_clip < 0:
            p.append(("grad_clip", f"must be >= 0 (0 = off), got {self.grad_clip}"))
        if self.warmup_steps < 0:
            p.append(("warmup_steps", f"must be >= 0, got {self.warmup_steps}"))
        if self.scheduler not in SCHEDULERS:
            p.append(("scheduler", f"must be one of {list(SCHEDULERS)}, got {self.scheduler!r}"))
        return p


@dataclass
class TrainSection:
    """The loop.

    steps: training steps (rollout batches; paper 1,200 — doubling helped, tripling hurt).
    grad_accum: micro-batches of ``rollout.prompts_per_step`` prompts per optimizer update
        (paper 2).
    seed: seeds python/numpy/torch (offset by the process rank) for sampling and dropout.
    """

    steps: int = 1200
    grad_accum: int = 2
    seed: int = 0

    def check(self) -> list[tuple[str, str]]:
        p = []
        if self.steps < 1:
            p.append(("steps", f"must be >= 1, got {self.steps}"))
        if self.grad_accum < 1:
            p.append(("grad_accum", f"must be >= 1, got {self.grad_accum}"))
        return p


@dataclass
class CheckpointSection:
    """Checkpoints (``ar3d.trainer.checkpoint``).

    dir: where ``step-XXXXXXXX`` checkpoint folders go.
    every: save every N training steps (0 = only at the end and on a graceful stop).
    keep_last: keep the newest K checkpoints (0 = keep all).
    resume: None = start fresh; "auto" = the newest complete checkpoint in ``dir`` (fresh
        when there is none); a path = that checkpoint.
    export_dir: where the final loadable policy folder goes (``ar3d generate --model``).
    export_final: export it when training ends (or stops on a signal, from where it stopped).
    """

    dir: str = "runs/hi-grpo/checkpoints"
    every: int = 100
    keep_last: int = 3
    resume: str | None = None
    export_dir: str = "runs/hi-grpo/policy"
    export_final: bool = True

    def check(self) -> list[tuple[str, str]]:
        p = []
        if self.every < 0:
            p.append(("every", f"must be >= 0 (0 = only at the end), got {self.every}"))
        if self.keep_last < 0:
            p.append(("keep_last", f"must be >= 0 (0 = keep all), got {self.keep_last}"))
        return p


@dataclass
class LoggingSection:
    """Metrics (``ar3d.trainer.metrics.MetricsLogger``).

    dir: TensorBoard events, ``metrics.jsonl`` (all scalars), ``text.jsonl``, ``images/``.
    tensorboard / wandb: the back-ends (W&B needs ``pip install wandb``).
    wandb_project / run_name: W&B project and run name (None: W&B's own choice).
    log_every: scalars every N steps. text_every: sample plans every N steps (0 = never).
    image_every: a grid of sample renders every N steps (0 = never).
    image_samples: rows (samples) in that grid.
    """

    dir: str = "runs/hi-grpo/logs"
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "ar3d"
    run_name: str | None = None
    log_every: int = 1
    text_every: int = 10
    image_every: int = 50
    image_samples: int = 4

    def check(self) -> list[tuple[str, str]]:
        p = []
        if self.log_every < 1:
            p.append(("log_every", f"must be >= 1, got {self.log_every}"))
        for name in ("text_every", "image_every"):
            if getattr(self, name) < 0:
                p.append((name, f"must be >= 0 (0 = never), got {getattr(self, name)}"))
        if self.image_samples < 1:
            p.append(("image_samples", f"must be >= 1, got {self.image_samples}"))
        return p


def _paper_rewards() -> dict[str, Any]:
    return {"preset": "paper"}


@dataclass
class TrainConfig:
    """Everything a training run depends on (defaults: the paper's Hi-GRPO settings)."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    rollout: RolloutSection = field(default_factory=RolloutSection)
    render: RenderSection = field(default_factory=RenderSection)
    rewards: dict[str, Any] = field(default_factory=_paper_rewards)
    algorithm: AlgorithmSection = field(default_factory=AlgorithmSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    logging: LoggingSection = field(default_factory=LoggingSection)

    # --- derived ---------------------------------------------------------------------------
    def reward_config(self):
        """The ``RewardConfig`` of the ``[rewards]`` table."""
        from ..core.rewards.ensemble import RewardConfig

        return RewardConfig.from_dict(self.rewards)

    def optimizer_updates(self) -> int:
        """Optimizer (and LR-scheduler) updates in the whole run."""
        return self.train.steps * self.algorithm.updates_per_batch

    def warmup_updates(self) -> int:
        return self.optim.warmup_steps * self.algorithm.updates_per_batch

    # --- checks ----------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Raise one ``ConfigError`` listing every invalid value; returns self so calls chain."""
        problems: list[str] = []
        for f in fields(self):
            if f.name == "rewards":
                continue
            problems += [f"{f.name}.{key}: {msg}" for key, msg in getattr(self, f.name).check()]
        try:
            self.reward_config()
        except Exception as e:  # RewardConfigError, or a TypeError from a malformed term table
            problems.append(f"rewards: {e}")
        if problems:
            raise ConfigError("invalid training config:\n  " + "\n  ".join(problems))
        return self

    # --- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts/lists (tuples become lists), as the loaders read them."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, validate: bool = True) -> "TrainConfig":
        cfg = _build(cls, data, "")
        return cfg.validate() if validate else cfg

    def save(self, path: str | Path) -> Path:
        """Write the config: TOML (default), ``.json`` or ``.yaml``/``.yml`` by extension."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        if path.suffix == ".json":
            text = json.dumps(data, indent=2) + "\n"
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
        else:
            text = "# ar3d training config (written by TrainConfig.save)\n" + dumps_toml(data)
        path.write_text(text)
        return path


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw table of a .toml / .yaml / .yml / .json config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found; pass an existing .toml or .yaml file")
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file '{path}': unknown extension '{path.suffix}'; use .toml, .yaml/.yml or .json")
    except ConfigError:
        raise
    except Exception as e:  # tomllib/yaml/json parse errors carry the line number
        raise ConfigError(f"cannot parse config file '{path}': {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a table of sections, not {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` → (["a", "b", "c"], value), value a TOML literal or else the string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"override '{text}' is not section.key=value (e.g. --set rollout.group_size=4)")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return [p.strip() for p in key.split(".")], value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set each ``section.key=value`` in the raw table (in place; later overrides win)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for i, k in enumerate(keys[:-1]):
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{'.'.join(keys[: i + 1])}' is a value, not a table")
        node[keys[-1]] = value
    return data


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), *, validate: bool = True) -> TrainConfig:
    """The config of ``path`` (None: the defaults) with ``overrides`` applied, validated."""
    data = read_config_file(path) if path is not None else {}
    apply_overrides(data, overrides or ())
    try:
        return TrainConfig.from_dict(data, validate=validate)
    except ConfigError as e:
        if path is None:
            raise
        raise ConfigError(f"config '{path}'{' with --set overrides' if overrides else ''}: {e}") from None


def add_cli_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--config FILE``, ``--set section.key=value`` (repeatable), ``--resume [CHECKPOINT]``."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="training config (.toml or .yaml); default: the paper's settings")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. --set rollout.group_size=4 --set rewards.lam=0.5 "
                             "(value: a TOML literal, else a string); repeatable")  # fmt: skip
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                        help="resume from CHECKPOINT, or (no value) from the newest checkpoint in checkpoint.dir")  # fmt: skip
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config that ``add_cli_arguments``' options describe."""
    cfg = load_config(getattr(args, "config", None), getattr(args, "overrides", None) or [], validate=False)
    if getattr(args, "resume", None):
        cfg.checkpoint.resume = str(args.resume)
    return cfg.validate()


# --- building dataclasses from raw tables ----------------------------------------------------
def _build(cls, data: Any, prefix: str):
    where = f"[{prefix}]" if prefix else "the top level (sections)"
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix}' must be a table of keys, got {data!r}")
    hints = get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in valid]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"unknown config key '{_join(prefix, k)}'{hint}; valid keys in {where}: {', '.join(valid)}"
        )
    kwargs = {k: _coerce(v, hints[k], _join(prefix, k)) for k, v in data.items()}
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError:
                pass
        raise _type_error(key, tp, value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - a field type this loader does not know
        raise TypeError(f"config field '{key}' has an unsupported type {tp}")
    raise _type_error(key, tp, value)


def _type_error(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or none" if type(None) in args else "")
    if origin is list:
        return f"a list of {_type_name(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} {_type_name(args[0])}" if args and args[-1] is not Ellipsis else "a list"
    if origin is dict or tp is dict:
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _field_in(message: str, section: Any, default: str = "") -> str:
    """The section field a ValueError message starts with (for a precise key in the report)."""
    names = sorted((f.name for f in fields(section)), key=len, reverse=True)
    return next((n for n in names if message.startswith(n)), default or names[-1])


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# --- a tiny TOML writer (tomllib reads only) ---------------------------------------------------
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps_toml(data: dict[str, Any]) -> str:
    """TOML text of nested dicts of str/int/float/bool/lists; ``None`` values are left out."""
    lines: list[str] = []

    def table(d: dict, prefix: str) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
        subtables = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and (scalars or not subtables):
            lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in subtables.items():
            table(v, f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k))

    table(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None)
        return "{" + items + "}"
    raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) to TOML")
