"""Launch configs of the 8-bit kernel for 1–16 rows at the 7B decode shapes (issue #20).

A group of 8 rows decoded at 1.27× one row's time on an H100: the autotuned tensor-core dot for
2–16 rows reaches 40–85% of its bytes floor where the one-row GEMV reaches 61–99%
(BENCHMARKS.md). This times, for each row count and each matrix an 8-bit decode step runs
(fused qkv, o, fused gate_up, down, lm_head), a grid of fixed launches (`W8Config`: today's
kernels with other tiles, warps, stages and K splits) next to today's autotuned default. Each
result is checked against a dequantize + matmul reference; a launch that fails to compile, runs
out of resources or is wrong is reported and skipped. It prints a table per row count, the
linears of one token against the one-row time, and `TUNED` entries to paste into
core/_w8_configs.py (or `--tuned-out` a file for AR3D_W8_TUNED_FILE).

Timing: each product is captured `reps` times in one CUDA graph (no launch overhead, as in the
engine's decode step) cycling over copies of the weight that together exceed the L2 cache, so
every product streams its weights from memory as in decoding; median of 5 replays. The floor is
the weight bytes / copy bandwidth (measured as in scripts/bench_w8.py, or --bandwidth).
A wall-clock budget (--budget-s) stops the sweep early and keeps what was measured.

    python scripts/sweep_w8.py --json sweep_w8.json           # GPU, ~2–3 min on an H100
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generate import copy_bandwidth  # noqa: E402
from bench_w8 import SEPARATE_ONLY, SHAPES  # noqa: E402

DEVICE = "cuda"
L2_SPAN = 192 << 20  # bytes of weight copies cycled per timing: > 3× an H100's 50 MB L2
REPLAY_S = 5e-4  # aim for at least this much GPU time per graph replay
START = time.monotonic()


def _fixed(kind, tiles, **split):
    from ar3d.core._w8_configs import W8Config

    return [W8Config(kind, bn, bk, w, st, **split) for bn, bk, w, st in tiles]


def candidates(rows: int) -> list:
    """The grid for one row count (≤ 40): the likeliest winners first, so a cut budget keeps them."""
    from ar3d.core import _w8_kernel as K

    def from_triton(configs):
        return [(c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps, c.num_stages) for c in configs]

    if rows == 1:  # today's GEMV tiles (the autotuner's set, compiled once for both) and a few more
        extra = [(8, 1024, 8, 2), (4, 512, 4, 4), (16, 128, 4, 6), (32, 512, 8, 3)]
        return _fixed("gemv", from_triton(K._gemv_configs()) + extra)
    dot = from_triton(K._configs())  # today's autotuned set (split-K ×4 ones below)
    # the 2026-12-07 H100 winner (32×128, 5 stages, K in 4) and its neighbours
    out = _fixed("dot", [(32, 128, 4, 5)], split_k=2) + _fixed("dot", [(32, 128, 4, 5), (64, 128, 4, 5)], split_k=8)
    out += _fixed("dot", list(K._SPLIT_K_CONFIGS), split_k=4)
    out += _fixed("dot", [(16, 256, 4, 4)], split_k=2) + _fixed("dot", [(16, 256, 4, 4), (32, 256, 4, 4)], split_k=8)
    out += _fixed("dot", dot)
    return list(dict.fromkeys(out))  # keep order, drop repeats


def graph_seconds(calls: list, reps: int) -> float:
    """Seconds per call: `reps` calls (cycling over `calls`) in one CUDA graph, median of 5 replays."""
    for fn in calls:
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(reps):
            calls[i % len(calls)]()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3 / reps)
    del g
    return statistics.median(times)


class Matrix:
    """One decode matrix: 8-bit weight copies spanning > L2, and its fp32 dequantized reference."""

    def __init__(self, name, n, k, count, precision, dev):
        from ar3d.core.quantize import dequantize_weight, quantize_weight

        self.name, self.n, self.k, self.count = name, n, k, count
        q, self.scale = quantize_weight(torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02, precision)
        self.qs = [q] + [q.clone() for _ in range(math.ceil(L2_SPAN / q.numel()) - 1)]
        self.deq = dequantize_weight(q, self.scale)
        self.nbytes = n * k


def measure(mat: Matrix, x: torch.Tensor, ref: torch.Tensor, config, bw: float) -> dict:
    """Time one launch (config: a W8Config or "autotune") after checking it against the reference."""
    from ar3d.core._w8_kernel import w8_linear

    rec = {"us": None, "of_floor": None, "ok": False, "error": None}
    try:
        got = w8_linear(x, mat.qs[0], mat.scale, None, config=config).float()
        torch.cuda.synchronize()
        err = ((got - ref).abs().max() / ref.abs().mean().clamp(min=1e-30)).item()
        rec["max_err_rel_mean"] = err
        if not torch.allclose(got, ref, rtol=2e-2, atol=2e-2 * ref.abs().mean().item()):
            rec["error"] = f"wrong result (max |error| = {err:.3g} × mean |ref|)"
            return rec
        calls = [lambda q=q: w8_linear(x, q, mat.scale, None, config=config) for q in mat.qs]
        reps = max(10, min(100, math.ceil(REPLAY_S * bw / mat.nbytes)))
        sec = graph_seconds(calls, math.ceil(reps / len(calls)) * len(calls))
        rec.update(us=sec * 1e6, of_floor=mat.nbytes / bw / sec, ok=True)
    except Exception as e:  # compile error, out of resources, capture failure: skip this launch
        rec["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        try:
            torch.cuda.synchronize()
        except Exception as e2:  # the context is broken (a device fault): nothing after this is trustworthy
            rec["fatal"] = f"{type(e2).__name__}: {e2}"
    return rec


def _ms(sec):
    return f"{sec * 1e3:.2f} ms" if sec else "—"


def summarize(per_shape: dict, mats: list, bw: float) -> dict:
    """One token's linears at this row count: autotuned default vs the best launch found per matrix."""
    tot = {"default_s": 0.0, "best_s": 0.0, "complete": True}
    for mat in mats:
        r = per_shape.get(mat.name)
        if not r or not r["default"]["ok"]:
            tot["complete"] = False
            continue
        d = r["default"]["us"] / 1e6
        b = min(d, r["best"]["us"] / 1e6) if r.get("best") else d
        tot["default_s"] += d * mat.count
        tot["best_s"] += b * mat.count
    floor = sum(m.nbytes * m.count for m in mats) / bw
    tot["floor_s"] = floor
    return tot


