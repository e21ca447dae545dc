"""``python -m ar3d.procedural``: write a procedural dataset file (see :mod:`.dataset`)."""

import argparse
import sys
import time


def main(argv=None) -> int:
    from .captions import DEFAULT_WORDING, WORDINGS
    from .dataset import iter_samples, write_dataset
    from .families import FAMILY_NAMES

    ap = argparse.ArgumentParser(prog="python -m ar3d.procedural", description=__doc__)
    ap.add_argument("--n", type=int, required=True, help="number of samples")
    ap.add_argument("--split", choices=("train", "test"), default="train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--method", choices=("fast", "exact", "reference"), default="fast", help="voxeliser")
    ap.add_argument(
        "--wording",
        choices=WORDINGS,
        default=DEFAULT_WORDING,
        help="caption wording: v2 (digits and words, synonyms, held-out phrasings) or v1 (the shipped model's data)",
    )
    ap.add_argument("--families", default=None, help=f"comma-separated subset of: {','.join(FAMILY_NAMES)}")
    ap.add_argument("--out", required=True, help="output .npz (a .jsonl of the metadata is written beside it)")
    args = ap.parse_args(argv)
    fams = args.families.split(",") if args.families else None
    t = time.time()
    samples = []
    stream = iter_samples(
        args.n, args.split, args.seed, args.workers, families=fams, method=args.method, wording=args.wording
    )
    for i, s in enumerate(stream):
        samples.append(s)
        if (i + 1) % 500 == 0:
            print(f"{i + 1}/{args.n} samples, {(i + 1) / (time.time() - t):.1f}/s", file=sys.stderr)
    path = write_dataset(args.out, samples)
    dt = time.time() - t
    print(f"wrote {len(samples)} samples to {path} in {dt:.0f}s ({len(samples) / dt:.1f} samples/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
