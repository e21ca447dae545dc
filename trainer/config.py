"""The training configuration: one dataclass tree, read from TOML or YAML, with `--set` overrides.

Why one tree: a run is reproducible only if everything that shapes it is in one place, saved
next to every checkpoint (``TrainConfig.save``) and printed at start. Every field has a default;
``TrainConfig()`` *is* the paper's Hi-GRPO recipe (reference §3) except ``data.path``, which has
no sensible default (the paper's 8,400 captions are unreleased) and must be given.

Sections (``[model]``, ``[data]``, ``[rollout]``, ``[render]``, ``[rewards]``, ``[algorithm]``,
``[optim]``, ``[train]``, ``[checkpoint]``, ``[logging]``) are dataclasses below; their
docstrings document each field (sections in
``config_sections.py``, ``[render]`` in ``render_config.py``, loading and the TOML writer in
``config_io.py``; every name is re-exported here). ``[rewards]`` is kept as the plain table that
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

Saving: ``save(path)`` writes TOML with a tiny writer (``config_io.dumps_toml``) (the stdlib reads TOML but
cannot write it; no extra dependency), or JSON/YAML by extension. ``None`` fields are left out
of TOML (it has no null) — every optional field defaults to ``None``, so the round trip holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from .config_io import (  # noqa: F401  (re-exported: ar3d.trainer.config is the public module)
    ConfigError,
    apply_overrides,
    build_dataclass,
    dumps_toml,
    parse_override,
    plain,
    read_config_file,
)
from .config_sections import (  # noqa: F401
    AGGREGATIONS,
    DATA_FORMATS,
    DROP_WHEN,
    DTYPES,
    QWEN2_LORA_TARGETS,
    SCHEDULERS,
    AlgorithmSection,
    CheckpointSection,
    DataSection,
    LoggingSection,
    LoraSection,
    ModelSection,
    OptimSection,
    RolloutSection,
    SamplingSection,
    TrainSection,
)
from .render_config import RenderSection  # noqa: F401


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
            rewards = self.reward_config()
            if not self.rollout.two_step and not rewards.step2:
                problems.append("rewards.step2: is empty, but one-step GRPO (rollout.two_step = false) scores its "
                                "mesh with step 2's terms; list them under step2")  # fmt: skip
        except Exception as e:  # RewardConfigError, or a TypeError from a malformed term table
            problems.append(f"rewards: {e}")
        if problems:
            raise ConfigError("invalid training config:\n  " + "\n  ".join(problems))
        return self

    # --- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts/lists (tuples become lists), as the loaders read them."""
        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, validate: bool = True) -> "TrainConfig":
        cfg = build_dataclass(cls, data, "")
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
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume even though settings differ from the checkpoint's (they are listed)")  # fmt: skip
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config that ``add_cli_arguments``' options describe."""
    cfg = load_config(getattr(args, "config", None), getattr(args, "overrides", None) or [], validate=False)
    if getattr(args, "resume", None):
        cfg.checkpoint.resume = str(args.resume)
    if getattr(args, "allow_config_change", False):
        cfg.checkpoint.allow_config_change = True
    return cfg.validate()
