"""`ar3d render`: the headless Blender render farm."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import CliError


def cmd_render(args) -> int:
    from ..headless.farm import collect_items, parse_shard, run_farm, shard
    from ..headless.pool import PoolConfig
    from ..headless.render_config import RenderConfig

    background = args.background
    if background not in ("transparent", "white"):
        try:
            background = tuple(float(c) for c in background.split(","))
            assert len(background) == 3
        except (ValueError, AssertionError):
            raise CliError(f"--background takes transparent, white or r,g,b in 0..1, not {args.background!r}") from None
    render_config = RenderConfig(engine=args.engine, resolution=args.resolution, samples=args.samples,
                                 views=args.views, device=args.device, background=background)  # fmt: skip
    pool_config = PoolConfig(workers=args.workers, timeout_s=args.timeout, max_retries=args.retries)
    ray = None
    try:  # every setting is checked before any work starts
        render_config.validate()
        for flag, value in (("--workers", args.workers), ("--workers-per-node", args.workers_per_node)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        if args.timeout <= 0 or args.retries < 0:
            raise ValueError(f"--timeout must be > 0 and --retries >= 0, got {args.timeout:g} and {args.retries}")
        pool_config.resolved_python()
        if args.ray is not None:
            from ..headless.ray_pool import RayConfig

            ray = RayConfig(address=args.ray, workers_per_node=args.workers_per_node).check()
    except ValueError as e:
        msg = str(e).replace("resolution must", "--resolution must").replace("samples must", "--samples must")
        raise CliError(f"ar3d render: {msg}") from None
    i, n = parse_shard(args.shard)
    items = shard(collect_items(args.inputs), i, n)
    if not items:  # a SLURM array with more tasks than meshes: an empty task is not a failure
        print(f"ar3d render (shard {i}/{n}): no meshes in this shard, nothing to do", file=sys.stderr)
        return 0
    out = Path(args.out)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="render", unit="mesh", file=sys.stderr)

    def progress(done, total):
        if bar is not None:
            bar.update(done - bar.n)

    try:
        summary = run_farm(items, out, render_config, pool_config, force=args.force, progress=progress, ray=ray)
    finally:
        if bar is not None:
            bar.close()
    shard_note = f" (shard {i}/{n})" if n > 1 else ""
    print(f"ar3d render{shard_note}: {summary.line()}", file=sys.stderr)
    for f in summary.failures:
        print(f"  failed {f['id']}: {f['error']}", file=sys.stderr)
    if summary.failed:
        print(f"  details in {out / 'errors.jsonl'}", file=sys.stderr)
    return 1 if summary.failed else 0
