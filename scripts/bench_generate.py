"""Seconds per 1024-code mesh of ar3d's generation engine, next to the hardware floor.

Builds a policy of the real ShapeLLM-Omni / AR3D-R1 shape (Qwen2.5-VL-7B + mesh tokens) with
random weights directly on the GPU (nothing is saved to disk), wraps it in `Policy` exactly as a
loaded checkpoint would be, and times `Policy.generate` with a zero-length plan, so every row
is `<mesh-start>` + 1024 codes + `<mesh-end>` (1026 new tokens) and runs are comparable.

Next to it: the text weights' bytes, a measured device-to-device copy bandwidth, and the floor
they give (every decode step must read all text weights once: bytes / bandwidth per token,
times 1026 tokens per call, whatever the batch). To show where the time goes, it also times
a few dozen tokens of plain transformers `generate` (no ar3d constraint) and of a bare eager
forward loop (KV cache, argmax on the device, no host synchronisation per token), once before
the first and once after the last `Policy.generate` call.

After a short warm-up, the first full-length call at each batch size is reported as *cold* and
the median of the later calls as *warm*: on the H200 machines the cold call ran ~2.7x slower
(see BENCHMARKS.md), and a user's first mesh after loading is a cold call.

    python scripts/bench_generate.py --out bench.json                 # GPU, real 7B shape
    python scripts/bench_generate.py --tiny --batches 1               # CPU smoke test
    python scripts/bench_generate.py --render bench.json              # table of a saved result

The table is printed last; the JSON (`--out`) holds every number and the environment.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from ar3d.core import threads  # before torch: OpenMP reads its wait policy when torch loads
import torch  # noqa: E402

PROMPT = "a chair"
NEW_TOKENS = 1026  # <mesh-start> + 1024 codes + <mesh-end> with max_plan_tokens=0


# --- timing helpers ---------------------------------------------------------------------------
def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    """Wall seconds of fn(), with the device drained before and after."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def copy_bandwidth(device: torch.device, nbytes: int, iters: int = 20) -> dict:
    """Device-to-device copy bandwidth, counting bytes read plus bytes written (median of iters)."""
    n = nbytes // 2
    src = torch.randn(n, device=device, dtype=torch.float32).to(torch.bfloat16)  # not zeros
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            dst.copy_(src)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            dst.copy_(src)
            times.append(time.perf_counter() - t0)
    assert torch.equal(dst[:1024], src[:1024])
    moved = 2 * src.numel() * src.element_size()
    med = statistics.median(times)
    del src, dst
    return {"tensor_bytes": moved // 2, "bytes_moved": moved, "median_s": med, "bytes_per_s": moved / med}


# --- model ------------------------------------------------------------------------------------
def build_policy(tiny: bool, device: torch.device, dtype: torch.dtype, seed: int):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ar3d.core.factory import PolicyShape, build_tokenizer, policy_config
    from ar3d.core.policy import Policy

    tok = build_tokenizer()
    shape = PolicyShape() if tiny else PolicyShape.qwen25_vl_7b()
    config = policy_config(tok, shape)
    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # what from_pretrained(dtype=...) does while it builds the model
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    return Policy(model, tok, name=f"random {'tiny' if tiny else 'qwen2.5-vl-7b'} shape"), shape


def _nbytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def weight_bytes(model) -> dict:
    """Bytes of the text weights (language model + lm_head) and of the vision tower."""
    inner = model.model
    text = _nbytes(inner.language_model) + _nbytes(model.lm_head)
    embed = _nbytes(inner.language_model.embed_tokens)
    return {
        "text": text,
        "text_without_input_embedding": text - embed,  # a decode step reads one embedding row
        "vision": _nbytes(inner.visual),
        "total": _nbytes(model),
        "text_params": text // next(model.parameters()).element_size(),
    }


def prompt_batch(policy, batch: int, device):
    from ar3d.core import prompts as templates

    ids = policy.prompt_ids(templates.step_messages(1, PROMPT))
    t = torch.tensor([ids] * batch, device=device)
    return t, torch.ones_like(t)


# --- measurements -----------------------------------------------------------------------------
def time_prefill(policy, batch, device, reps=5) -> float:
    model = policy.model
    ids, mask = prompt_batch(policy, batch, device)
    secs = []
    with torch.inference_mode():
        for _ in range(reps + 1):
            s, _ = _timed(lambda: model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1), device)
            secs.append(s)
    return statistics.median(secs[1:])


