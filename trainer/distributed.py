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

import numpy as np
import torch

from ..core.errors import Ar3dError


class LaunchError(Ar3dError, RuntimeError):
    """The processes that were launched are not the process group accelerate set up."""


def make_accelerator():
    """An ``Accelerator`` for this launch, checked (``check_world_size``) before anything heavy."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    acc = Accelerator()
    asked_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if asked_fsdp and acc.distributed_type == DistributedType.MULTI_CPU:
        # accelerate only enables FSDP for accelerator devices; the plugin reads the same
        # FSDP_* variables the launcher exported from the config file.
        acc.state.distributed_type = DistributedType.FSDP
        acc.state.fsdp_plugin = FullyShardedDataParallelPlugin()
        acc.state.device = torch.device("cpu")  # FSDP compares it with the modules' "cpu"
    check_world_size(acc)
    return acc


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
