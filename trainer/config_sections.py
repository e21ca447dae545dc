"""The sections of the training configuration (all but ``[render]``, which lives in
``render_config.py``): each a dataclass whose docstring documents its fields and defaults, with a
``check()`` that lists (field, problem) pairs for ``TrainConfig.validate`` to report together.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from .config_io import field_in as _field_in



# Qwen2 attention + MLP projections. Qwen2.5-VL's vision blocks reuse the MLP names, hence
# ``exclude_modules``: text-to-3D never runs the vision tower, so adapters there would get no
# gradient (and DDP would complain about unused parameters).
QWEN2_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = ("bf16", "fp16", "fp32")
DATA_FORMATS = ("auto", "txt", "jsonl", "csv")
AGGREGATIONS = ("token", "sequence")
DROP_WHEN = ("all", "any")
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
ROLLOUT_PRECISIONS = ("default", "fp8", "int8")


@dataclass
class LoraSection:
    """LoRA adapters (peft). Off by default: the paper fine-tunes the full model (lr 1e-6).

    enabled: train adapters instead of all weights (the reference policy is then the base
        model with adapters disabled, so no second copy of the weights is needed).
    r / alpha / dropout: rank, scaling numerator (scale = alpha / r) and dropout of the adapters.
    target_modules: module-name suffixes that get adapters (Qwen2 attention + MLP projections).
    exclude_modules: regex of module names that never get adapters (the vision tower).
    merge_rollouts: generate with the adapter folded into the weights (the plain model's speed;
        costs one copy of the adapted weights; the training weights are restored bit for bit).
        False: every token runs the LoRA layers (no extra memory, slower). Not under FSDP.
    """

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(QWEN2_LORA_TARGETS))
    exclude_modules: str | None = r".*visual.*"
    merge_rollouts: bool = True

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
    precision: weights the rollouts decode with. "default": the training weights themselves
        (bf16 on GPUs). "fp8" / "int8": an 8-bit copy of the decoder made before each rollout
        (``trainer/rollout_weights.py``): generation reads half the bytes per token; the loss
        then weighs each token by min(π_old / π_8bit, ``algorithm.tis_cap``). CUDA only (fp8:
        Hopper or Ada), the graph engine, not with sharded weights (FSDP / ZeRO-3).
    """

    group_size: int = 8
    prompts_per_step: int = 1
    two_step: bool = True
    sampling: SamplingSection = field(default_factory=SamplingSection)
    precision: str = "default"

    def check(self) -> list[tuple[str, str]]:
        p = []
        if self.group_size < 2:
            p.append(("group_size", f"must be >= 2 (GRPO's advantage compares samples of one prompt), got {self.group_size}"))
        if self.prompts_per_step < 1:
            p.append(("prompts_per_step", f"must be >= 1, got {self.prompts_per_step}"))
        if self.precision not in ROLLOUT_PRECISIONS:
            p.append(("precision", f"must be one of {list(ROLLOUT_PRECISIONS)}, got {self.precision!r}"))
        return p + [(f"sampling.{k}", m) for k, m in self.sampling.check()]


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
    tis_cap: C of the truncated importance weight min(π_old / π_rollout, C) that corrects for
        rollouts sampled from 8-bit weights (``rollout.precision``; unused otherwise). Yao et
        al. 2025 ("Your efficient RL framework secretly brings you off-policy RL training")
        use 2: large enough to correct typical 8-bit drift, small enough to bound the variance.
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
    tis_cap: float = 2.0

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
        if not self.tis_cap >= 1:
            p.append(("tis_cap", f"must be >= 1 (a weight cap below 1 would shrink every token), got {self.tis_cap}"))
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
    rows_per_forward: how many sequences one forward + backward of an update takes (0: all rows
        of a micro-batch's step at once). Smaller bounds activation memory, e.g. to run without
        ``model.gradient_checkpointing`` (whose recomputed forward costs ~a third of an update);
        the gradient is the same, since every loss is normalised by the global token count.
    """

    steps: int = 1200
    grad_accum: int = 2
    seed: int = 0
    rows_per_forward: int = 0

    def check(self) -> list[tuple[str, str]]:
        p = []
        if self.steps < 1:
            p.append(("steps", f"must be >= 1, got {self.steps}"))
        if self.grad_accum < 1:
            p.append(("grad_accum", f"must be >= 1, got {self.grad_accum}"))
        if self.rows_per_forward < 0:
            p.append(("rows_per_forward", f"must be >= 0 (0: all rows at once), got {self.rows_per_forward}"))
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
    allow_config_change: resume even when settings differ from the checkpoint's config.toml
        (the differences are logged); False refuses and lists them (``--allow-config-change``).
    """

    dir: str = "runs/hi-grpo/checkpoints"
    every: int = 100
    keep_last: int = 3
    resume: str | None = None
    export_dir: str = "runs/hi-grpo/policy"
    export_final: bool = True
    allow_config_change: bool = False

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
