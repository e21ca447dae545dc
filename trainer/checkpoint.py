"""Checkpoints that resume a run exactly, a loadable policy export, and a graceful stop on signals.

Design
------
A checkpoint is a folder ``<dir>/step-00000100`` holding::

    accelerate/             Accelerator.save_state: model, optimizer, LR scheduler, grad scaler
                            and every process's RNG states (python, numpy, torch, cuda), with
                            FSDP / DeepSpeed ZeRO-3 sharding handled by accelerate
    model.safetensors       (without an Accelerator) model weights: all of them, or only the
    optimizer.pt            trainable ones when some are frozen (LoRA: the frozen base is
    scheduler.pt            re-read from the policy path, so it is not copied every save)
    rng_rank{r}.pt          (without an Accelerator) each process's RNG states
    state_{name}_rank{r}.pt extra per-process state (``stateful=``: e.g. a sampling
                            ``torch.Generator``); accelerate's ``register_for_checkpointing``
                            keeps only the main process's copy, so ar3d saves these itself
    config.toml             the run's ``TrainConfig``
    metrics.json            a small JSON of the metrics so far (whatever the trainer passes)
    trainer_state.json      step, data position, world size, time, and the size of every
                            other file (``files``) — written LAST

The data position is the same on every process (``PromptSource`` walks one global stream), so
it lives in ``trainer_state.json`` rather than per process.

Atomicity: everything is written into ``<dir>/.tmp-step-00000100`` and renamed into place
only when complete (a rename is atomic on POSIX), so a crash mid-save never damages the newest
complete checkpoint; ``latest()`` ignores ``.tmp-*`` folders and folders without
``trainer_state.json``, and the next save deletes stale temp folders. The last ``keep_last``
complete checkpoints are kept. With several nodes ``dir`` must be on a shared file system.

Integrity: ``load`` first compares every file with the size ``trainer_state.json`` recorded
(a copy cut short by a full disk or an interrupted rsync is caught before any library reads it)
and reads this process's RNG state itself (accelerate skips an unreadable one with a log line);
either problem is a ``CheckpointError`` naming the file and the previous checkpoint to resume
from instead. Sizes, not hashes: hashing a 7B checkpoint on every save and resume costs minutes.

Every process must call ``save``/``load`` (FSDP and ZeRO-3 gather or scatter shards
collectively); only the main process writes the shared files.

``export_policy`` writes what ``ar3d generate --model`` loads: ``save_pretrained`` of the full
model (LoRA adapters merged into a fresh copy of the base, so training can go on unchanged;
the adapter itself is kept in ``adapter/`` for peft users), the tokenizer, and the VQ-VAE
files bundled in the source policy folder.

``GracefulStop`` turns the first SIGTERM/SIGINT into a flag the trainer checks after each step
(then it checkpoints and exits 0); the handlers are restored at once, so a second signal acts as
it would have without ar3d (SIGINT: KeyboardInterrupt, SIGTERM: termination).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..core.errors import Ar3dError
from .distributed import full_state_dict, reload_fsdp_optimizers

STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_FILE = "trainer_state.json"
FORMAT_VERSION = 1


class CheckpointError(Ar3dError, RuntimeError):
    """A checkpoint is missing, incomplete or does not fit the model being resumed."""


@dataclass
class ResumeState:
    """What ``CheckpointManager.load`` returns besides the restored objects."""

    path: Path
    step: int
    data_state: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- finding checkpoints ----------------------------------------------------------------------
def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """The complete checkpoints in ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest(root: str | Path) -> Path | None:
    """The newest complete checkpoint in ``root`` (None if there is none)."""
    found = list_checkpoints(root)
    return found[-1] if found else None


# --- RNG state --------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and (when present) CUDA RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _get_state(obj: Any) -> Any:
    return obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()


def _set_state(obj: Any, state: Any) -> None:
    obj.set_state(state) if isinstance(obj, torch.Generator) else obj.load_state_dict(state)


