"""What ``--resume`` checks before it loads anything: that there is a checkpoint, and that the run
being resumed is the run that was saved.

A resumed run with a different learning rate, group size or reward table is a different
experiment wearing the old one's step count; ``check_resume_config`` lists every difference from
the checkpoint's ``config.toml`` and refuses unless ``checkpoint.allow_config_change`` is set
(``--allow-config-change``). Settings that only say where files go, how often to log or save,
how many steps to run in all, or how the render pool is staffed (``IGNORED``) may change freely.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Callable

from .checkpoint import CheckpointError, list_checkpoints

IGNORED = ("checkpoint.", "logging.", "train.steps", "render.workers", "render.timeout_s", "render.max_retries",
           "render.threads_per_worker", "render.backend", "render.ray_address", "render.workers_per_node",
           "render.python", "rewards.workers")  # fmt: skip


def no_checkpoint_message(root: str | Path) -> str:
    root = Path(root)
    partial = sorted(p.name for p in root.glob(".tmp-step-*")) if root.is_dir() else []
    extra = f" (only unfinished saves: {', '.join(partial)})" if partial else ""
    return (f"--resume: no complete checkpoint in '{root}'{extra}; starting at step 0. "
            "Check checkpoint.dir if you meant to continue a run.")  # fmt: skip


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def config_differences(saved: dict[str, Any], current) -> list[str]:
    """``key: saved → now`` for every setting that differs (``IGNORED`` keys left out)."""
    from .config import TrainConfig

    then = flatten(TrainConfig.from_dict(saved, validate=False).to_dict())  # defaults filled in, as now
    now = flatten(current.to_dict())
    keys = sorted(set(then) | set(now))
    return [f"{k}: {then.get(k)!r} → {now.get(k)!r}" for k in keys
            if then.get(k) != now.get(k) and not k.startswith(IGNORED)]  # fmt: skip


def check_resume_config(path: str | Path, current, log: Callable[[str], None]) -> list[str]:
    """Refuse to resume ``path`` with changed settings unless ``checkpoint.allow_config_change``."""
    f = Path(path) / "config.toml"
    if not f.is_file():
        return []
    try:
        saved = tomllib.loads(f.read_text())
        diffs = config_differences(saved, current)
    except Exception as e:
        raise CheckpointError(f"checkpoint config '{f}' cannot be read ({e}); {_previous(Path(path))}") from e
    if diffs and not current.checkpoint.allow_config_change:
        raise CheckpointError(
            f"the settings differ from those checkpoint '{path}' was trained with:\n  " + "\n  ".join(diffs)
            + "\nRestore them, or pass --allow-config-change (checkpoint.allow_config_change = true) to resume anyway."
        )  # fmt: skip
    if diffs:
        log("resuming with changed settings (--allow-config-change): " + "; ".join(diffs))
    return diffs


def _previous(path: Path) -> str:
    older = [p for p in list_checkpoints(path.parent) if p.name < path.name]
    return f"resume from '{older[-1]}' instead" if older else "start afresh or restore the file"
