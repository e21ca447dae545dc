"""The Triton kernel behind the graph engine's decode-step attention on CUDA (flash-decoding).

One new token per row attends over its row of the static KV cache, slots 0 … pos (the prompt and
what came since). The eager path (`graph_engine._attend`) multiplies over the whole cache length
with a −inf mask, because a captured graph has fixed shapes: at 8 rows and a 1,280-slot cache a
7B step reads 0.5 GB of keys and values, half of them masked, in three kernels a layer. Here the
loop bound is each row's own position, read on the GPU, so one captured graph (two kernels a
layer) serves every step while reading only the filled slots. Opt-in (AR3D_ENGINE_ATTENTION=1):
at the default launch, the fastest of `scripts/bench_attention.py` on an H100, it takes 0.80× the
masked product's time at 1 row and 0.60× at 8, but the engine's mesh only 3–4% less (BENCHMARKS.md
#20, eighth session), and the engine-level greedy-token test has not yet run on a GPU with the
current merge; the default stays the masked product until it has.

Stage 1: a program per (row, KV head, slice of CHUNK slots) keeps an online softmax (running max
m, sum l, weighted values) for the G query heads that share that KV head (grouped-query
attention, padded to 16 for the tensor cores); slices past the row's position write nothing
and are skipped by stage 2, which merges the slices' (m, l, acc) into the output.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _decode_slices(q_ptr, k_ptr, v_ptr, pos_ptr, acc_ptr, ml_ptr, scale, L, G, KV, SPLITS, D: tl.constexpr,
                   G_PAD: tl.constexpr, CHUNK: tl.constexpr, BLOCK_T: tl.constexpr, IEEE: tl.constexpr):  # fmt: skip
    b = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.program_id(2)
    last = tl.load(pos_ptr + b)  # row b sees slots 0 … last
    start = s * CHUNK
    if start <= last:
        rg = tl.arange(0, G_PAD)
        rd = tl.arange(0, D)
        rt = tl.arange(0, BLOCK_T)
        q = tl.load(q_ptr + ((b * KV + h) * G + rg)[:, None] * D + rd[None, :], mask=rg[:, None] < G, other=0.0)
        base = (b * KV + h) * L * D
        m = tl.full((G_PAD,), float("-inf"), dtype=tl.float32)
        l = tl.zeros((G_PAD,), dtype=tl.float32)
        acc = tl.zeros((G_PAD, D), dtype=tl.float32)
        end = tl.minimum(start + CHUNK, last + 1)
        for t0 in range(start, end, BLOCK_T):
            t = t0 + rt
            ok = t < end
            k = tl.load(k_ptr + base + t[:, None] * D + rd[None, :], mask=ok[:, None], other=0.0)
            v = tl.load(v_ptr + base + t[:, None] * D + rd[None, :], mask=ok[:, None], other=0.0)
            if IEEE:  # fp32 caches (CPU-trained tests, fp32 models): no TF32 rounding
                scores = tl.dot(q, tl.trans(k), input_precision="ieee") * scale  # [G_PAD, BLOCK_T]
            else:
                scores = tl.dot(q, tl.trans(k)) * scale
            scores = tl.where(ok[None, :], scores, float("-inf"))
            m_new = tl.maximum(m, tl.max(scores, axis=1))
            p = tl.exp(scores - m_new[:, None])
            alpha = tl.exp(m - m_new)
            l = l * alpha + tl.sum(p, axis=1)
            if IEEE:
                acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
            else:
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m = m_new
        slot = (b * KV + h) * SPLITS + s
        tl.store(acc_ptr + (slot * G_PAD + rg)[:, None] * D + rd[None, :], acc)
        tl.store(ml_ptr + (slot * 2) * G_PAD + rg, m)
        tl.store(ml_ptr + (slot * 2 + 1) * G_PAD + rg, l)


@triton.jit
def _decode_merge(acc_ptr, ml_ptr, pos_ptr, o_ptr, G, KV, SPLITS,
                  D: tl.constexpr, G_PAD: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    b = tl.program_id(0)
    h = tl.program_id(1)
    rd = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)  # a slice of the head's D columns
    last = tl.load(pos_ptr + b)
    used = tl.minimum(last // CHUNK + 1, SPLITS)  # slices stage 1 wrote
    rg = tl.arange(0, G_PAD)
    m = tl.full((G_PAD,), float("-inf"), dtype=tl.float32)
    for s in range(0, used):
        slot = (b * KV + h) * SPLITS + s
        m = tl.maximum(m, tl.load(ml_ptr + (slot * 2) * G_PAD + rg))
    l = tl.zeros((G_PAD,), dtype=tl.float32)
    acc = tl.zeros((G_PAD, BLOCK_D), dtype=tl.float32)
    for s in range(0, used):
        slot = (b * KV + h) * SPLITS + s
        w = tl.exp(tl.load(ml_ptr + (slot * 2) * G_PAD + rg) - m)
        l += w * tl.load(ml_ptr + (slot * 2 + 1) * G_PAD + rg)
        acc += w[:, None] * tl.load(acc_ptr + (slot * G_PAD + rg)[:, None] * D + rd[None, :])
    out = acc / l[:, None]
    tl.store(o_ptr + ((b * KV + h) * G + rg)[:, None] * D + rd[None, :], out.to(o_ptr.dtype.element_ty),
             mask=rg[:, None] < G)


class DecodeAttention:
    """Scratch for one batch shape (fixed addresses, so a captured graph stays valid) and the call.

    chunk: cache slots a stage-1 program covers; block_t: slots per inner step; block_d: output
    columns a merge program combines. The defaults are the fastest of `scripts/bench_attention.py`'s
