"""Fixed launch configs for the 8-bit kernel (`_w8_kernel`), chosen per row bucket and shape.

By default the kernel autotunes: a GEMV for one row, a 16-row tensor-core dot for 2–16 rows
(split-K ×4 when K ≥ 4 N). An entry in `TUNED` pins the launch (tile, warps, stages, K split)
for its (row bucket, N, K); shapes and row counts without one keep the autotuned kernels.
`scripts/sweep_w8.py` times launches per row count on a GPU and prints entries to paste below.
Kept free of Triton so CPU code and tests can read and check the table.

Kinds: "gemv", the one-row kernel (M = 1 only); "dot", the several-row tensor-core kernel
(x tile of 16 rows · W tileᵀ), which may split K over `split_k` programs per column block
(fp32 partials + a reduce). Two other kinds were swept on an H100 on 2026-12-07 and deleted
because they never won at any row count or shape: the dot transposed (weight as the tall
operand, 4–35% slower) and a tensor-core-free multi-row GEMV (up to 9× slower).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass

KINDS = ("gemv", "dot")
MAX_ROWS = 16  # fixed configs cover decoding (1–16 rows); prefill keeps the autotuned tiles


@dataclass(frozen=True)
class W8Config:
    """One launch of the 8-bit product: kernel kind, tile, warps, pipeline stages, K slices."""

    kind: str
    block_n: int
    block_k: int
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"W8Config kind {self.kind!r}: one of {KINDS}")
        for name in ("block_n", "block_k", "num_warps"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"W8Config {name}={v}: a power of two")
        if self.kind == "dot" and self.block_k < 16:
            raise ValueError(f"W8Config {self}: tensor-core dots need tiles of at least 16")
        if self.num_stages < 1 or self.split_k < 1 or (self.kind == "gemv" and self.split_k != 1):
            raise ValueError(f"W8Config {self}: num_stages ≥ 1, split_k ≥ 1 (1 for gemv)")

    def check_rows(self, rows: int) -> None:
        if rows < 1 or rows > MAX_ROWS or (rows == 1) != (self.kind == "gemv"):
            raise ValueError(f"W8Config kind {self.kind!r} cannot run {rows} rows "
                             f"('gemv' is for 1 row, the others for 2–{MAX_ROWS})")  # fmt: skip

    def short(self) -> str:
        s = f"{self.kind} n{self.block_n} k{self.block_k} w{self.num_warps} s{self.num_stages}"
        return s + (f" split{self.split_k}" if self.split_k > 1 else "")

    def as_dict(self) -> dict:
        return asdict(self)


def next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def row_bucket(rows: int) -> int:
    """The table's row key: 1, 2, 4, 8, 16 (rows rounded up to a power of two); 0 above 16."""
    return next_pow2(rows) if rows <= MAX_ROWS else 0


# (row bucket, N, K) -> config; every other product autotunes. From `scripts/sweep_w8.py` on an
# H100 80GB HBM3, 2026-12-07 (fp8, 7B shapes; BENCHMARKS.md "8-bit weights"): only the fused
# q/k/v matrix (N = 4608, too few columns for the autotuned 16-wide tiles to fill 132 SMs
# without a K split) and o at 16 rows gained; the other matrices were within 2% of autotuning.
TUNED: dict[tuple[int, int, int], W8Config] = {
    (2, 4608, 3584): W8Config("dot", 32, 128, num_warps=4, num_stages=5, split_k=4),  # qkv: 11.6 µs vs 14.0 autotuned
    (4, 4608, 3584): W8Config("dot", 32, 128, num_warps=4, num_stages=5, split_k=4),  # qkv: 11.7 µs vs 14.3
    (8, 4608, 3584): W8Config("dot", 32, 128, num_warps=4, num_stages=5, split_k=4),  # qkv: 11.7 µs vs 14.0
    (16, 4608, 3584): W8Config("dot", 32, 128, num_warps=4, num_stages=5, split_k=4),  # qkv: 11.8 µs vs 14.7
    (16, 3584, 3584): W8Config("dot", 32, 128, num_warps=4, num_stages=5, split_k=4),  # o: 10.3 µs vs 10.6
}


@functools.lru_cache(maxsize=4)
def load_tuned(path: str) -> dict[tuple[int, int, int], W8Config]:
    """A table written by `scripts/sweep_w8.py --tuned-out`: tune on your own GPU without editing code."""
    try:
        entries = json.loads(open(path).read())
        return {(int(e["rows"]), int(e["n"]), int(e["k"])): W8Config(**e["config"]) for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"AR3D_W8_TUNED_FILE={path}: not a table from scripts/sweep_w8.py --tuned-out ({err}); "
                         "rerun the sweep or unset the variable") from err


def tuned_config(rows: int, n: int, k: int) -> W8Config | None:
    """The pinned launch for this product, or None (autotune).

    AR3D_W8_TUNED=0 ignores the table; AR3D_W8_TUNED_FILE=path replaces it with a sweep's table.
    """
    if os.environ.get("AR3D_W8_TUNED", "1") == "0":
        return None
    path = os.environ.get("AR3D_W8_TUNED_FILE")
    table = load_tuned(path) if path else TUNED
    return table.get((row_bucket(rows), n, k)) if table else None
