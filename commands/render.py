"""`ar3d render`: the headless Blender render farm."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import CliError


def cmd_render(args) -> int:
    from ..headless.farm import collect_items, parse_shard, run_farm, shard
    from ..headless.pool import PoolConfig
    from ..headless.render import RenderConfig

    i, n = parse_shard(args.shard)
    items = shard(collect_items(args.inputs), i, n)
    if not items:
        raise CliError("no meshes to render in this shard")
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
    out = Path(args.out)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="render", unit="mesh", file=sys.stderr)

    def progress(done, total):
        if bar is not None:
            bar.update(done - bar.n)

    try:
        summary = run_farm(items, out, render_config, pool_config, force=args.force, progress=progress)
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
