"""Generation on a busy machine: ms per token of the demo policy, idle and next to N busy
processes (N = cores), with torch's thread defaults ("before") and ar3d's thread policy
("after"), side by side in one run; then how long a cancel takes under load.

Every measurement runs in a fresh child process, because OpenMP (libgomp) reads its wait policy
once, when torch loads it:

* before: what ar3d did without a thread policy: the OMP_*/AR3D_THREADS variables removed, torch
  imported first, its defaults kept (one thread per core, libgomp's spinning wait).
* after: the same environment, ar3d's policy (`ar3d.core.threads.apply()`: passive wait, threads
  from --threads / $AR3D_THREADS / auto).
* before:N / after:N: the same with N intra-op threads.

A token is timed from one decode step to the next (the graph engine looks at the state after
every token on the CPU; "before" cancels as the engine did, every 8th token), after a short warm-up; each run stops after --tokens tokens or
--seconds seconds, whichever comes first. Cancel latency: the real job worker of `ar3d serve`
(`server.jobs.JobManager` around the demo `TextTo3D`), a job cancelled mid-mesh, the time until
the cancel call returns with status "cancelled".

    python scripts/bench_busy.py --out benchmarks/busy_cpu.json
    python scripts/bench_busy.py --configs before after after:1 --busy 2 --tokens 128

The machine's load average is recorded at every measurement: on a shared machine "idle" means
"without our busy processes", not idle.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

STRIP = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "AR3D_THREADS", "OMP_DISPLAY_ENV")
PROMPT = "a wooden chair with four legs"
BUSY_LOOP = "while True:\n    pass\n"


# --- child side ---------------------------------------------------------------------------------
def _setup(config: str):
    """Thread settings of `config`, applied the way the real programs do (before/after torch)."""
    kind, _, n = config.partition(":")
    if kind == "before":
        import torch  # first, as without a policy: libgomp starts with its defaults

        import ar3d.core  # noqa: F401

        if n:
            torch.set_num_threads(int(n))
        from ar3d.core import threads

        return threads.describe()
    if kind == "after":
        from ar3d.core import threads  # before torch: the wait policy is set first

        return threads.apply(n or None).to_dict()
    raise SystemExit(f"unknown config {config!r}: before, after, before:N or after:N")


def child_tokens(args) -> dict:
    policy_info = _setup(args.config)
    import torch

    from ar3d.core.engine import SamplingConfig
    from ar3d.core.policy import Policy
    from ar3d.core import prompts as templates

    policy = Policy.load(None, device="cpu")  # the bundled demo model
    sampling = SamplingConfig(max_plan_tokens=0)  # straight into the 1024 codes: every run alike
    constraint = policy.constraint(sampling)
    ids = [policy.prompt_ids(templates.step_messages(1, PROMPT, None, False))]
    stamps: list[float] = []
    limit = [0, 0.0]

    def on_token(state) -> bool:
        stamps.append(time.perf_counter())
        return len(stamps) >= limit[0] or stamps[-1] - stamps[0] > limit[1]

    from ar3d.core.engine import GenerationCancelled

    def run(tokens, seconds):
        stamps.clear()
        limit[:] = [tokens, seconds]
        try:
            policy.engine.generate(ids, constraint, sampling, seed=0, on_token=on_token)
        except GenerationCancelled:
            pass
        return [b - a for a, b in zip(stamps, stamps[1:])]

    run(8, 30.0)  # warm-up: caches, first-call allocations
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    gaps = run(args.tokens, args.seconds)
    wall = time.perf_counter() - t0
    return {"config": args.config, "policy": policy_info, "torch_threads": torch.get_num_threads(),
            "tokens": len(gaps), "ms_per_token": 1e3 * sum(gaps) / max(len(gaps), 1),
            "median_ms": 1e3 * statistics.median(gaps) if gaps else None,
            "p90_ms": 1e3 * sorted(gaps)[int(0.9 * (len(gaps) - 1))] if gaps else None,
            "wall_s": wall, "loadavg_start": load0, "loadavg_end": os.getloadavg()}  # fmt: skip


def child_cancel(args) -> dict:
    policy_info = _setup(args.config)
    from ar3d.core.pipeline import TextTo3D
    from ar3d.server.jobs import JobManager, JobParams

    pipe = TextTo3D.load(None, device="cpu")
    if args.config.startswith("before"):  # the engine as it was: the cancel flag read every 8th token on a CPU
        pipe.policy.engine.check_every = 8
    jobs = JobManager(pipe, max_queue=4, keep_jobs=16)
    out = []
    try:
        for _ in range(args.repeats):
            job = jobs.submit(JobParams(PROMPT, max_plan_tokens=0, seed=1))
            deadline = time.monotonic() + 300
            while jobs.get(job["id"])["tokens_done"] < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            snap0 = jobs.get(job["id"])
            t0 = time.perf_counter()
            reply = jobs.cancel(job["id"], wait=60.0)
            latency = time.perf_counter() - t0
            out.append({"latency_s": latency, "status": reply["status"], "tokens_at_cancel": snap0["tokens_done"],
                        "status_before": snap0["status"]})  # fmt: skip
    finally:
        jobs.close()
    lat = [o["latency_s"] for o in out]
    return {"config": args.config, "policy": policy_info, "runs": out, "median_s": statistics.median(lat),
            "max_s": max(lat), "loadavg": os.getloadavg()}  # fmt: skip


# --- parent side --------------------------------------------------------------------------------
def _child(args, mode: str, config: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STRIP}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--config", config,
           "--tokens", str(args.tokens), "--seconds", str(args.seconds), "--repeats", str(args.repeats)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.child_timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child {mode} {config} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


class Busy:
    """N processes that each keep one core busy (pure Python loops), for the loaded runs."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(self.n)]
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"date": _dt.datetime.now().isoformat(timespec="minutes"), "cpu": cpu, "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}  # fmt: skip