def print_table(rows: int, per_shape: dict, tot: dict) -> None:
    print(f"\n=== M={rows}: per matrix (µs; % of bytes / bandwidth) ===", flush=True)
    print(f"{'matrix':8s} {'default':>16s} {'best':>16s} {'speedup':>8s}  best config")
    for name, r in per_shape.items():
        d, b = r["default"], r.get("best")
        ds = f"{d['us']:8.1f} ({d['of_floor']:.0%})" if d["ok"] else "  failed"
        bs = f"{b['us']:8.1f} ({b['of_floor']:.0%})" if b else "       —"
        sp = f"{d['us'] / b['us']:.2f}x" if b and d["ok"] else "—"
        print(f"{name:8s} {ds:>16s} {bs:>16s} {sp:>8s}  {b['short'] if b else '—'}")
    print(f"all linears of a token (×count): default {_ms(tot['default_s'])}, with the best {_ms(tot['best_s'])}, "
          f"floor {_ms(tot['floor_s'])}{'' if tot['complete'] else ' (incomplete)'}", flush=True)  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write every measurement here (rewritten after each row count)")
    ap.add_argument("--rows", nargs="+", type=int, default=[8, 1, 4, 16, 2],
                    help="row counts, in the order swept (the target, 8, first)")  # fmt: skip
    ap.add_argument("--tuned-out", type=Path,
                    help="write the entries worth pinning as a table for AR3D_W8_TUNED_FILE")  # fmt: skip
    ap.add_argument("--precision", default="fp8", choices=["fp8", "int8"])
    ap.add_argument("--shapes", nargs="+", help="matrix names (default: those an 8-bit decode step runs)")
    ap.add_argument("--kinds", nargs="+", help="only these launch kinds (gemv dot)")
    ap.add_argument("--bandwidth", type=float, help="bytes/s for the floor (default: measured copy bandwidth)")
    ap.add_argument("--budget-s", type=float, default=150.0, help="stop sweeping after this many seconds")
    ap.add_argument("--list", action="store_true", help="print the grid per row count and exit")
    args = ap.parse_args(argv)
    if args.list:
        for rows in args.rows:
            grid = [c for c in candidates(rows) if not args.kinds or c.kind in args.kinds]
            print(f"M={rows}: {len(grid)} launches: " + "; ".join(c.short() for c in grid))
        return
    if not torch.cuda.is_available():
        sys.exit("sweep_w8: needs a CUDA GPU (the 8-bit kernel is Triton on CUDA)")
    import triton

    from ar3d.core.quantize import check_precision

    dev = torch.device(DEVICE)
    check_precision(args.precision, dev)
    torch.manual_seed(0)
    bw = args.bandwidth or copy_bandwidth(dev, 4 * 2**30)["bytes_per_s"]
    src = "--bandwidth" if args.bandwidth else "measured copy bandwidth"
    print(f"{torch.cuda.get_device_name(dev)}; torch {torch.__version__}, triton {triton.__version__}; "
          f"floor bandwidth {bw / 1e12:.2f} TB/s ({src}); {args.precision}", flush=True)  # fmt: skip
    names = args.shapes or [s[0] for s in SHAPES if s[0] not in SEPARATE_ONLY]
    mats = [Matrix(name, n, k, c, args.precision, dev) for name, n, k, c in SHAPES if name in names]
    out = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "triton": triton.__version__,
           "date": _dt.date.today().isoformat(), "precision": args.precision, "bandwidth": bw, "bandwidth_source": src,
           "budget_s": args.budget_s, "shapes": {m.name: [m.n, m.k, m.count] for m in mats}, "rows": {}}  # fmt: skip
    fatal = None
    cases = {}  # (rows, matrix) -> input, reference, results
    print("today's autotuned launches first (the baseline):", flush=True)
    for rows in args.rows:
        for mat in mats:
            x = torch.randn(rows, mat.k, device=dev, dtype=torch.bfloat16)
            ref = x.float() @ mat.deq.T
            r = {"default": measure(mat, x, ref, "autotune", bw), "configs": [], "best": None}
            cases[rows, mat.name] = (x, ref, r)
            d = r["default"]
            print(f"[{time.monotonic() - START:5.0f}s] M={rows:2d} {mat.name:8s} "
                  f"{'%.1f us (%.0f%%)' % (d['us'], 100 * d['of_floor']) if d['ok'] else 'FAILED: ' + str(d['error'])}",
                  flush=True)  # fmt: skip
            fatal = fatal or d.get("fatal")
    for rows in args.rows:
        grid = [c for c in candidates(rows) if not args.kinds or c.kind in args.kinds]
        per_shape, reported = {}, set()
        for mat in mats:
            x, ref, r = cases[rows, mat.name]
            per_shape[mat.name] = r
            for cfg in grid:
                if fatal or time.monotonic() - START > args.budget_s:
                    r["cut_by_budget"] = not fatal
                    break
                rec = measure(mat, x, ref, cfg, bw) | {"config": cfg.as_dict(), "short": cfg.short()}
                r["configs"].append(rec)
                fatal = fatal or rec.get("fatal")
                if not rec["ok"] and cfg not in reported:  # once per row count, not per matrix
                    reported.add(cfg)
                    print(f"    skipped {cfg.short()} ({mat.name}): {rec['error']}", flush=True)
            good = [c for c in r["configs"] if c["ok"]]
            r["best"] = min(good, key=lambda c: c["us"]) if good else None
            b = r["best"]
            print(f"[{time.monotonic() - START:5.0f}s] M={rows:2d} {mat.name:8s} swept {len(good)}/{len(r['configs'])} "
                  f"of {len(grid)}{'' if not b else ': best %.1f us (%.0f%%) %s' % (b['us'], 100 * b['of_floor'], b['short'])}",
                  flush=True)  # fmt: skip
        tot = summarize(per_shape, mats, bw)
        out["rows"][str(rows)] = {"per_shape": per_shape, "token": tot}
        print_table(rows, per_shape, tot)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
    if fatal:
        print(f"stopped early: the device failed ({fatal})", flush=True)
    entries = report(out, mats)
    if args.tuned_out:
        args.tuned_out.write_text(json.dumps(entries, indent=1))
        print(f"wrote {args.tuned_out} ({len(entries)} entries): AR3D_W8_TUNED_FILE={args.tuned_out} uses them")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


