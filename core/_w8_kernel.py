"""The Triton kernel behind `QuantLinear` on CUDA: y = (x @ q.T) * scale + bias.

One row (batch-1 decoding, the latency case) is a GEMV: each program owns BLOCK_N output
channels, streams their 8-bit weight tiles along K, widens them to fp32 in registers and keeps a
[BLOCK_N, BLOCK_K] fp32 partial sum that is reduced once at the end, so the loop is only loads
and FMAs. Several rows (a group of samples, a prompt's prefill) use a tensor-core dot on tiles of
BLOCK_M rows instead; every weight byte is still read once per BLOCK_M rows. The per-channel
scale is applied once per output, after the reduction. Imported only on CUDA (Triton).

A launch can also be pinned per (row bucket, N, K) in `_w8_configs.TUNED`, or passed as
`config=` (what `scripts/sweep_w8.py` does): the same kernels with a fixed tile, warps, stages
and K split instead of the autotuner's pick. Shapes without an entry keep the autotuned kernels.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from ._w8_configs import W8Config, tuned_config


def _configs():
    out = []
    for bn, bk, warps, stages in (
        (16, 256, 4, 4), (16, 512, 4, 3), (16, 1024, 8, 2), (32, 256, 4, 4), (32, 512, 8, 3),
        (64, 128, 4, 4), (64, 256, 8, 3), (128, 128, 8, 3), (32, 128, 4, 6),
    ):  # fmt: skip
        out.append(triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages))
    return out


def _gemv_configs():
    out = []
    for bn, bk, warps, stages in (
        (8, 256, 4, 3), (8, 512, 4, 3), (16, 256, 4, 3), (16, 256, 8, 4), (16, 512, 8, 3),
        (32, 128, 4, 4), (32, 256, 8, 3), (64, 128, 8, 3), (4, 1024, 4, 3),
    ):  # fmt: skip
        out.append(triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages))
    return out


@triton.jit
def _w8_gemv_kernel(x_ptr, w_ptr, s_ptr, b_ptr, y_ptr, N, K, stride_wn,
                    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    pid = tl.program_id(0)
    rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    n_ok = rn[:, None] < N
    w_ptrs = w_ptr + rn[:, None] * stride_wn + rk[None, :]
    x_ptrs = x_ptr + rk
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_ok = rk < K - k * BLOCK_K
        w = tl.load(w_ptrs, mask=n_ok & k_ok[None, :], other=0.0, eviction_policy="evict_first")
        x = tl.load(x_ptrs, mask=k_ok, other=0.0)
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
        w_ptrs += BLOCK_K
        x_ptrs += BLOCK_K
    y = tl.sum(acc, axis=1) * tl.load(s_ptr + rn, mask=rn < N, other=0.0)
    if HAS_BIAS:
        y += tl.load(b_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)
    tl.store(y_ptr + rn, y.to(y_ptr.dtype.element_ty), mask=rn < N)


_w8_gemv = triton.autotune(configs=_gemv_configs(), key=["N", "K"])(_w8_gemv_kernel)


@triton.jit
def _w8_matmul_kernel(x_ptr, w_ptr, s_ptr, b_ptr, y_ptr, M, N, K, stride_xm, stride_wn, stride_ym,
                      HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + rm[:, None] * stride_xm + rk[None, :]
    w_ptrs = w_ptr + rn[:, None] * stride_wn + rk[None, :]
    m_ok = rm[:, None] < M
    n_ok = rn[:, None] < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_ok = rk[None, :] < K - k * BLOCK_K
        x = tl.load(x_ptrs, mask=m_ok & k_ok, other=0.0)
        w = tl.load(w_ptrs, mask=n_ok & k_ok, other=0.0)
        acc += tl.dot(x, tl.trans(w.to(x.dtype)))
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    scale = tl.load(s_ptr + rn, mask=rn < N, other=0.0)
    acc = acc * scale[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + rm[:, None] * stride_ym + rn[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_ok & (rn[None, :] < N))


_w8_matmul = triton.autotune(configs=_configs(), key=["N", "K", "BLOCK_M"])(_w8_matmul_kernel)


@triton.jit
def _w8_matmul_split_k_kernel(x_ptr, w_ptr, p_ptr, M, N, K, K_PER_SPLIT, stride_xm, stride_wn,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr):  # fmt: skip
    """Rows ≤ BLOCK_M, a long K (down_proj): each of SPLIT_K programs per column block sums a
    slice of K into fp32 partials [SPLIT_K, M, N], so a tall-thin matrix fills every SM."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rm = tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    k_start = pid_k * K_PER_SPLIT
    x_ptrs = x_ptr + rm[:, None] * stride_xm + (k_start + rk)[None, :]
    w_ptrs = w_ptr + rn[:, None] * stride_wn + (k_start + rk)[None, :]
    m_ok = rm[:, None] < M
    n_ok = rn[:, None] < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K_PER_SPLIT, BLOCK_K)):
        k_ok = (rk[None, :] + k * BLOCK_K < K_PER_SPLIT) & (k_start + k * BLOCK_K + rk[None, :] < K)
        x = tl.load(x_ptrs, mask=m_ok & k_ok, other=0.0)
        w = tl.load(w_ptrs, mask=n_ok & k_ok, other=0.0)
        acc += tl.dot(x, tl.trans(w.to(x.dtype)))
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    p_ptrs = p_ptr + pid_k * M * N + rm[:, None] * N + rn[None, :]
    tl.store(p_ptrs, acc, mask=m_ok & (rn[None, :] < N))


_SPLIT_K_CONFIGS = ((16, 256, 4, 4), (16, 512, 4, 3), (32, 256, 4, 4), (32, 128, 4, 5), (64, 128, 8, 3))
_w8_matmul_split_k = triton.autotune(
    configs=[triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=st) for bn, bk, w, st in _SPLIT_K_CONFIGS],
    key=["N", "K", "SPLIT_K"],
)(_w8_matmul_split_k_kernel)


