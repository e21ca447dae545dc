"""The trainer's process group: setting it up right, and the few collectives a step needs.

Why a module: every rule here exists because processes that disagree hang (a collective one
process skips waits forever) or race (independent trainers writing one checkpoint folder).
So the launch is checked against what accelerate set up, the decisions that change how many
forward passes a process runs are agreed on with a collective, and sharded weights are gathered
for generation so that rollouts need no collectives at all.

FSDP on CPUs: accelerate turns a CPU launch into plain data parallelism (``MULTI_CPU``) even
when the config asks for FSDP; torch's FSDP itself runs on CPUs with gloo. ``make_accelerator``
keeps the FSDP request in that case (``trainer/configs/accelerate/fsdp_cpu.yaml`` with
``ACCELERATE_USE_CPU=1``), which is how the sharded path is tested without GPUs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from ..core.errors import Ar3dError


class LaunchError(Ar3dError, RuntimeError):
    """The processes that were launched are not the process group accelerate set up."""


def make_accelerator():
    """An ``Accelerator`` for this launch, checked (``check_world_size``) before anything heavy."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    acc = Accelerator()
    asked_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if asked_fsdp and acc.distributed_type == DistributedType.MULTI_CPU:
        _keep_fsdp_on_cpu(acc)
    check_world_size(acc)
    return acc


def _keep_fsdp_on_cpu(acc) -> None:
    """Turn accelerate's CPU fallback (``MULTI_CPU``, i.e. DDP) back into the FSDP that was asked for.

    accelerate has no switch for this: ``AcceleratorState`` enables FSDP only in its branch for
    accelerator devices. Two things must change, in both of its shared states:
    - ``distributed_type``: every later ``AcceleratorState()`` (``set_seed``, ``save_state``, ...)
      copies ``PartialState``'s fields over its own, so setting it on ``acc.state`` alone is undone
      at once and ``prepare`` wraps the model in DDP. ``PartialState`` is a singleton whose
      attributes are shared by all its instances: set there, every copy agrees.
    - ``device``: accelerate's CPU device is ``cpu:0`` (its rank's index modulo
      ``torch.cpu.device_count()``); ``prepare`` passes it to FSDP as ``device_id``, which FSDP
      compares with ``torch.cpu.current_device()`` == ``cpu`` ("Inconsistent compute device and
      device_id"). Plain ``cpu`` is the same memory and matches. (``device_id=None`` does not work
      on CPUs: FSDP then asks for an accelerator device.)
    Only reached with CPU processes (``MULTI_CPU``): GPU launches get FSDP from accelerate itself."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables the launcher exported
    if acc.mixed_precision != "no":
        plugin.set_mixed_precision(acc.mixed_precision)  # what accelerate does on GPUs
    cpu = torch.device("cpu")
    for state in (PartialState(), acc.state):
        state.distributed_type = DistributedType.FSDP
        state.device = cpu
    acc.state.fsdp_plugin = plugin


def check_world_size(acc) -> None:
    """Stop when the launcher started N processes but accelerate set up another number.

    The shipped GPU configs on a machine without CUDA do exactly that: 8 processes, each of which
    falls back to a one-process run, train independently and overwrite one checkpoint folder."""
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched != acc.num_processes:
        cuda = torch.cuda.is_available()
        why = (
            f"{torch.cuda.device_count()} CUDA device(s) visible"
            if cuda
            else "no CUDA device here, so the GPU config fell back to one independent process each"
        )
        raise LaunchError(
            f"the launcher started {launched} processes (WORLD_SIZE={launched}) but accelerate set up "
            f"{acc.num_processes} ({acc.distributed_type.value}; {why}); they would train separately and "
            "race on one checkpoint folder. On CPUs launch with ACCELERATE_USE_CPU=1 (gloo; "
            "trainer/configs/accelerate/fsdp_cpu.yaml for sharded weights), else check the GPUs (nvidia-smi) "
            "and num_processes in the accelerate config."
        )


def is_sharded(acc) -> bool:
    """FSDP, or DeepSpeed (the trainer refuses DeepSpeed; see ``check_sharding``)."""
    from accelerate.utils import DistributedType

    return acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def check_sharding(acc) -> None:
    """DeepSpeed is not supported (README, "Training": ZeRO-3 was dropped for FSDP)."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.DEEPSPEED:
        raise LaunchError(
            "DeepSpeed is not supported by ar3d train: sharded full-parameter training runs on FSDP "
            "(trainer/configs/accelerate/fsdp.yaml; fsdp_cpu.yaml on CPUs). For DDP use ddp.yaml."
        )


