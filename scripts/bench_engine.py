"""The graph engine next to transformers' `generate`, in one run, against the bandwidth floor.

Builds a random policy of the real ShapeLLM-Omni / AR3D-R1 shape (Qwen2.5-VL-7B + mesh tokens)
on the GPU (see scripts/bench_generate.py, whose helpers it uses) and times `Policy.generate`
with each engine on the same model: batch 1, and a group of 8 samples of one prompt (the
Hi-GRPO group; one shared prefill). `max_plan_tokens=0`, so every row is `<mesh-start>` +
1024 codes + `<mesh-end>` = 1026 new tokens and calls are comparable. The first call of each
(engine, batch) is reported as cold (it includes CUDA-graph capture for the graph engine), the
median of the others as warm. It also reports prefill and first-token latency, peak memory,
a two-step (plan → coarse → plan → refined) call, and how many greedy tokens the two engines
agree on in bf16 (exact equality is a CPU fp32 test: tests/test_graph_engine.py).

    python scripts/bench_engine.py --out bench_engine.json          # GPU, real 7B shape
    python scripts/bench_engine.py --tiny --batches 1 --repeats 2   # CPU smoke test
    python scripts/bench_engine.py --precisions fp8 int8 --out bench_w8.json   # + 8-bit weights (GPU)

With `--precisions`, after the bf16 runs the same model's decoder linears are quantized
(`ar3d.core.quantize`; rebuilt from the same seed for each format) and the graph engine is timed
again, next to the new floor (the bytes a decode step reads: 8-bit weights + scales + norms),
with the logits' error against bf16 on the same tokens.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import sys
import time
from unittest import mock
from pathlib import Path

from ar3d.core import threads  # before torch: OpenMP reads its wait policy when torch loads
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generate import NEW_TOKENS, PROMPT, _sync, _timed, build_policy, copy_bandwidth, weight_bytes  # noqa: E402


def _call(policy, engine, batch, device, seed, sampling, two_step=False):
    policy.engine = engine
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)  # what lives between calls: peak - before = the call's own
    wall, res = _timed(lambda: policy.generate([PROMPT], samples=batch, two_step=two_step, sampling=sampling, seed=seed), device)
    if not two_step:
        for s in res.samples:
            st = s.steps[0]
            assert len(st.completion_ids) == NEW_TOKENS and st.codes.shape == (1024,), len(st.completion_ids)
    out = {"wall_s": wall, "peak_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
           "allocated_before_bytes": before if device.type == "cuda" else None}  # fmt: skip
    timings = getattr(engine, "last_timings", {}) or {}
    if timings.get("first_token_s") is not None:
        out["first_token_s"] = timings["first_token_s"]
    out["cuda_graph"] = timings.get("cuda_graph")
    out["code_steps"] = timings.get("code_steps")  # steps decoded over the mesh codes' rows only (core/code_head.py)
    out["decode_attention"] = timings.get("decode_attention")  # the Triton kernel over filled slots (core/_decode_attention.py)
    return out, res


def prefill_seconds(policy, engine, device, reps=5):
    """One prefill of the templated prompt (what a group of N shares), graph engine's own path."""
    from ar3d.core import prompts as templates
    from ar3d.core.graph_engine import text_stack

    ids = policy.prompt_ids(templates.step_messages(1, PROMPT))
    stack = text_stack(policy.model)
    batch = next(iter(engine._batches.values()))
    rows = torch.arange(1, device=device)
    times = []
    with torch.inference_mode():
        for _ in range(reps):
            t, _ = _timed(lambda: engine._forward_prompt(stack, batch, torch.tensor([ids[:-1]], device=device), rows), device)
            times.append(t)
    return statistics.median(times), len(ids)


