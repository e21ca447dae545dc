"""The Triton kernel behind `QuantLinear` on CUDA: y = (x @ q.T) * scale + bias.

One row (batch-1 decoding, the latency case) is a GEMV: each program owns BLOCK_N output
channels, streams their 8-bit weight tiles along K, widens them to fp32 in registers and keeps a
[BLOCK_N, BLOCK_K] fp32 partial sum that is reduced once at the end, so the loop is only loads
and FMAs. Several rows (a group of samples, a prompt's prefill) use a tensor-core dot on tiles of
BLOCK_M rows instead; every weight byte is still read once per BLOCK_M rows. The per-channel
scale is applied once per output, after the reduction. Imported only on CUDA (Triton).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl


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


@triton.autotune(configs=_gemv_configs(), key=["N", "K"])
@triton.jit
def _w8_gemv(x_ptr, w_ptr, s_ptr, b_ptr, y_ptr, N, K, stride_wn,
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


@triton.autotune(configs=_configs(), key=["N", "K", "BLOCK_M"])
@triton.jit
def _w8_matmul(x_ptr, w_ptr, s_ptr, b_ptr, y_ptr, M, N, K, stride_xm, stride_wn, stride_ym,
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


@triton.autotune(configs=[triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=st)
                          for bn, bk, w, st in ((16, 256, 4, 4), (16, 512, 4, 3), (32, 256, 4, 4), (32, 128, 4, 5), (64, 128, 8, 3))],
                 key=["N", "K", "SPLIT_K"])  # fmt: skip
@triton.jit
def _w8_matmul_split_k(x_ptr, w_ptr, p_ptr, M, N, K, K_PER_SPLIT, stride_xm, stride_wn,
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


def _split_k(M: int, N: int, K: int) -> int:
    """How many K slices for a few rows of a tall-thin matrix (0: one pass is enough)."""
    if os.environ.get("AR3D_W8_SPLITK", "1") == "0" or M > 16 or K < 4 * N:
        return 0
    return 4


def w8_linear(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] (bf16/fp16/fp32) × q [N, K] (fp8 e4m3 / int8) → [..., N] in x's dtype."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    if x2.dtype == torch.float32:  # tensor-core dots want 16-bit inputs; fp32 callers are rare (tests)
        x2 = x2.to(torch.bfloat16)
    M, K = x2.shape
    N = q.shape[0]
    y = torch.empty((M, N), dtype=x2.dtype, device=x.device)
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
        block = 1024
        _split_k_reduce[(triton.cdiv(M * N, block),)](partial, scale, bias_or_any, y, M, N, y.stride(0),
                                                      HAS_BIAS=bias is not None, SPLIT_K=split, BLOCK=block)  # fmt: skip
        return y.reshape(*shape[:-1], N).to(x.dtype)
    block_m = 16 if M <= 16 else 64  # decode fits one tile; prefill tiles M
    grid = lambda meta: (triton.cdiv(N, meta["BLOCK_N"]), triton.cdiv(M, block_m))  # noqa: E731
    _w8_matmul[grid](x2, q, scale, bias_or_any, y, M, N, K, x2.stride(0), q.stride(0),
                     y.stride(0), HAS_BIAS=bias is not None, BLOCK_M=block_m)  # fmt: skip
    return y.reshape(*shape[:-1], N).to(x.dtype)