def render(res: dict) -> str:
    m = res["machine"]
    lines = [f"{m['date']} · {m['cpu']} · {m['usable_cores']} cores · torch {m['torch']} · "
             f"busy processes: {res['busy']}", "",
             "| settings | threads · wait | idle ms/token | busy ms/token | busy / idle | load avg (1 min) idle → busy |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for config in res["configs"]:
        idle, busy = res["tokens"]["idle"][config], res["tokens"]["busy"][config]
        p = idle["policy"]
        ratio = busy["ms_per_token"] / idle["ms_per_token"]
        lines.append(f"| {config} | {idle['torch_threads']} · {p['wait_policy']} | {idle['ms_per_token']:.1f} "
                     f"(median {idle['median_ms']:.1f}, {idle['tokens']} tok) | {busy['ms_per_token']:.1f} "
                     f"(median {busy['median_ms']:.1f}, {busy['tokens']} tok) | {ratio:.2f}× | "
                     f"{idle['loadavg_start'][0]:.2f} → {busy['loadavg_end'][0]:.2f} |")  # fmt: skip
    if len(res["configs"]) >= 2 and {"before", "after"} <= set(res["configs"]):
        for cond in ("idle", "busy"):
            b, a = res["tokens"][cond]["before"]["ms_per_token"], res["tokens"][cond]["after"]["ms_per_token"]
            lines.append(f"\n{cond}: after is {b / a:.2f}× as fast as before ({b:.1f} → {a:.1f} ms/token)")
    if res.get("cancel"):
        lines.append("\n| settings | cancel latency under load: median / max (s) | replies |\n|---|---|---|")
        for config, c in res["cancel"].items():
            statuses = ", ".join(sorted({r["status"] for r in c["runs"]}))
            lines.append(f"| {config} | {c['median_s']:.2f} / {c['max_s']:.2f} ({len(c['runs'])} cancels) | {statuses} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["before", "after"], help="before, after, before:N, after:N")
    ap.add_argument("--busy", type=int, default=None, help="busy processes (default: one per core)")
    ap.add_argument("--tokens", type=int, default=200, help="tokens per measurement at most (default 200)")
    ap.add_argument("--seconds", type=float, default=25.0, help="seconds per measurement at most (default 25)")
    ap.add_argument("--repeats", type=int, default=3, help="cancels per settings (default 3)")
    ap.add_argument("--cancel-configs", nargs="*", default=None, help="settings to measure cancel with (default: --configs)")
    ap.add_argument("--child-timeout", type=float, default=900)
    ap.add_argument("--out", type=Path, help="write every number as JSON")
    ap.add_argument("--render", type=Path, help="print the table of a saved JSON and exit")
    ap.add_argument("--child", choices=["tokens", "cancel"], help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    if args.child:
        print(json.dumps(child_tokens(args) if args.child == "tokens" else child_cancel(args)), flush=True)
        return 0

    busy = args.busy if args.busy is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    res = {"machine": machine(), "busy": busy, "configs": args.configs, "tokens": {"idle": {}, "busy": {}},
           "cancel": {}, "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
           "loadavg_start": os.getloadavg()}  # fmt: skip
    print(f"machine {res['machine']}, load average {res['loadavg_start']}", file=sys.stderr, flush=True)
    for config in args.configs:  # idle and busy back to back per setting: they share the background load
        res["tokens"]["idle"][config] = r = _child(args, "tokens", config)
        print(f"idle {config}: {r['ms_per_token']:.1f} ms/token ({r['tokens']} tokens, load {r['loadavg_start'][0]:.2f})",
              file=sys.stderr, flush=True)  # fmt: skip
        with Busy(busy):
            res["tokens"]["busy"][config] = r = _child(args, "tokens", config)
        print(f"busy {config}: {r['ms_per_token']:.1f} ms/token ({r['tokens']} tokens, load {r['loadavg_end'][0]:.2f})",
              file=sys.stderr, flush=True)  # fmt: skip
    for config in args.cancel_configs if args.cancel_configs is not None else args.configs:
        with Busy(busy):
            res["cancel"][config] = c = _child(args, "cancel", config)
        print(f"cancel {config}: median {c['median_s']:.2f} s, max {c['max_s']:.2f} s", file=sys.stderr, flush=True)
    res["loadavg_end"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1))
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
