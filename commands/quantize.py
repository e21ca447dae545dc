"""`ar3d quantize`: a copy of a policy folder with 8-bit weights, for faster and smaller starts."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import silence_progress_bars


def cmd_quantize(args) -> int:
    if args.quiet:
        silence_progress_bars()
    from tqdm import tqdm

    from ..core.prequantized import WEIGHTS_FILE, write_quantized

    def progress(blocks):
        return tqdm(blocks, desc=f"quantizing to {args.precision}", unit="block", file=sys.stderr, disable=args.quiet)

    meta = write_quantized(args.model, args.output, args.precision, force=args.force, progress=progress)
    out = Path(args.output)
    src = Path(meta["source"]["path"])
    before = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    after = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}: {len(meta['modules'])} linear layers in {meta['precision']} ({meta['scheme']} scales), "
          f"{(out / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB of weights; folder {after / 1e6:.1f} MB "
          f"(source {before / 1e6:.1f} MB). Run it with --model {out} on a CUDA GPU.")  # fmt: skip
    return 0