def time_plain_generate(policy, batch, device, tokens) -> float:
    """Seconds per token of transformers `generate` with no ar3d constraint (sampling as the demo)."""
    from transformers import GenerationConfig

    ids, mask = prompt_batch(policy, batch, device)

    def run(n):
        config = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.7, top_k=8192, repetition_penalty=1.0,
                                  max_new_tokens=n, min_new_tokens=n, eos_token_id=None,
                                  pad_token_id=policy.tokenizer.pad_token_id)  # fmt: skip
        return policy.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)

    with torch.inference_mode():
        short, _ = _timed(lambda: run(1), device)  # prefill + 1 token, subtracted below
        full, out = _timed(lambda: run(tokens + 1), device)
    assert out.shape[1] == ids.shape[1] + tokens + 1
    return (full - short) / tokens


def time_bare_decode(policy, batch, device, tokens) -> float | None:
    """Seconds per token of a bare eager decode loop: model forward + argmax, no host sync per token."""
    from transformers import DynamicCache

    model = policy.model
    ids, mask = prompt_batch(policy, batch, device)
    L = ids.shape[1]
    # Text-only multimodal RoPE: the three position rows are equal; passed explicitly so that no
    # state left on the model by an earlier `generate` (rope_deltas) enters.
    pos = lambda start, n: torch.arange(start, start + n, device=device).view(1, 1, n).expand(3, batch, n)  # noqa: E731
    try:
        with torch.inference_mode():
            cache = DynamicCache(config=model.config)
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos(0, L), past_key_values=cache,
                        use_cache=True, logits_to_keep=1)  # fmt: skip
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            full_mask = torch.ones(batch, L + tokens + 8, dtype=mask.dtype, device=device)

            def step(i):
                nonlocal nxt
                o = model(input_ids=nxt, attention_mask=full_mask[:, : L + i + 1], position_ids=pos(L + i, 1),
                          past_key_values=cache, use_cache=True)  # fmt: skip
                nxt = o.logits[:, -1].argmax(-1, keepdim=True)

            for i in range(4):  # warm the decode shapes
                step(i)
            _sync(device)
            t0 = time.perf_counter()
            for i in range(4, 4 + tokens):
                step(i)
            _sync(device)
            assert cache.get_seq_length() == L + 4 + tokens
            return (time.perf_counter() - t0) / tokens
    except Exception as e:  # a transformers version whose forward wants other arguments
        print(f"bare decode loop skipped: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def time_policy_generate(policy, batch, device, seed):
    from ar3d.core.engine import SamplingConfig

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    wall, res = _timed(lambda: policy.generate([PROMPT] * batch, sampling=SamplingConfig(max_plan_tokens=0), seed=seed), device)
    for s in res.samples:  # every row is exactly <mesh-start> + 1024 codes + <mesh-end>
        st = s.steps[0]
        assert len(st.completion_ids) == NEW_TOKENS and st.codes.shape == (1024,), len(st.completion_ids)
        assert st.completion_ids[0] == policy.vocab.start_id and st.completion_ids[-1] == policy.vocab.end_id
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"wall_s": wall, "engine_s": res.timings["step1_seconds"], "peak_bytes": peak}


def warm_up(policy, batches, device):
    """Short generate (8 tokens) at every batch size: CUDA context, kernels, library handles."""
    from transformers import GenerationConfig

    for b in batches:
        ids, mask = prompt_batch(policy, b, device)
        cfg = GenerationConfig(do_sample=True, max_new_tokens=8, min_new_tokens=8, eos_token_id=None,
                               pad_token_id=policy.tokenizer.pad_token_id, repetition_penalty=1.0)  # fmt: skip
        with torch.inference_mode():
            policy.model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg)
    _sync(device)


# --- report -----------------------------------------------------------------------------------
def _gb(x):
    return f"{x / 1e9:.2f} GB" if x >= 1e8 else f"{x / 1e6:.2f} MB"


