"""The CPU thread policy (core/threads.py) in real child processes, and cancel under load.

What is checked is that the policy is in force where it matters, read from libgomp itself
(``OMP_DISPLAY_ENV=VERBOSE`` makes it print the wait policy and spin count it started with),
never a speed: the machine these run on is shared. The load tests start one busy-loop process
per core next to a real `ar3d serve`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

STRIP = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "AR3D_THREADS")


def clean_env(**extra) -> dict:
    """The environment of a user who set nothing, plus libgomp's own report of what it read."""
    env = {k: v for k, v in os.environ.items() if k not in STRIP}
    env.update(OMP_DISPLAY_ENV="VERBOSE", **extra)
    return env


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def passive_in_libgomp(stderr: str) -> bool:
    return "OMP_WAIT_POLICY = 'PASSIVE'" in stderr and "GOMP_SPINCOUNT = '0'" in stderr


def info(*args, **env) -> tuple[dict, str, int]:
    proc = subprocess.run([sys.executable, "-m", "ar3d.cli", "info", "--json", *args], env=clean_env(**env),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    data = json.loads(proc.stdout[proc.stdout.index("{"):]) if proc.returncode == 0 else {}
    return data, proc.stderr, proc.returncode


def test_cli_applies_the_policy_before_torch_starts_its_threads():
    data, err, rc = info()
    assert rc == 0, err
    assert passive_in_libgomp(err), err[-2000:]  # libgomp started passive: torch was imported after
    t = data["threads"]
    assert t == {"threads": min(cores(), 8), "source": "auto", "wait_policy": "passive", "passive_wait": True,
                 "cores": cores()}  # fmt: skip

    data, err, rc = info("--threads", "1")
    assert rc == 0 and data["threads"]["threads"] == 1 and data["threads"]["source"] == "--threads", err
    data, err, rc = info(AR3D_THREADS="1")
    assert rc == 0 and data["threads"]["threads"] == 1 and data["threads"]["source"] == "AR3D_THREADS", err
    data, err, rc = info(OMP_WAIT_POLICY="ACTIVE")  # the user's choice is kept, and shown
    assert rc == 0 and data["threads"]["wait_policy"] == "active" and data["threads"]["passive_wait"] is False
    _, err, rc = info("--threads", "many")
    assert rc == 2 and "--threads" in err and "positive integer" in err and "Traceback" not in err


def test_library_import_order():
    """ar3d.core first: passive. torch first (libgomp already spinning-by-default): one thread,
    and the policy says why."""
    code = ("{first}\nfrom ar3d.core import threads\nimport json\n"
            "print(json.dumps(threads.apply().to_dict()))")  # fmt: skip
    for first, threads, passive in (("import ar3d.core", min(cores(), 8), True), ("import torch", 1, False)):
        proc = subprocess.run([sys.executable, "-c", code.format(first=first)], env=clean_env(),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert got["threads"] == threads and got["passive_wait"] is passive, (first, got)
        assert passive_in_libgomp(proc.stderr) is passive, (first, proc.stderr[-1500:])
    assert "torch was loaded before" in got["source"]


def test_child_env():
    from ar3d.core.threads import ThreadsError, child_env

    env = child_env({"PATH": "/bin"}, threads=3)
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE", "AR3D_THREADS": "3"}
    assert child_env({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"
    with pytest.raises(ThreadsError, match="positive integer"):
        child_env({}, threads="-2")


class Busy:
    """One busy-loop process per core: the machine an artist has while Blender works."""

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores())]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


@pytest.mark.timeout(900)
def test_serve_under_load_cancels_within_its_reply(small_pair, tmp_path):
    """`ar3d serve` as a user starts it (no thread settings), next to one busy process per core:
    libgomp runs passive in the server, /v1/health shows the policy, and a running job's cancel
    answers "cancelled" (the server waits at most 2 s for the job to stop; the target is < 1 s)."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with Busy(), open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ar3d.cli", "serve", "--model", str(small_pair), "--port",
                                 str(port)], env=clean_env(AR3D_SERVER_TOKEN="", TMPDIR=str(tmp_path)),
                                stdout=out, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                deadline = time.monotonic() + 300
                while True:
                    assert proc.poll() is None, log.read_text()[-3000:]
                    try:
                        health = http.get("/v1/health").json()
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, "the server did not come up"
                        time.sleep(0.5)
                assert health["threads"]["passive_wait"] is True and health["threads"]["threads"] >= 1, health
                latencies = []
                for _ in range(2):
                    job = http.post("/v1/jobs", json={"prompt": "a stool", "max_plan_tokens": 0}).json()
                    deadline = time.monotonic() + 300
                    while http.get(f"/v1/jobs/{job['id']}").json()["tokens_done"] < 4:
                        assert time.monotonic() < deadline, "the job made no progress"
                        time.sleep(0.1)
                    t0 = time.monotonic()
                    reply = http.post(f"/v1/jobs/{job['id']}/cancel").json()
                    latencies.append(time.monotonic() - t0)
                    assert reply["status"] == "cancelled" and reply["stopping"] is False, (reply, latencies)
                assert max(latencies) < 10, latencies  # generous: the reply itself waits at most 2 s
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    assert passive_in_libgomp(log.read_text()), log.read_text()[-3000:]
