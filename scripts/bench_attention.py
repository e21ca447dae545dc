"""The decode step's attention at the 7B shape: the engine's masked product vs the Triton kernel.

A captured decode step attends over the whole static cache (1,280 slots for a mesh call) with a
−inf mask: cuBLAS batched products and a fused softmax, three kernels a layer. The kernel in
`core/_decode_attention.py` reads each row's filled slots only. This times both, as the engine
runs them: 28 layers' calls (each on its own layer's cache, so every call streams from memory,
not L2) captured in one CUDA graph, at 1 and 8 rows, averaged over positions across a mesh's
decode; each kernel launch config is checked against the masked product first. The floor is the
filled slots' bytes / copy bandwidth.

    python scripts/bench_attention.py --out bench_attention.json      # GPU, ~1 min
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generate import copy_bandwidth  # noqa: E402
from sweep_w8 import graph_seconds  # noqa: E402  (calls captured in one graph, median of 5 replays)

LAYERS, KV, G, D, LENGTH = 28, 4, 7, 128, 1280  # Qwen2.5-VL-7B's text stack; a mesh call's cache bucket
POSITIONS = (100, 350, 600, 850, 1085)  # across a mesh's decode (prompt ≈ 60 tokens + 1,026 new)
REPS = 10  # tokens' attention (28 layers each) per graph replay


def _key(cfg: dict) -> str:
    """A launch as AR3D_DECODE_ATTENTION spells it (`graph_engine.attention_launch` reads it back)."""
    return "{chunk},{block_t},{block_d},{num_warps},{num_stages}".format(**cfg)


def configs():
    out = []
    for chunk, block_t, block_d, stages in itertools.product((64, 128, 256), (32, 64), (32, 128), (2,)):
        if block_t <= chunk:
            out.append(dict(chunk=chunk, block_t=block_t, block_d=block_d, num_warps=4, num_stages=stages))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--best-out", type=Path, help="write the fastest config (AR3D_DECODE_ATTENTION's format) here")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_attention: needs a CUDA GPU (the kernel is Triton on CUDA)")
    from ar3d.core._decode_attention import DecodeAttention
    from ar3d.core.graph_engine import _fused_kernels

    dev = torch.device("cuda")
    torch.manual_seed(0)
    bw = copy_bandwidth(dev, 4 * 2**30)["bytes_per_s"]
    attend = _fused_kernels()["attend"]
    res = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "date": _dt.date.today().isoformat(),
           "bandwidth": bw, "shape": dict(layers=LAYERS, kv=KV, groups=G, head_dim=D, length=LENGTH),
           "positions": POSITIONS, "rows": {}}  # fmt: skip
    print(f"{res['device']}: copy {bw / 1e12:.2f} TB/s; {LAYERS} layers, cache {LENGTH} slots, positions {POSITIONS}", flush=True)
    totals: dict[str, list[float]] = {}  # launch -> µs a token at each row count it ran
    for rows in args.rows:
        caches = [(torch.randn(rows, KV, LENGTH, D, device=dev, dtype=torch.bfloat16),
                   torch.randn(rows, KV, LENGTH, D, device=dev, dtype=torch.bfloat16)) for _ in range(LAYERS)]  # fmt: skip
        q = torch.randn(rows, KV, G, D, device=dev, dtype=torch.bfloat16)
        pos = torch.zeros(rows, dtype=torch.long, device=dev)
        keys = torch.arange(LENGTH, device=dev)
        scale = D**-0.5

        def mask():  # as the engine's step builds it: slots past each row's position are -inf
            return torch.zeros(rows, LENGTH, device=dev).masked_fill(keys[None] > pos[:, None], float("-inf"))[:, None, None]

        def base():
            bias = mask()
            for k, v in caches:
                attend(q, k, v, bias, scale)

        entry = {"masked_product": {}, "kernel": []}
        per_pos = []
        floor = []
        for p in POSITIONS:
            pos.fill_(p)
            per_pos.append(graph_seconds([base], REPS))
            floor.append(LAYERS * rows * KV * (p + 1) * D * 2 * 2 / bw)
        entry["masked_product"] = {"us_per_token": statistics.mean(per_pos) * 1e6, "per_position_us": [t * 1e6 for t in per_pos]}
        entry["floor_us_per_token"] = statistics.mean(floor) * 1e6
        print(f"rows {rows}: masked product {entry['masked_product']['us_per_token']:.1f} us a token "
              f"(floor of the filled slots {entry['floor_us_per_token']:.1f} us)", flush=True)  # fmt: skip
        for cfg in configs():
            rec = {"config": cfg}
            try:
                att = DecodeAttention(rows, KV, G, LENGTH, D, dev, **cfg)
                pos.fill_(POSITIONS[1])
                k, v = caches[0]
                ref = attend(q, k, v, mask(), scale).float()
                err = (att(q, k, v, pos, scale).float() - ref).abs().max().item()
                rec["max_abs_err"] = err
                if not err < 3e-2:
                    raise RuntimeError(f"wrong result (max |error| {err:.3g})")
                times = []
                for p in POSITIONS:
                    pos.fill_(p)
                    times.append(graph_seconds([lambda: [att(q, k, v, pos, scale) for k, v in caches]], REPS))
                rec["us_per_token"] = statistics.mean(times) * 1e6
                totals.setdefault(_key(cfg), []).append(rec["us_per_token"])
            except Exception as e:  # a config that does not compile or fit: reported, skipped
                rec["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
            entry["kernel"].append(rec)
        good = sorted((r for r in entry["kernel"] if "us_per_token" in r), key=lambda r: r["us_per_token"])
        for r in good[:5]:
            print(f"  kernel {r['config']}: {r['us_per_token']:.1f} us a token", flush=True)
        bad = [r for r in entry["kernel"] if "error" in r]
        if bad:
            print(f"  {len(bad)} configs failed, e.g. {bad[0]['config']}: {bad[0]['error']}")
        res["rows"][str(rows)] = entry
    complete = {k: sum(t) for k, t in totals.items() if len(t) == len(args.rows)}  # ran at every row count
    if complete:
        best = min(complete, key=complete.get)
        res["best"] = best
        print(f"best over {args.rows} rows together: {best} (AR3D_DECODE_ATTENTION={best})")
        if args.best_out:
            args.best_out.write_text(best)
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