def summarize(res: dict) -> dict:
    """Derived numbers of each batch from its raw calls and breakdown rows (also for a saved JSON).

    The first constrained call at a batch size in a fresh process is the cold one; on the H200
    machines it ran ~2.7x slower than the next calls, so cold and warm are reported apart. The
    headline (`seconds_per_call`) is the warm median, or the cold call if there is only one.
    """
    floor_call = res["floor"]["seconds_per_call"]
    for r in res["runs"]:
        b, walls = r["batch"], [c["wall_s"] for c in r["calls"]]
        bd = r.get("breakdown", [])
        r["prefill_s"] = statistics.median(x["prefill_s"] for x in bd) if bd else r.get("prefill_s", 0.0)
        cold = walls[0]
        warm = statistics.median(walls[1:]) if len(walls) > 1 else None
        sec = warm if warm is not None else cold
        per_tok = lambda t: (t - r["prefill_s"]) / (NEW_TOKENS - 1) * 1e3  # noqa: E731
        r.update(
            seconds_per_call_all=walls,
            cold_seconds_per_call=cold,
            warm_seconds_per_call=warm,
            seconds_per_call=sec,
            seconds_per_mesh=sec / b,
            tokens_per_s=b * NEW_TOKENS / sec,
            decode_ms_per_token=per_tok(sec),
            cold_decode_ms_per_token=per_tok(cold),
            peak_bytes=max((c["peak_bytes"] or 0) for c in r["calls"]) or None,
            floor_seconds_per_mesh=floor_call / b,
            floor_fraction=floor_call / sec,
            cold_floor_fraction=floor_call / cold,
        )
    return res