def profile(policy, engine, device, sampling, rows: int = 1):
    """GPU time per kernel over 16 replays of the `rows`-row step graph, next to their wall time:
    the mesh-code step's graph where there is one (1,018 of a mesh's 1,026 steps), else the full step's."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    policy.engine = engine
    policy.generate([PROMPT] * rows, sampling=sampling, seed=0)  # this batch's graphs exist now
    batch = next(b for b in engine._batches.values() if b.rows == rows and b.graph is not None)
    graph = batch.code_graph if batch.code_graph is not None else batch.graph
    with torch.inference_mode():
        batch.t.zero_()
        _sync(device)
        with torch_profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(16):
                graph.replay()
            _sync(device)
            wall = (time.perf_counter() - t0) / 16
    kernels = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if t:
            kernels.append((t / 16, e.count // 16, e.key[:90]))
    kernels.sort(reverse=True)
    gpu = sum(r[0] for r in kernels if not r[2].startswith(("cudaGraph", "Memcpy", "Memset")))
    which = "code" if graph is batch.code_graph else "full"
    print(f"{which}-step graph replay, {rows} rows: wall {wall * 1e3:.2f} ms/token, kernels {gpu / 1e3:.2f} ms/token")
    for t, n, k in kernels[:25]:
        print(f"  {t / 1e3:7.3f} ms  x{n:<5d} {k}")
    return {"rows": rows, "graph": which, "wall_ms_per_token": wall * 1e3, "kernel_ms_per_token": gpu / 1e3,
            "top": [{"ms": t / 1e3, "count": n, "kernel": k} for t, n, k in kernels[:40]]}  # fmt: skip


def _agree(x, y) -> int:
    return next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))


def _probe_ids(policy, completion, device):
    """The templated prompt + the first 64 greedy bf16 tokens: the logits' error is taken there."""
    from ar3d.core import prompts as templates

    ids = policy.prompt_ids(templates.step_messages(1, PROMPT)) + list(completion[:64])
    return torch.tensor([ids], device=device)


def _logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


def _bench_precision(policy, precision, args, device, sampling, greedy, greedy_bf16, probe, ref_logits, bw, t_start, dump, res):
    """Quantize the policy in place and time the graph engine: the 8-bit rows of the table."""
    from ar3d.core.quantize import check_precision, quantize_model, quantized_bytes

    check_precision(precision, device)
    if args.memory_snapshot:  # allocations from here on carry their Python stacks
        torch.cuda.memory._record_memory_history(max_entries=100_000)
    t = time.perf_counter()
    quantize_model(policy.model, precision)
    torch.cuda.empty_cache()
    quantize_s = time.perf_counter() - t
    text = policy.model.model.language_model
    read = quantized_bytes(policy.model)
    read += sum(p.numel() * p.element_size() for n, p in text.named_parameters() if not n.startswith("embed_tokens"))
    floor_token = read / bw["bytes_per_s"]
    out = {"quantize_s": quantize_s, "bytes_per_token": read, "floor_s_per_token": floor_token,
           "floor_s_per_call": floor_token * NEW_TOKENS, "runs": {}}  # fmt: skip
    logits = _logits(policy.model, probe)
    diff = (logits - ref_logits).abs()
    scale = ref_logits.abs().amax(dim=-1, keepdim=True)
    out["logit_error"] = {"max_rel": float((diff / scale).max()), "mean_rel": float((diff / scale).mean()),
                          "max_abs": float(diff.max()), "argmax_agree": float((logits.argmax(-1) == ref_logits.argmax(-1)).float().mean())}  # fmt: skip
    res["precisions"][precision] = out  # filled in place: every dump() writes what is measured so far
    for i, (name, knobs) in enumerate(args.variant or [("default", {})]):
        with mock.patch.dict(os.environ, knobs):  # the engine reads its knobs at construction, the kernel at capture
            v = _time_variant(policy, precision, name, args, device, sampling, greedy, greedy_bf16, t_start, dump)
        v["knobs"] = knobs
        out.setdefault("variants", {})[name] = v
        if i == 0:  # the first variant's rows are the precision's (the summary table reads these)
            out.update({k: v[k] for k in ("runs", "greedy_agreement_tokens_vs_bf16", "graph_failed", "fuse_failed")})
            out.update({k: v[k] for k in ("profile", "live_memory_by_site") if k in v})
        dump()
    if args.memory_snapshot:
        torch.cuda.memory._record_memory_history(enabled=None)
    return out