def same_count(acc, n: int) -> int:
    """The largest n over all processes: DDP and FSDP need every process to run the same number
    of forward/backward passes (their collectives pair up), whatever each one drew."""
    if acc.num_processes == 1:
        return n
    t = torch.tensor([n], device=acc.device)
    return int(acc.gather(t).max())


def any_process(acc, flag: bool) -> bool:
    """True on every process when it is True on at least one (a decision all must take together)."""
    if acc.num_processes == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=acc.device)
    return bool(acc.reduce(t, reduction="sum").item() > 0)


def mean_across_processes(acc, stats: dict[str, float]) -> dict[str, float]:
    """Each process rolled out its own prompts: log the mean over all of them."""
    if acc.num_processes == 1:
        return stats
    from accelerate.utils import gather_object

    everyone = gather_object([stats])
    keys = set().union(*everyone)
    return {k: float(np.mean([s[k] for s in everyone if k in s])) for k in sorted(keys)}


def full_state_dict(acc, model) -> dict[str, torch.Tensor]:
    """The whole model's state dict on the main process (empty elsewhere); a collective under FSDP.

    ``accelerate.get_state_dict`` gathers FSDP weights with ``offload_to_cpu=True``, which on a
    CPU compute device reads freed memory (a segfault): torch's "move to CPU" is then a no-op that
    keeps a view of the gathered buffer, and the buffer is freed right after. On CPUs the gathered
    weights are already in CPU memory, so they are gathered without the offload."""
    from accelerate.utils import DistributedType

    fsdp1 = acc.distributed_type == DistributedType.FSDP and not getattr(acc, "is_fsdp2", False)  # (no is_fsdp2 before 1.6)
    if fsdp1 and acc.device.type == "cpu":
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        config = FullStateDictConfig(offload_to_cpu=False, rank0_only=True)
        with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, config):
            return model.state_dict()
    return acc.get_state_dict(model)


def reload_fsdp_optimizers(acc, input_dir) -> None:
    """After ``load_state``: restore the FSDP optimizers' state (Adam's moments and step count).

    accelerate loads a sharded FSDP1 optimizer into a template built from the optimizer's own
    state, which is empty until its first step, so a resumed run silently restarted Adam from
    zero (resume not bit-exact; GPUs too). torch's ``get_optimizer_state_dict`` builds the whole
    template (it creates the state with one zero-lr step on zero gradients: no weight changes)
    and DCP fills it from the files ``save_state`` wrote; optimizer i pairs with prepared model i,
    as in ``save_state``. Nothing to do without FSDP or with full (unsharded) optimizer files."""
    from accelerate.utils import DistributedType

    if acc.distributed_type != DistributedType.FSDP or getattr(acc, "is_fsdp2", False):
        return
    from torch.distributed.fsdp import StateDictType

    if acc.state.fsdp_plugin.state_dict_type != StateDictType.SHARDED_STATE_DICT:
        return
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    for i, optimizer in enumerate(acc._optimizers):
        model, inner = acc._models[i], getattr(optimizer, "optimizer", optimizer)  # the torch optimizer
        state = {"optimizer": get_optimizer_state_dict(model, inner)}
        dcp.load(state, storage_reader=dcp.FileSystemReader(str(Path(input_dir) / f"optimizer_{i}")))
        set_optimizer_state_dict(model, inner, state["optimizer"])


def full_weights(acc, model):
    """Around generation: every process holds the whole model, read-only, for the graph engine.

    FSDP: ``summon_full_params(recurse=True)`` gathers every unit once (one all-gather per unit,
    the same on every process), then generation runs on local tensors with no collective inside,
    so processes may write different numbers of tokens. Nothing is written back. One process or
    DDP: nothing to do."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.FSDP:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP.summon_full_params(model, writeback=False, recurse=True)
    return contextlib.nullcontext()