def table(res: dict) -> str:
    floor_call = res["floor"]["seconds_per_call"]
    lines = [
        f"Policy: {res['shape_name']}, {res['dtype']}, random weights; `Policy.generate`, engine "
        f"`{res['engine']}`, max_plan_tokens=0 → {NEW_TOKENS} new tokens a row; prompt {res['prompt_tokens']} tokens.",
        f"Device: {res['env']['device_name']}; torch {res['env']['torch']}, transformers {res['env']['transformers']}; "
        f"{res['env']['date']}.",
        f"Text weights {_gb(res['weights']['text'])} (vision tower {_gb(res['weights']['vision'])} not counted); "
        f"copy bandwidth {res['bandwidth']['bytes_per_s'] / 1e12:.2f} TB/s (read+write) → floor "
        f"{res['floor']['seconds_per_token'] * 1e3:.2f} ms/token, {floor_call:.2f} s per call of {NEW_TOKENS} tokens.",
        "",
        "| batch | calls, s (first = cold) | warm s / call | warm s / mesh | warm tokens/s | prefill | warm ms / token "
        "| peak GPU mem | floor s / mesh | floor / warm | floor / cold |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["runs"]:
        peak = _gb(r["peak_bytes"]) if r["peak_bytes"] is not None else "n/a"
        lines.append(
            f"| {r['batch']} | {', '.join(f'{w:.1f}' for w in r['seconds_per_call_all'])} | {r['seconds_per_call']:.2f} | "
            f"{r['seconds_per_mesh']:.2f} | {r['tokens_per_s']:.1f} | {r['prefill_s'] * 1e3:.1f} ms | "
            f"{r['decode_ms_per_token']:.1f} | {peak} | {r['floor_seconds_per_mesh']:.2f} | "
            f"{r['floor_fraction'] * 100:.1f}% | {r['cold_floor_fraction'] * 100:.1f}% |"
        )
    lines += ["", "Per decode step, ms (before / after: measured before the first and after the last Policy.generate call):", "",
              "| batch | floor | bare eager forward loop, before / after | plain HF generate, before / after "
              "| ar3d Policy.generate, cold / warm |",
              "|---:|---:|---:|---:|---:|"]  # fmt: skip
    fmt = lambda x: "n/a" if x is None else f"{x:.1f}"  # noqa: E731
    for r in res["runs"]:
        bd = {x["when"]: x for x in r.get("breakdown", [])}
        pick = lambda key: " / ".join(fmt(bd[w][key]) if w in bd else "n/a" for w in ("before", "after"))  # noqa: E731
        lines.append(
            f"| {r['batch']} | {res['floor']['seconds_per_token'] * 1e3:.2f} | {pick('bare_decode_ms_per_token')} | "
            f"{pick('plain_generate_ms_per_token')} | {r['cold_decode_ms_per_token']:.1f} / "
            f"{fmt(r['decode_ms_per_token'] if r['warm_seconds_per_call'] is not None else None)} |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="the tiny default PolicyShape (CPU smoke test)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed Policy.generate calls per batch: the first is reported as cold, the median of the rest as warm")
    ap.add_argument("--breakdown-tokens", type=int, default=48, help="tokens for the plain-generate / bare-loop rows")
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--copy-bytes", type=float, default=None, help="copy-bandwidth tensor size (default 4 GiB GPU, 256 MiB CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here (rewritten after each run)")
    ap.add_argument("--render", type=Path, default=None, help="only print the table of a saved JSON result")
    ap.add_argument("--threads", help="CPU threads for torch (default: $AR3D_THREADS, then auto; ar3d.core.threads)")
    args = ap.parse_args(argv)
    threads.apply(args.threads)
    if args.render:
        res = summarize(json.loads(args.render.read_text()))
        print(table(res))
        return res

    import transformers

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    env = {
        "date": _dt.date.today().isoformat(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
    }
    print(f"env: {env}", flush=True)

    t_start = t0 = time.perf_counter()
    policy, shape = build_policy(args.tiny, device, dtype, args.seed)
    build_s = time.perf_counter() - t0
    weights = weight_bytes(policy.model)
    print(f"built in {build_s:.1f} s: text weights {_gb(weights['text'])}, vision {_gb(weights['vision'])}", flush=True)

    copy_bytes = int(args.copy_bytes or (4 * 2**30 if device.type == "cuda" else 256 * 2**20))
    bw = copy_bandwidth(device, copy_bytes)
    per_token = weights["text"] / bw["bytes_per_s"]
    floor = {"seconds_per_token": per_token, "seconds_per_call": per_token * NEW_TOKENS, "tokens": NEW_TOKENS,
             "definition": "text-weight bytes / copy bandwidth (read+write) x 1026 tokens; batch-independent per call"}  # fmt: skip
    print(f"copy bandwidth {bw['bytes_per_s'] / 1e12:.3f} TB/s → floor {per_token * 1e3:.2f} ms/token", flush=True)

    ids, _ = prompt_batch(policy, 1, device)
    res = {
        "shape_name": "tiny PolicyShape()" if args.tiny else "Qwen2.5-VL-7B (ShapeLLM-Omni / AR3D-R1)",
        "shape": vars(shape),
        "dtype": str(dtype).replace("torch.", ""),
        "attn_implementation": getattr(policy.model.config, "_attn_implementation", None),
        "engine": policy.engine.name,
        "prompt": PROMPT,
        "prompt_tokens": ids.shape[1],
        "new_tokens_per_row": NEW_TOKENS,
        "env": env,
        "build_s": build_s,
        "weights": weights,
        "bandwidth": bw,
        "floor": floor,
        "runs": [],
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }

    def dump():
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(res, indent=2, default=str))

    t0 = time.perf_counter()
    warm_up(policy, args.batches, device)
    print(f"warm-up {time.perf_counter() - t0:.1f} s", flush=True)

    def breakdown(when):
        for b in args.batches:
            prefill = time_prefill(policy, b, device)
            plain = time_plain_generate(policy, b, device, args.breakdown_tokens)
            bare = time_bare_decode(policy, b, device, args.breakdown_tokens)
            rows[b]["breakdown"].append({"when": when, "t": time.perf_counter() - t_start, "prefill_s": prefill,
                                         "plain_generate_ms_per_token": plain * 1e3,
                                         "bare_decode_ms_per_token": None if bare is None else bare * 1e3})  # fmt: skip
            print(f"[{time.perf_counter() - t_start:6.1f} s] batch {b} ({when}): prefill {prefill * 1e3:.1f} ms, "
                  f"plain generate {plain * 1e3:.1f} ms/token, "
                  f"bare loop {'n/a' if bare is None else f'{bare * 1e3:.1f}'} ms/token", flush=True)  # fmt: skip

    rows = {b: {"batch": b, "breakdown": [], "calls": []} for b in args.batches}
    breakdown("before")  # the cheap rows first
    for rep in range(args.repeats):  # interleaved, so drift shows in both batches
        for b in args.batches:
            call = time_policy_generate(policy, b, device, args.seed + rep)
            call["t"] = time.perf_counter() - t_start
            rows[b]["calls"].append(call)
            print(f"[{call['t']:6.1f} s] batch {b} call {rep + 1}: {call['wall_s']:.2f} s "
                  f"(engine {call['engine_s']:.2f} s)", flush=True)  # fmt: skip
            res["runs"] = [rows[x] for x in args.batches if rows[x]["calls"]]
            summarize(res)
            dump()
    if args.repeats:
        breakdown("after")
        summarize(res)

    print()
    print(table(res))
    dump()
    return res


if __name__ == "__main__":
    main()