def _time_variant(policy, precision, name, args, device, sampling, greedy, greedy_bf16, t_start, dump) -> dict:
    """One engine over the quantized weights: cold and warm calls per batch, greedy agreement, profile."""
    from ar3d.core.graph_engine import GraphEngine

    engine = GraphEngine(policy.model, policy.pad_id)
    out = {"runs": {}}
    for b in args.batches:
        calls = []
        for r in range(args.repeats):
            call, _ = _call(policy, engine, b, device, args.seed + r, sampling)
            calls.append(call)
            print(f"[{time.perf_counter() - t_start:6.1f} s] {precision} {name} graph batch {b} call {r + 1}: "
                  f"{call['wall_s']:.2f} s first token {call.get('first_token_s', float('nan')) * 1e3:.1f} ms", flush=True)  # fmt: skip
        warm = statistics.median([c["wall_s"] for c in calls[1:]]) if len(calls) > 1 else None
        out["runs"][f"b{b}"] = {"calls": calls, "cold_s": calls[0]["wall_s"], "warm_s": warm,
                                "peak_bytes": max(c["peak_bytes"] or 0 for c in calls)}  # fmt: skip
        dump()
    if args.memory_snapshot:
        out["live_memory_by_site"] = _live_memory_by_site()
    _, g = _call(policy, engine, 1, device, 0, greedy)
    out["greedy_agreement_tokens_vs_bf16"] = _agree(g.samples[0].steps[0].completion_ids, greedy_bf16)
    out["graph_failed"], out["fuse_failed"] = engine._graph_failed, engine._fuse_failed
    out["attention_failed"] = engine._attention_failed
    if args.profile:
        out["profile"] = {f"b{b}": profile(policy, engine, device, sampling, rows=b) for b in args.batches}
    policy.engine = None  # the next variant's peaks must not hold this engine's caches
    del engine, g
    gc.collect()
    torch.cuda.empty_cache()
    return out


def _variant(text: str) -> tuple[str, dict]:
    """--variant NAME[:VAR=value,VAR=value]: an engine over the same 8-bit weights with these knobs."""
    name, _, spec = text.partition(":")
    knobs, key = {}, None
    for item in filter(None, spec.split(",")):
        k, eq, value = item.partition("=")
        if eq and k.startswith("AR3D_"):
            key, knobs[k] = k, value
        elif key is not None and not eq:  # a value with commas (AR3D_DECODE_ATTENTION=128,64,32,4,3)
            knobs[key] += "," + item
        else:
            raise argparse.ArgumentTypeError(f"--variant {text!r}: NAME:AR3D_VAR=value,... (e.g. attn:AR3D_ENGINE_ATTENTION=1)")
    return name, knobs


def _live_memory_by_site(n: int = 20) -> list[dict]:
    """Live CUDA memory summed by where it was allocated (the n largest sites, ar3d frames first):
    what the 8-bit engine holds between calls, beside its weights."""
    try:
        snap = torch.cuda.memory._snapshot()
    except Exception as e:  # an API change must not cost the run its timings
        return [{"error": f"{type(e).__name__}: {e}"}]
    sites: dict = {}
    for seg in snap.get("segments", []):
        pool = str(seg.get("segment_pool_id"))  # (0, 0): the ordinary allocator; others: a CUDA graph's
        for b in seg.get("blocks", []):
            if b.get("state") != "active_allocated":
                continue
            frames = [f"{f.get('filename', '?').split('/')[-1]}:{f.get('line')} {f.get('name')}" for f in b.get("frames", [])]
            ours = [f for f in frames if not f.startswith(("__init__.py", "module.py", "functional.py"))]
            key = (pool, tuple((ours or frames)[:6]))
            site = sites.setdefault(key, {"bytes": 0, "blocks": 0, "pool": pool, "frames": list(key[1])})
            site["bytes"] += b.get("size", 0)
            site["blocks"] += 1
    return sorted(sites.values(), key=lambda x: -x["bytes"])[:n]


