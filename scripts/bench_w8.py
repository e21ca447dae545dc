"""One decode step's linear layers at the real 7B shape: bf16 `F.linear` vs the 8-bit kernel.

Each matrix of a Qwen2.5-VL-7B layer (q, k, v, o, gate, up, down) and `lm_head`, at 1 and 8 rows
(8-bit: q/k/v and gate/up fused, as `quantize_model` stores them),
timed inside a CUDA graph of 100 products (no launch overhead), next to its floor (bytes / copy
bandwidth). Says where an 8-bit decode step's time goes, matrix by matrix (BENCHMARKS.md).
`scripts/sweep_w8.py` times other launch configs of the kernel at these shapes for 1–16 rows.

    python scripts/bench_w8.py --out bench_w8.json     # GPU
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generate import copy_bandwidth  # noqa: E402

# (name, out_features, in_features, per layer) for Qwen2.5-VL-7B's text stack + the head
SHAPES = [("q", 3584, 3584, 28), ("k", 512, 3584, 28), ("v", 512, 3584, 28), ("o", 3584, 3584, 28),
          ("gate", 18944, 3584, 28), ("up", 18944, 3584, 28), ("down", 3584, 18944, 28), ("lm_head", 159872, 3584, 1),
          ("qkv", 4608, 3584, 28), ("gate_up", 37888, 3584, 28)]  # fmt: skip
SEPARATE_ONLY = {"q", "k", "v", "gate", "up"}  # bf16 runs these; 8-bit runs the fused ones instead
FUSED_ONLY = {"qkv", "gate_up"}


def graph_time(fn, reps=100) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    g.replay()
    torch.cuda.synchronize()
    start.record()
    for _ in range(5):
        g.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / (5 * reps)


def main(argv=None):
    from ar3d.core.quantize import QuantLinear

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precisions", nargs="+", default=["fp8", "int8"])
    ap.add_argument("--rows", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    dev = torch.device("cuda")
    bw = copy_bandwidth(dev, 4 * 2**30)["bytes_per_s"]
    print(f"{torch.cuda.get_device_name(dev)}; copy bandwidth {bw / 1e12:.2f} TB/s")
    rows, totals = [], {}
    for name, n, k, count in SHAPES:
        lin = torch.nn.Linear(k, n, bias=False, device=dev, dtype=torch.bfloat16)
        quant = {p: QuantLinear.from_linear(lin, p) for p in args.precisions}
        for m in args.rows:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            t = {"bf16": graph_time(lambda w=lin.weight: F.linear(x, w))}
            for p, q in quant.items():
                t[p] = graph_time(lambda q=q: q(x))
            if name in SEPARATE_ONLY:
                t = {"bf16": t["bf16"]} | {f"{p} (unfused)": t[p] for p in quant}
            elif name in FUSED_ONLY:
                t = {p: t[p] for p in quant}
            for p, sec in t.items():
                nbytes = n * k * (2 if p == "bf16" else 1)
                if p.endswith("(unfused)"):
                    print(f"{name:8s} M={m} {p:5s} {sec * 1e6:8.1f} us  floor {nbytes / bw * 1e6:8.1f} us  {nbytes / bw / sec:.0%}")
                    continue
                row = {"matrix": name, "rows": m, "precision": p, "us": sec * 1e6, "floor_us": nbytes / bw * 1e6,
                       "of_floor": nbytes / bw / sec, "per_token_ms": sec * count * 1e3}  # fmt: skip
                rows.append(row)
                totals[(p, m)] = totals.get((p, m), 0.0) + sec * count
                print(f"{name:8s} M={m} {p:5s} {sec * 1e6:8.1f} us  floor {row['floor_us']:8.1f} us  {row['of_floor']:.0%}")
        del lin, quant
        torch.cuda.empty_cache()
    summary = {}
    for (p, m), sec in totals.items():
        nbytes = sum(n * k * c for name, n, k, c in SHAPES if name not in FUSED_ONLY) * (2 if p == "bf16" else 1)
        summary[f"{p}/M{m}"] = {"ms_per_token": sec * 1e3, "floor_ms": nbytes / bw * 1e3, "of_floor": nbytes / bw / sec}
        print(f"all linears {p:5s} M={m}: {sec * 1e3:.2f} ms/token, floor {nbytes / bw * 1e3:.2f} ms ({nbytes / bw / sec:.0%})")
    if args.out:
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(dev), "bandwidth": bw, "rows": rows,
                                        "summary": summary}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
