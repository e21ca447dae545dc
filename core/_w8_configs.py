"""Fixed launch configs for the 8-bit kernel (`_w8_kernel`), chosen per row bucket and shape.

By default the kernel autotunes: a GEMV for one row, a 16-row tensor-core dot for 2–16 rows
(split-K ×4 when K ≥ 4 N). A group of 8 rows decoded at 1.27× one row's time on an H100
(BENCHMARKS.md, issue #20), so `scripts/sweep_w8.py` times other launches per row count and
prints `TUNED` entries to paste below. An entry replaces the autotuned launch for its
(row bucket, N, K); shapes and row counts without one keep today's kernels. Kept free of Triton
so CPU code and tests can read and check the table.

Kinds:
- "gemv": the one-row kernel with a fixed tile (M = 1 only).
- "dot": today's several-row kernel (x tile of 16 rows · W tileᵀ on tensor cores).
- "swap": the product transposed, W tile · x tileᵀ: the weight is the dot's tall left operand
  (BLOCK_N rows, so Hopper's warpgroup MMA can apply) and the rows of x, padded to 16, the
  narrow right one.
- "fma": no tensor cores: the GEMV's loop with BLOCK_M = next power of two ≥ M rows of x; each
  weight tile is widened to fp32 once and multiplied into every row (broadcast-multiply, one
  reduction at the end).
All but "gemv" may split K over `split_k` programs per column block (fp32 partials + a reduce).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass

KINDS = ("gemv", "dot", "swap", "fma")
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
        if self.kind in ("dot", "swap") and (self.block_k < 16 or (self.kind == "swap" and self.block_n < 16)):
            raise ValueError(f"W8Config {self}: tensor-core dots need tiles of at least 16")
        if self.num_stages < 1 or self.split_k < 1 or (self.kind == "gemv" and self.split_k != 1):
            raise ValueError(f"W8Config {self}: num_stages ≥ 1, split_k ≥ 1 (1 for gemv)")

    def block_m(self, rows: int) -> int:
        """Rows per tile: 16 for tensor-core dots (their smallest tile), else the next power of two."""
        return 16 if self.kind in ("dot", "swap") else next_pow2(rows)

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


# (row bucket, N, K) -> config. Empty: every shape keeps the autotuned kernels (today's behaviour).
# Paste `scripts/sweep_w8.py`'s printed entries here, e.g.
#   (8, 37888, 3584): W8Config("swap", 64, 128, num_warps=4, num_stages=4),
TUNED: dict[tuple[int, int, int], W8Config] = {}


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