def main(argv=None):
    from ar3d.core.engine import HFEngine, SamplingConfig
    from ar3d.core.graph_engine import GraphEngine

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hf-repeats", type=int, default=2, help="transformers is slow: fewer calls")
    ap.add_argument("--two-step-plan", type=int, default=64, help="plan tokens per step in the two-step call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--two-step-engines", nargs="+", default=["graph", "transformers"])
    ap.add_argument("--profile", action="store_true", help="profile 16 step-graph replays (bf16 at batch 1, each --precisions at each batch): kernels by GPU time")
    ap.add_argument("--precisions", nargs="*", default=[], choices=["fp8", "int8"],
                    help="also time the graph engine with 8-bit weights (GPU)")
    ap.add_argument("--skip-bf16", action="store_true", help="only the --precisions runs (bf16 graph b1 still timed)")
    ap.add_argument("--variant", type=_variant, action="append",
                    help="NAME:AR3D_VAR=value,...: time the 8-bit weights once per variant, side by side "
                         "(e.g. base attn:AR3D_ENGINE_ATTENTION=1 full:AR3D_ENGINE_CODE_STEPS=0); default one, as set")  # fmt: skip
    ap.add_argument("--memory-snapshot", action="store_true",
                    help="with --precisions: record the 8-bit runs' allocations (their timings then carry the "
                         "recording's cost) and report live memory by allocation site")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", help="CPU threads for torch (default: $AR3D_THREADS, then auto; ar3d.core.threads)")
    args = ap.parse_args(argv)
    threads.apply(args.threads)

    import transformers

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    env = {"date": _dt.date.today().isoformat(), "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "cuda": torch.version.cuda,
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
           "knobs": {k: v for k, v in os.environ.items() if k.startswith(("AR3D_W8", "AR3D_ENGINE"))}}  # fmt: skip
    print("env", env, flush=True)
    policy, shape = build_policy(args.tiny, device, dtype, args.seed)
    weights = weight_bytes(policy.model)
    bw = copy_bandwidth(device, 4 * 2**30 if device.type == "cuda" else 256 * 2**20)
    floor_token = weights["text"] / bw["bytes_per_s"]
    floor_call = floor_token * NEW_TOKENS
    print(f"text weights {weights['text'] / 1e9:.2f} GB, copy {bw['bytes_per_s'] / 1e12:.2f} TB/s, "
          f"floor {floor_token * 1e3:.2f} ms/token = {floor_call:.2f} s per call", flush=True)  # fmt: skip
    pad = policy.pad_id
    engines = {"transformers": HFEngine(policy.model, pad), "graph_unfused": GraphEngine(policy.model, pad, fuse=False),
               "graph": GraphEngine(policy.model, pad)}  # fmt: skip
    sampling = SamplingConfig(max_plan_tokens=0)  # the demo's T 0.7, top-p 0.7, top-k 8192
    res = {"env": env, "shape": vars(shape), "weights": weights, "bandwidth": bw, "floor_s_per_call": floor_call,
           "floor_s_per_token": floor_token, "new_tokens": NEW_TOKENS, "runs": {}, "precisions": {}}  # fmt: skip

    def dump():
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(res, indent=1, default=str))

    if args.skip_bf16:
        engines = {"graph": engines["graph"]}
        args.two_step_engines = [e for e in args.two_step_engines if e == "graph"]
    t_start = time.perf_counter()
    for name, engine in engines.items():
        reps = args.repeats if name == "graph" else args.hf_repeats
        for b in args.batches if name != "graph_unfused" else args.batches[:1]:
            calls = []
            for r in range(reps):
                call, _ = _call(policy, engine, b, device, args.seed + r, sampling)
                calls.append(call)
                print(f"[{time.perf_counter() - t_start:6.1f} s] {name} batch {b} call {r + 1}: {call['wall_s']:.2f} s "
                      f"first token {call.get('first_token_s', float('nan')) * 1e3:.1f} ms", flush=True)  # fmt: skip
            warm = statistics.median([c["wall_s"] for c in calls[1:]]) if len(calls) > 1 else None
            res["runs"][f"{name}/b{b}"] = {"engine": name, "batch": b, "calls": calls, "cold_s": calls[0]["wall_s"],
                                            "warm_s": warm, "peak_bytes": max(c["peak_bytes"] or 0 for c in calls)}  # fmt: skip
            dump()

    graph = engines["graph"]
    res["prefill_s"], res["prompt_tokens"] = prefill_seconds(policy, graph, device)
    # two-step Hi-GRPO rollout, group of 8, plan capped at --two-step-plan tokens per step
    two = SamplingConfig(max_plan_tokens=args.two_step_plan)
    for name in args.two_step_engines:
        if name == "graph":  # capture this shape's graphs first (transformers is only timed once: slow)
            _call(policy, engines[name], 8, device, args.seed, two, two_step=True)
        call, out = _call(policy, engines[name], 8, device, args.seed, two, two_step=True)
        tokens = sum(len(s.completion_ids) for s in out.samples[0].steps)
        res["runs"][f"{name}/two_step_b8"] = {"engine": name, "batch": 8, "wall_s": call["wall_s"], "tokens_per_row": tokens}
        print(f"{name} two-step group of 8: {call['wall_s']:.2f} s ({tokens} tokens a row)", flush=True)
        dump()
    greedy = SamplingConfig(temperature=0, max_plan_tokens=0)
    _, a = _call(policy, engines["graph"], 1, device, 0, greedy)
    greedy_bf16 = a.samples[0].steps[0].completion_ids
    if "transformers" in engines:
        # greedy agreement in bf16 (numerics differ in the last bits: count tokens up to the first difference)
        _, h = _call(policy, engines["transformers"], 1, device, 0, greedy)
        same = _agree(greedy_bf16, h.samples[0].steps[0].completion_ids)
        res["greedy_agreement_tokens"] = same
        print(f"greedy bf16: engines agree on the first {same} of {len(greedy_bf16)} tokens", flush=True)
    res["graph_failed"], res["fuse_failed"] = graph._graph_failed, graph._fuse_failed
    if args.profile and device.type == "cuda":
        res["profile"] = profile(policy, graph, device, sampling)
    if args.precisions:
        probe = _probe_ids(policy, greedy_bf16, device)
        ref_logits = _logits(policy.model, probe)
        # Let the bf16 engines go before quantizing, so that their cached batches (KV caches, the
        # code head's view of the bf16 `lm_head`) cannot count in the 8-bit peaks. `engine`, the
        # timing loop's variable, held the last one: that was the +1.2 GB of BENCHMARKS #20.
        policy.engine = None
        del engines, engine, graph, a
        gc.collect()
        torch.cuda.empty_cache()
        for i, precision in enumerate(args.precisions):
            if i:  # the previous format replaced the bf16 weights: rebuild them from the same seed
                del policy
                torch.cuda.empty_cache()
                policy, _ = build_policy(args.tiny, device, dtype, args.seed)
            res["precisions"][precision] = _bench_precision(policy, precision, args, device, sampling, greedy,
                                                            greedy_bf16, probe, ref_logits, bw, t_start, dump, res)  # fmt: skip

    print()
    print("| engine | batch | cold s | warm s / call | warm s / mesh | floor / warm | peak GB | first token ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, r in res["runs"].items():
        if "calls" not in r:
            continue
        w, n = r["warm_s"], r["batch"]
        ft = [c.get("first_token_s") for c in r["calls"][1:] if c.get("first_token_s") is not None]
        print(f"| {r['engine']} | {r['batch']} | {r['cold_s']:.2f} | {w if w is None else f'{w:.2f}'} | "
              f"{'' if w is None else f'{w / n:.3f}'} | {'' if w is None else f'{floor_call / w:.1%}'} | "
              f"{r['peak_bytes'] / 1e9:.2f} | {statistics.median(ft) * 1e3 if ft else float('nan'):.1f} |")  # fmt: skip
    for precision, r in res["precisions"].items():
        b1 = r["runs"].get("b1", {}).get("warm_s")
        b8 = r["runs"].get("b8", {}).get("warm_s")
        print(f"{precision}: b1 {b1:.2f} s ({r['floor_s_per_call'] / b1:.1%} of its floor {r['floor_s_per_call']:.2f} s; "
              f"{b1 / floor_call:.2f}x the bf16 floor), b8 {b8 if b8 is None else f'{b8:.2f}'} s, "
              f"cold {r['runs']['b1']['cold_s']:.2f} s, peak {r['runs']['b1']['peak_bytes'] / 1e9:.2f} GB, "
              f"logit error max {r['logit_error']['max_rel']:.3g} mean {r['logit_error']['mean_rel']:.3g}")  # fmt: skip
        for name, v in (r.get("variants") or {}).items():
            w1, w8 = v["runs"].get("b1", {}).get("warm_s"), v["runs"].get("b8", {}).get("warm_s")
            if w1 and w8:
                print(f"  {precision} {name} {v['knobs'] or ''}: b1 {w1:.2f} s ({r['floor_s_per_call'] / w1:.1%} of the floor), "
                      f"b8 {w8:.2f} s, group of 8 / one {w8 / w1:.3f}x")  # fmt: skip
    g1, g8 = res["runs"].get("graph/b1"), res["runs"].get("graph/b8")
    if g1 and g8 and g1["warm_s"] and g8["warm_s"]:
        res["group8_over_one"] = g8["warm_s"] / g1["warm_s"]
        print(f"group of 8 / one: {res['group8_over_one']:.2f}x; prefill {res['prefill_s'] * 1e3:.1f} ms "
              f"({res['prompt_tokens']} tokens)")  # fmt: skip
    dump()
    return res


if __name__ == "__main__":
    main()
