"""`ar3d judges`, `train` and `serve`: the long-running services."""

from __future__ import annotations

from .common import CliError


def cmd_judges(args) -> int:
    """Print (or run) the `vllm serve` commands of the default VLM judges."""
    from ..core.rewards import vllm_serve

    judges = vllm_serve.plan(gpus=vllm_serve.parse_gpus(args.gpus), host=args.host, port_base=args.port_base)
    if args.run:
        return vllm_serve.run(judges)
    for j in judges:
        print(f"# {j.served_name} ({j.role}) → {j.base_url}")
        print(j.shell())
    return 0


def cmd_train(args) -> int:
    """Hi-GRPO training (one process here; `accelerate launch -m ar3d.cli train …` for several)."""
    from ..trainer.config import config_from_args
    from ..trainer.trainer import HiGRPOTrainer

    cfg = config_from_args(args)
    if args.print_config:
        from ..trainer.config import dumps_toml

        print(dumps_toml(cfg.to_dict()))
        return 0
    HiGRPOTrainer(cfg).train()
    return 0


def cmd_serve(args) -> int:
    """The HTTP job server (see ar3d.server): the model loads once, jobs run in order."""
    try:
        from ..server.app import serve
    except ImportError as e:
        raise CliError(f"ar3d serve needs FastAPI and uvicorn ({e.name or e} is missing): pip install 'ar3d[serve]'") from None
    return serve(args)