12 launches at the 7B shape on an H100, at 1 and at 8 rows alike (2026-12-08)."""

    def __init__(self, rows: int, kv_heads: int, groups: int, length: int, head_dim: int, device, *,
                 chunk: int = 128, block_t: int = 64, block_d: int = 32, num_warps: int = 4, num_stages: int = 2):  # fmt: skip
        if head_dim & (head_dim - 1) or head_dim < 16:
            raise ValueError(f"decode attention needs a power-of-two head size ≥ 16, got {head_dim}")
        self.rows, self.kv, self.g, self.length, self.d = rows, kv_heads, groups, length, head_dim
        self.chunk, self.block_t, self.block_d = chunk, min(block_t, chunk), min(block_d, head_dim)
        self.num_warps, self.num_stages = num_warps, num_stages
        self.g_pad = max(16, triton.next_power_of_2(groups))
        self.splits = triton.cdiv(length, chunk)
        self.acc = torch.empty((rows, kv_heads, self.splits, self.g_pad, head_dim), dtype=torch.float32, device=device)
        self.ml = torch.empty((rows, kv_heads, self.splits, 2, self.g_pad), dtype=torch.float32, device=device)

    def __call__(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, pos: torch.Tensor, scale: float):
        """q [B, kv, G, D]; keys, values: a layer's whole cache [B, kv, length, D]; pos [B] → [B, kv, G, D]."""
        B, KV, G, D = q.shape
        q = q.contiguous()
        o = torch.empty_like(q)
        _decode_slices[(B, KV, self.splits)](q, keys, values, pos, self.acc, self.ml, scale, self.length, G, KV,
                                             self.splits, D=D, G_PAD=self.g_pad, CHUNK=self.chunk,
                                             BLOCK_T=self.block_t, IEEE=q.dtype == torch.float32,
                                             num_warps=self.num_warps, num_stages=self.num_stages)  # fmt: skip
        _decode_merge[(B, KV, D // self.block_d)](self.acc, self.ml, pos, o, G, KV, self.splits, D=D, G_PAD=self.g_pad,
                                                  CHUNK=self.chunk, BLOCK_D=self.block_d, num_warps=4)  # fmt: skip
        return o