@triton.jit
def _split_k_reduce(p_ptr, s_ptr, b_ptr, y_ptr, M, N, stride_ym,
                    HAS_BIAS: tl.constexpr, SPLIT_K: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < M * N
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in tl.static_range(SPLIT_K):
        acc += tl.load(p_ptr + s * M * N + i, mask=ok, other=0.0)
    n = i % N
    acc = acc * tl.load(s_ptr + n, mask=ok, other=0.0)
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + (i // N) * stride_ym + n, acc.to(y_ptr.dtype.element_ty), mask=ok)


def _reduce(partial, scale, bias_or_any, y, has_bias: bool) -> None:
    split, M, N = partial.shape
    block = 1024
    _split_k_reduce[(triton.cdiv(M * N, block),)](partial, scale, bias_or_any, y, M, N, y.stride(0),
                                                  HAS_BIAS=has_bias, SPLIT_K=split, BLOCK=block)  # fmt: skip


def _launch(cfg: W8Config, x2, q, scale, bias, y) -> None:
    """y = x2 @ qᵀ · scale (+ bias) with one fixed config instead of the autotuner."""
    M, K = x2.shape
    N = q.shape[0]
    cfg.check_rows(M)
    has_bias = bias is not None
    bias_or_any = bias if has_bias else scale
    meta = dict(BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    n_blocks = triton.cdiv(N, cfg.block_n)
    if cfg.kind == "gemv":
        _w8_gemv_kernel[(n_blocks,)](x2, q, scale, bias_or_any, y, N, K, q.stride(0), HAS_BIAS=has_bias, **meta)
        return
    # K slices of whole BLOCK_K steps (aligned loads), none empty
    k_per_split = triton.cdiv(triton.cdiv(K, cfg.split_k), cfg.block_k) * cfg.block_k
    split = triton.cdiv(K, k_per_split)
    if split == 1:
        _w8_matmul_kernel[(n_blocks, 1)](x2, q, scale, bias_or_any, y, M, N, K, x2.stride(0), q.stride(0),
                                         y.stride(0), HAS_BIAS=has_bias, BLOCK_M=16, **meta)  # fmt: skip
        return
    partial = torch.empty((split, M, N), dtype=torch.float32, device=y.device)
    _w8_matmul_split_k_kernel[(n_blocks, split)](x2, q, partial, M, N, K, k_per_split, x2.stride(0), q.stride(0),
                                                 BLOCK_M=16, SPLIT_K=split, **meta)  # fmt: skip
    _reduce(partial, scale, bias_or_any, y, has_bias)


def _split_k(M: int, N: int, K: int) -> int:
    """How many K slices for a few rows of a tall-thin matrix (0: one pass is enough)."""
    if os.environ.get("AR3D_W8_SPLITK", "1") == "0" or M > 16 or K < 4 * N:
        return 0
    return 4


def w8_linear(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
              config: W8Config | str | None = None) -> torch.Tensor:  # fmt: skip
    """x [..., K] (bf16/fp16/fp32) × q [N, K] (fp8 e4m3 / int8) → [..., N] in x's dtype.

    config: None takes `_w8_configs.TUNED`'s entry for this (rows, N, K) if any, else the
    autotuned kernels; "autotune" always the latter (today's default); a `W8Config` that launch.
    """
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    if x2.dtype == torch.float32:  # tensor-core dots want 16-bit inputs; fp32 callers are rare (tests)
        x2 = x2.to(torch.bfloat16)
    M, K = x2.shape
    N = q.shape[0]
    y = torch.empty((M, N), dtype=x2.dtype, device=x.device)
    if config is None:
        config = tuned_config(M, N, K)
    elif isinstance(config, str) and config == "autotune":
        config = None
    elif not isinstance(config, W8Config):
        raise ValueError(f"w8_linear config={config!r}: None, 'autotune' or a W8Config")
    if config is not None:
        _launch(config, x2, q, scale, bias, y)
        return y.reshape(*shape[:-1], N).to(x.dtype)
    bias_or_any = bias if bias is not None else scale
    if M == 1:
        grid1 = lambda meta: (triton.cdiv(N, meta["BLOCK_N"]),)  # noqa: E731
        _w8_gemv[grid1](x2, q, scale, bias_or_any, y, N, K, q.stride(0), HAS_BIAS=bias is not None)
        return y.reshape(*shape[:-1], N).to(x.dtype)
    split = _split_k(M, N, K)
    if split:
        partial = torch.empty((split, M, N), dtype=torch.float32, device=x.device)
        k_per_split = triton.cdiv(K, split)
        grid_s = lambda meta: (triton.cdiv(N, meta["BLOCK_N"]), split)  # noqa: E731
        _w8_matmul_split_k[grid_s](x2, q, partial, M, N, K, k_per_split, x2.stride(0), q.stride(0),
                                   BLOCK_M=16, SPLIT_K=split)  # fmt: skip
        _reduce(partial, scale, bias_or_any, y, bias is not None)
        return y.reshape(*shape[:-1], N).to(x.dtype)
    block_m = 16 if M <= 16 else 64  # decode fits one tile; prefill tiles M
    grid = lambda meta: (triton.cdiv(N, meta["BLOCK_N"]), triton.cdiv(M, block_m))  # noqa: E731
    _w8_matmul[grid](x2, q, scale, bias_or_any, y, M, N, K, x2.stride(0), q.stride(0),
                     y.stride(0), HAS_BIAS=bias is not None, BLOCK_M=block_m)  # fmt: skip
    return y.reshape(*shape[:-1], N).to(x.dtype)