def report(out: dict, mats: list) -> list[dict]:
    """Rows vs one row for the whole token, and the table entries worth pinning (≥ 3% faster)."""
    one = out["rows"].get("1", {}).get("token")
    print("\n=== linears of one token: rows vs 1 row (target for 8 rows ≤ 1.1×) ===")
    for rows, r in sorted(out["rows"].items(), key=lambda kv: int(kv[0])):
        t = r["token"]
        if not t["default_s"]:
            continue
        ratio = ""
        if one and one["default_s"] and t["complete"] and one["complete"]:
            ratio = f"  vs 1 row: default {t['default_s'] / one['default_s']:.2f}×, best {t['best_s'] / one['best_s']:.2f}×"
        print(f"M={rows:>2s}: default {_ms(t['default_s'])}, best {_ms(t['best_s'])} "
              f"({t['floor_s'] / t['best_s']:.0%} of floor){ratio}")  # fmt: skip
    from ar3d.core._w8_configs import row_bucket

    lines, entries = [], []  # keyed by the table's row bucket (the rows swept are powers of two by default)
    for rows, r in sorted(out["rows"].items(), key=lambda kv: int(kv[0])):
        for mat in mats:
            s = r["per_shape"].get(mat.name)
            if not s or not s.get("best") or not s["default"]["ok"] or s["best"]["us"] > 0.97 * s["default"]["us"]:
                continue
            c, b = s["best"]["config"], s["best"]
            entries.append({"rows": row_bucket(int(rows)), "n": mat.n, "k": mat.k, "config": c})
            lines.append(f'    ({row_bucket(int(rows))}, {mat.n}, {mat.k}): W8Config("{c["kind"]}", {c["block_n"]}, {c["block_k"]}, '
                         f'num_warps={c["num_warps"]}, num_stages={c["num_stages"]}, split_k={c["split_k"]}),'
                         f'  # {mat.name} at {rows} rows: {b["us"]:.1f} us vs {s["default"]["us"]:.1f} autotuned')  # fmt: skip
    out["tuned_entries"] = lines
    print(f"\n# TUNED entries for core/_w8_configs.py ({out['precision']}, {out['device']}, {out['date']}):")
    print("\n".join(lines) if lines else "# (none ≥ 3% faster than the autotuned default)", flush=True)
    return entries


if __name__ == "__main__":
    main()