# --- save / load ------------------------------------------------------------------------------
class CheckpointManager:
    """Saves and restores training state under ``root`` (see the module docstring).

    accelerator: an ``accelerate.Accelerator`` whose model/optimizer/scheduler were prepared; it
        then saves them (and the RNGs) and the ``model``/``optimizer``/``scheduler`` arguments of
        ``save``/``load`` are ignored. None: plain torch (one process, or DDP without accelerate).
    """

    def __init__(self, root: str | Path, keep_last: int = 3, accelerator: Any = None) -> None:
        self.root = Path(root)
        self.keep_last = keep_last
        self.accelerator = accelerator

    @classmethod
    def from_config(cls, section, accelerator: Any = None) -> "CheckpointManager":
        """From a ``CheckpointSection`` (``TrainConfig.checkpoint``)."""
        return cls(section.dir, keep_last=section.keep_last, accelerator=accelerator)

    # process helpers
    @property
    def rank(self) -> int:
        if self.accelerator is not None:
            return self.accelerator.process_index
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank()
        return 0

    @property
    def world_size(self) -> int:
        if self.accelerator is not None:
            return self.accelerator.num_processes
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size()
        return 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def latest(self) -> Path | None:
        return latest(self.root)

    def resolve_resume(self, spec: str | Path | None) -> Path | None:
        """``checkpoint.resume``: None → None, "auto" → the newest here (or None), else that path."""
        if spec is None:
            return None
        if str(spec) == "auto":
            return self.latest()
        path = Path(spec)
        if path.is_dir() and not (path / STATE_FILE).is_file() and latest(path) is not None:
            return latest(path)  # a checkpoint root was given
        if not (path / STATE_FILE).is_file():
            raise CheckpointError(
                f"'{path}' is not a complete checkpoint (no {STATE_FILE}); pass a step-XXXXXXXX folder, "
                f"its parent, or --resume without a value for the newest in '{self.root}'"
            )
        return path

    def save(
        self,
        step: int,
        *,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        data_state: dict[str, Any] | None = None,
        config: Any = None,
        metrics: dict[str, Any] | None = None,
        stateful: Mapping[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write the checkpoint of ``step`` atomically and prune old ones; returns its folder.

        config: a ``TrainConfig`` (saved as config.toml) or a plain dict (config.json).
        stateful: name → object with ``state_dict``/``load_state_dict`` (or a ``torch.Generator``),
            saved per process. extra: small JSON-able values restored in ``ResumeState.extra``.
        """
        final = self.root / step_dir_name(step)
        tmp = self.root / f".tmp-{final.name}"
        if self.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            for stale in self.root.glob(".tmp-step-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
        self._barrier()

        if self.accelerator is not None:
            self.accelerator.save_state(str(tmp / "accelerate"))
        else:
            if model is not None and self.is_main:
                _save_weights(model, tmp / "model.safetensors")
            if optimizer is not None and self.is_main:
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            if scheduler is not None and self.is_main:
                torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save(rng_state(), tmp / f"rng_rank{self.rank}.pt")
        for name, obj in (stateful or {}).items():
            torch.save(_get_state(obj), tmp / f"state_{name}_rank{self.rank}.pt")
        self._barrier()

        if self.is_main:
            if config is not None:
                if hasattr(config, "save"):
                    config.save(tmp / "config.toml")
                else:
                    (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
            (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, default=_json_default))
            state = {"format": FORMAT_VERSION, "step": int(step), "data": data_state, "world_size": self.world_size,
                     "accelerate": self.accelerator is not None, "time": time.time(), "extra": extra or {},
                     "files": _file_sizes(tmp)}  # fmt: skip
            _write_json_atomic(tmp / STATE_FILE, state)  # last: marks the folder complete
            if final.exists():  # re-saving a step (e.g. after resuming from it): swap, then delete
                old = self.root / f".tmp-old-{final.name}"
                shutil.rmtree(old, ignore_errors=True)
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(final)
            _fsync_dir(self.root)
            self.prune()
        self._barrier()
        return final

    def prune(self) -> list[Path]:
        """Delete all but the newest ``keep_last`` complete checkpoints (0 keeps all)."""
        if self.keep_last <= 0 or not self.is_main:
            return []
        doomed = list_checkpoints(self.root)[: -self.keep_last]
        for p in doomed:
            shutil.rmtree(p, ignore_errors=True)
        return doomed

    def load(
        self,
        path: str | Path,
        *,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        stateful: Mapping[str, Any] | None = None,
    ) -> ResumeState:
        """Restore a checkpoint into the given objects (and the RNGs); returns step, data, metrics."""
        path = Path(path)
        state_file = path / STATE_FILE
        if not state_file.is_file():
            raise CheckpointError(f"'{path}' is not a complete checkpoint (no {STATE_FILE}); use latest() to find one")
        state = json.loads(state_file.read_text())
        if state.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint '{path}' has format {state.get('format')}, this ar3d reads {FORMAT_VERSION}")
        if bool(state.get("accelerate")) != (self.accelerator is not None):
            how = "with" if state.get("accelerate") else "without"
            raise CheckpointError(f"checkpoint '{path}' was saved {how} an Accelerator; resume it the same way")

        self._check_files(path, state.get("files"))
        try:
            if self.accelerator is not None:
                rng_file = path / "accelerate" / f"random_states_{self.rank}.pkl"
                if rng_file.is_file():  # accelerate would skip an unreadable one with a log line
                    self._read(rng_file, path)
                self.accelerator.load_state(str(path / "accelerate"))
                reload_fsdp_optimizers(self.accelerator, path / "accelerate")  # accelerate skips Adam's state
            else:
                if model is not None:
                    _load_weights(model, path / "model.safetensors")
                if optimizer is not None:
                    optimizer.load_state_dict(self._read(path / "optimizer.pt", path))
                if scheduler is not None:
                    scheduler.load_state_dict(self._read(path / "scheduler.pt", path))
                rng_file = path / f"rng_rank{self.rank}.pt"
                if rng_file.is_file():
                    set_rng_state(self._read(rng_file, path))
                else:  # resumed on more processes than saved: fresh but deterministic per rank
                    print(f"[ar3d] {rng_file.name} missing in '{path}'; rank {self.rank} keeps its seeded RNG", file=sys.stderr)
        except CheckpointError:
            raise
        except Exception as e:  # a library's own error on a damaged file: say which checkpoint and what to do
            raise CheckpointError(
                f"cannot load checkpoint '{path}': {type(e).__name__}: {str(e)[:300]}. {self._previous_hint(path)}"
            ) from e
        for name, obj in (stateful or {}).items():
            f = path / f"state_{name}_rank{self.rank}.pt"
            if not f.is_file():
                raise CheckpointError(f"checkpoint '{path}' has no state '{name}' for rank {self.rank} ({f.name})")
            _set_state(obj, self._read(f, path))

        config = None
        if (path / "config.toml").is_file():
            import tomllib

            config = tomllib.loads((path / "config.toml").read_text())
        elif (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
        return ResumeState(path=path, step=int(state["step"]), data_state=state.get("data"), metrics=metrics,
                           config=config, extra=state.get("extra") or {})  # fmt: skip


    # -- integrity ------------------------------------------------------------------------------
    def previous(self, path: Path) -> Path | None:
        """The newest complete checkpoint before ``path`` in its folder (None if none)."""
        m = STEP_DIR.match(path.name)
        if not m:
            return None
        older = [p for p in list_checkpoints(path.parent) if int(STEP_DIR.match(p.name).group(1)) < int(m.group(1))]
        return older[-1] if older else None

    def _previous_hint(self, path: Path) -> str:
        prev = self.previous(path)
        if prev is None:
            return "There is no earlier checkpoint: start afresh (without --resume) or restore the file."
        return f"Resume from the previous checkpoint instead: --resume {prev}"

    def _check_files(self, path: Path, sizes: Mapping[str, int] | None) -> None:
        for rel, size in (sizes or {}).items():
            f = path / rel
            actual = f.stat().st_size if f.is_file() else None
            if actual != size:
                what = "is missing" if actual is None else f"is truncated or damaged ({actual} of {size} bytes)"
                raise CheckpointError(f"checkpoint file '{f}' {what}. {self._previous_hint(path)}")

    def _read(self, f: Path, path: Path) -> Any:
        try:
            return torch.load(f, weights_only=False)
        except Exception as e:
            raise CheckpointError(
                f"checkpoint file '{f}' cannot be read ({type(e).__name__}: {str(e)[:200]}); "
                f"it is truncated or damaged. {self._previous_hint(path)}"
            ) from e


def _file_sizes(root: Path) -> dict[str, int]:
    return {str(f.relative_to(root)): f.stat().st_size for f in sorted(root.rglob("*")) if f.is_file()}


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    if all(p.requires_grad for p in params.values()):
        return model.state_dict()
    return {k: p for k, p in params.items() if p.requires_grad}


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in _trainable_state(model).items()}
    # tied weights share storage; safetensors refuses aliases, so clone them apart
    seen: set[int] = set()
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            state[k] = v.clone()
        seen.add(ptr)
    save_file(state, str(path))


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"checkpoint weights '{path}' missing")
    state = load_file(str(path))
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint '{path.parent}' does not fit this model: unexpected weights {result.unexpected_keys[:5]}… "
            "(different model or LoRA settings than when it was saved?)"
        )
    missing_trainable = [k for k in result.missing_keys if k in dict(model.named_parameters())
                         and dict(model.named_parameters())[k].requires_grad]  # fmt: skip
    if missing_trainable:
        raise CheckpointError(f"checkpoint '{path.parent}' lacks trainable weights {missing_trainable[:5]}…")


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    with tmp.open("w") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, torch.Tensor) and o.numel() == 1:
        return o.item()
    return str(o)  # paths and the like


# --- export -----------------------------------------------------------------------------------
VQVAE_FILES = ("vqvae.safetensors", "vqvae.bin", "3DVQVAE.bin", "vqvae_config.json")


def export_policy(
    model: torch.nn.Module,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    accelerator: Any = None,
    merge_lora: bool = True,
    base_model: str | Path | None = None,
    source_dir: str | Path | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write a policy folder ``ar3d generate --model OUT`` loads; call it on every process.

    model: the trained model (wrapped or not; a peft model for LoRA).
    merge_lora: for a peft model, also save the merged full model (re-reads the base from
        ``base_model``, default the adapter's ``base_model_name_or_path``, so the training copy
        is not touched). Without merging only ``adapter/`` is written, which ``generate`` cannot load.
    source_dir: the policy folder whose bundled VQ-VAE files are copied (default: the base
        model's folder when it is local).
    info: JSON-able facts about the run (step, config path…) written to ``ar3d_export.json``.
    """
    out = Path(out_dir)
    if accelerator is not None:
        state = full_state_dict(accelerator, model)  # collective under FSDP / ZeRO-3
        model = accelerator.unwrap_model(model)
        is_main = accelerator.is_main_process
    else:
        state = None
        is_main = not (torch.distributed.is_available() and torch.distributed.is_initialized()) or torch.distributed.get_rank() == 0
    if is_main:
        tmp = out.parent / f".tmp-{out.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        base_dir = _export_model(model, tmp, state, merge_lora, base_model)
        tokenizer.save_pretrained(tmp)
        src = Path(source_dir) if source_dir is not None else base_dir
        if src is not None and src.is_dir():
            for name in VQVAE_FILES:
                if (src / name).is_file() and not (tmp / name).exists():
                    shutil.copy2(src / name, tmp / name)
        (tmp / "ar3d_export.json").write_text(json.dumps({"time": time.time(), **(info or {})}, indent=2, default=_json_default))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return out


def _export_model(model, tmp: Path, state, merge_lora: bool, base_model) -> Path | None:
    """Save the model into ``tmp``; returns the base model folder when it is local."""
    try:
        from peft import PeftModel
    except ImportError:  # no peft: it cannot be a peft model
        PeftModel = None  # noqa: N806
    if PeftModel is not None and isinstance(model, PeftModel):
        adapter_dir = tmp / "adapter"
        model.save_pretrained(adapter_dir, state_dict=state)
        adapter_name = getattr(model, "active_adapter", "default")
        base = str(base_model or model.peft_config[adapter_name].base_model_name_or_path or "")
        base_dir = Path(base) if base and Path(base).is_dir() else None
        if merge_lora:
            if not base:
                raise CheckpointError("cannot merge the LoRA adapter: the base model is unknown; pass base_model=")
            from ..core.hub import resolve_policy

            base_cls = type(model.get_base_model())
            dtype = next(model.parameters()).dtype
            fresh = base_cls.from_pretrained(str(resolve_policy(base)), dtype=dtype)
            merged = PeftModel.from_pretrained(fresh, str(adapter_dir)).merge_and_unload()
            merged.save_pretrained(tmp, safe_serialization=True)
            base_dir = base_dir or resolve_policy(base)
        return base_dir
    model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    name = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return Path(name) if name and Path(name).is_dir() else None


# --- graceful stop ----------------------------------------------------------------------------
class GracefulStop:
    """First SIGTERM/SIGINT → ``requested`` (checkpoint, then exit 0); a second → the old handler.

    Use as a context manager (or ``install()``/``uninstall()``) in the main thread::

        with GracefulStop() as stop:
            for step in ...:
                train_step()
                if stop.should_stop(accelerator):
                    manager.save(step, ...)
                    break
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT), quiet: bool = False) -> None:
        self.signals = tuple(signals)
        self.quiet = quiet
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> "GracefulStop":
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("GracefulStop must be installed from the main thread (Python delivers signals there)")
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def uninstall(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        self.uninstall()  # the next signal gets the previous (default) behaviour
        if not self.quiet:
            print(f"\n[ar3d] {self.signal_name}: finishing this step, saving a checkpoint and exiting; "
                  "send it again to stop at once", file=sys.stderr, flush=True)  # fmt: skip

    def should_stop(self, accelerator: Any = None) -> bool:
        """The flag, agreed across processes (any process signalled → all stop) when given an
        Accelerator with several processes; every process must call it at the same point."""
        if accelerator is None or accelerator.num_processes <= 1:
            return self.requested
        flag = torch.tensor([1.0 if self.requested else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)

    def __enter__(self) -> "GracefulStop":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()
