"""The default judge servers as data, the exact ``vllm serve`` commands for them, and a runner.

vLLM serves one model per process, so each judge gets its own port (and, when GPUs are named,
its own GPU). The commands are built here once so that ``ar3d judges`` (print or run them), the
health check's error message and the docs all show the same flags:

* ``--limit-mm-per-prompt '{"image":6}'`` — the consistency and part judges send all six views;
* ``--mm-processor-kwargs '{"max_pixels": …}'`` — Qwen2.5-VL spends one token per 28×28 pixels,
  so the server bounds images too (the client already downscales to the same bound);
* ``--max-model-len`` — 6 views · ~334 tokens + prompt + a ``<think>`` answer fit in 8192;
* ``--gpu-memory-utilization`` — split between judges that share a GPU;
* ``--host 127.0.0.1`` — the judges have no authentication by default: keep them local.

vLLM reads its API key from ``VLLM_API_KEY``; ``run`` passes ``$AR3D_JUDGE_API_KEY`` on as that,
so the key never appears on a command line.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from typing import Sequence, TextIO

from ..errors import Ar3dError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 8000
DEFAULT_MAX_PIXELS = 512 * 512
GPU_MEMORY_BUDGET = 0.9  # fraction of a GPU the judges on it may take together


@dataclass(frozen=True)
class JudgeServer:
    """One ``vllm serve`` process: which model, under which name, where."""

    served_name: str
    hf_id: str
    port: int
    role: str = ""
    max_images: int = 6
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_model_len: int = 8192
    gpu_memory_utilization: float = GPU_MEMORY_BUDGET
    host: str = DEFAULT_HOST
    gpu: str | None = None  # CUDA_VISIBLE_DEVICES for this process; None: inherit

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/v1"

    def argv(self, executable: str = "vllm") -> list[str]:
        """The command as an argument list (no shell needed)."""
        return [
            executable, "serve", self.hf_id,
            "--served-model-name", self.served_name,
            "--host", self.host,
            "--port", str(self.port),
            "--limit-mm-per-prompt", json.dumps({"image": self.max_images}, separators=(",", ":")),
            "--mm-processor-kwargs", json.dumps({"max_pixels": self.max_pixels}),
            "--max-model-len", str(self.max_model_len),
            "--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": self.gpu} if self.gpu is not None else {}

    def shell(self, executable: str = "vllm") -> str:
        """The command as one shell line, with its CUDA_VISIBLE_DEVICES prefix."""
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in self.env().items())
        return prefix + shlex.join(self.argv(executable))


# Port order = DEFAULT_JUDGES order from --port-base. The reward classes in .judges default to these.
DEFAULT_JUDGES: tuple[JudgeServer, ...] = (
    JudgeServer("UnifiedReward-2.0-qwen-7b", "CodeGoat24/UnifiedReward-2.0-qwen-7b", 8000,
                role="step 2 unified: alignment, coherence, style (1-5 each)"),
    JudgeServer("UnifiedReward-Think-qwen-7b", "CodeGoat24/UnifiedReward-Think-qwen-7b", 8001,
                role="step 1 unified: prompt alignment (1-5), max over views"),
    JudgeServer("Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", 8002,
                role="consist (category; colour/material/texture) and part completeness"),
)  # fmt: skip


def default_judge(served_name: str) -> JudgeServer | None:
    return next((j for j in DEFAULT_JUDGES if j.served_name == served_name), None)


def default_base_url(served_name: str, fallback: str = "http://127.0.0.1:8000/v1") -> str:
    """Where ``ar3d judges`` serves this model (the judge rewards' default base_url)."""
    j = default_judge(served_name)
    return j.base_url if j is not None else fallback


def parse_gpus(spec: str | None) -> list[str]:
    """"0,1,2" → ["0", "1", "2"]; None/"" → []."""
    if not spec:
        return []
    gpus = [g.strip() for g in spec.split(",")]
    if any(not g.isdigit() for g in gpus):
        raise Ar3dError(f"--gpus takes comma-separated GPU indices like 0,1,2, not {spec!r}")
    return gpus


def plan(judges: Sequence[JudgeServer] = DEFAULT_JUDGES, gpus: Sequence[str] = (), host: str = DEFAULT_HOST,
         port_base: int | None = DEFAULT_PORT_BASE) -> list[JudgeServer]:  # fmt: skip
    """The judges placed: consecutive ports from ``port_base``, GPUs assigned round-robin, and
    ``GPU_MEMORY_BUDGET`` split between judges that share a GPU (with no GPUs named, every
    judge lands on the default GPU, so it is split between all of them)."""
    placed = []
    for i, j in enumerate(judges):
        port = j.port if port_base is None else port_base + i
        gpu = gpus[i % len(gpus)] if gpus else None
        placed.append(replace(j, host=host, port=port, gpu=gpu))
    for i, j in enumerate(placed):
        sharing = sum(1 for k in placed if k.gpu == j.gpu)
        share = math.floor(min(j.gpu_memory_utilization, GPU_MEMORY_BUDGET / sharing) * 100 + 1e-9) / 100
        placed[i] = replace(j, gpu_memory_utilization=share if sharing > 1 else j.gpu_memory_utilization)
    return placed


def commands(judges: Sequence[JudgeServer], executable: str = "vllm") -> list[str]:
    return [j.shell(executable) for j in judges]


def command_hint(served_name: str, port: int = DEFAULT_PORT_BASE) -> str:
    """A ``vllm serve`` line for a missing model (used by JudgeClient.health_check)."""
    j = default_judge(served_name)
    if j is None:
        return (f"vllm serve <HF id of {served_name}> --served-model-name {shlex.quote(served_name)} "
                f"--port {port} --limit-mm-per-prompt '{{\"image\":6}}'")  # fmt: skip
    return replace(j, port=port).shell()


def run(judges: Sequence[JudgeServer], executable: str = "vllm", out: TextIO | None = None,
        grace_s: float = 30.0) -> int:  # fmt: skip
    """Start every judge, wait; on SIGINT/SIGTERM or when one exits, stop the others.

    Returns the first non-zero exit status (0 when all exit cleanly).
    """
    out = out or sys.stderr
    exe = shutil.which(executable)
    if exe is None:
        raise Ar3dError(f"'{executable}' is not on PATH: install vLLM on the GPU machine (pip install vllm) "
                        f"or run the commands that `ar3d judges` prints where vLLM is installed")  # fmt: skip
    procs: list[tuple[JudgeServer, subprocess.Popen]] = []
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for j in judges:
            env = dict(os.environ, **j.env())
            if os.environ.get("AR3D_JUDGE_API_KEY"):
                env["VLLM_API_KEY"] = os.environ["AR3D_JUDGE_API_KEY"]
            print(f"ar3d judges: starting {j.served_name} on {j.base_url}: {j.shell(executable)}", file=out, flush=True)
            procs.append((j, subprocess.Popen(j.argv(exe), env=env)))
        status = 0
        while stop["signal"] is None:
            done = [(j, p.returncode) for j, p in procs if p.poll() is not None]
            if done:
                j, status = done[0]
                print(f"ar3d judges: {j.served_name} exited with status {status}; stopping the others",
                      file=out, flush=True)  # fmt: skip
                break
            time.sleep(0.2)
        else:
            print("ar3d judges: stopping the judges", file=out, flush=True)
        return status or (130 if stop["signal"] == signal.SIGINT else 0)
    finally:
        _stop_all([p for _, p in procs], grace_s)
        for s, handler in old.items():
            signal.signal(s, handler)


def _stop_all(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
