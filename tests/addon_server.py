"""The stand-in `ar3d serve` for tests/test_addon.py: the server API without a model.

A small standard-library HTTP server (:class:`FakeServer`) that implements the ``ar3d serve`` API
(``/v1/jobs``, ``/v1/jobs/{id}``, results as real GLBs made with trimesh, cancel, health, bearer
token) with knobs for the failure cases, so the add-on is tested without a model. Run as a script
(``python tests/addon_server.py -m ar3d.cli serve --port P``) it serves that API: the add-on's
local-server test uses it as "the Python that has ar3d".
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GLB_MAGIC = b"glTF"


def sample_mesh(index: int):
    import trimesh

    if index % 3 == 0:
        return trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    if index % 3 == 1:
        return trimesh.creation.icosphere(subdivisions=1, radius=0.5)
    return trimesh.creation.box(extents=(0.4, 0.4, 1.0))


class _QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that timed out and hung up: fine
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeServer:
    """The ``ar3d serve`` API, with knobs for the failure cases (a stand-in, no model)."""

    def __init__(self, port: int = 0, *, token: str = "", polls_to_done: int = 3, hang: bool = False,
                 fail: str | None = None, bad_glb: bool = False, scores=None, slow_get: float = 0.0,
                 stopping: bool = False):  # fmt: skip
        self.token = token
        self.stopping = stopping
        self.polls_to_done = polls_to_done
        self.hang = hang
        self.fail = fail
        self.bad_glb = bad_glb
        self.scores = scores
        self.slow_get = slow_get
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None, str | None]] = []
        self.cancelled: list[str] = []
        self._glbs: dict[int, bytes] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _send(self, code, body, ctype="application/json", headers=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _err(self, code, err, msg, headers=None):
                self._send(code, {"error": {"code": err, "message": msg}}, headers=headers)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                return json.loads(raw) if raw else None

            def _auth_ok(self):
                if outer.token and self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._err(401, "unauthorized", "missing or wrong bearer token")
                    return False
                return True

            def do_GET(self):
                outer.requests.append(("GET", self.path, None, self.headers.get("Authorization")))
                if self.path == "/v1/health":
                    return self._send(200, {"status": "ok", "model": "stand-in", "device": "cpu",
                                            "queue": {"running": 0, "queued": 0}, "auth": bool(outer.token)})
                if not self._auth_ok():
                    return None
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[:2] == ["v1", "jobs"]:
                    if outer.slow_get:
                        time.sleep(outer.slow_get)
                    job = outer.jobs.get(parts[2])
                    if job is None:
                        return self._err(404, "not_found", f"no job {parts[2]}")
                    return self._send(200, outer.poll(job))
                if len(parts) == 5 and parts[3] == "results" and parts[4].endswith(".glb"):
                    if parts[2] not in outer.jobs:
                        return self._err(404, "not_found", "no such job")
                    if outer.bad_glb:
                        return self._send(200, b"<html>oops</html>", "text/html")
                    return self._send(200, outer.glb(int(parts[4][:-4])), "model/gltf-binary")
                return self._err(404, "not_found", self.path)

            def do_POST(self):
                body = self._body()
                outer.requests.append(("POST", self.path, body, self.headers.get("Authorization")))
                if not self._auth_ok():
                    return None
                parts = self.path.strip("/").split("/")
                if parts == ["v1", "jobs"]:
                    if not isinstance(body, dict) or not str(body.get("prompt", "")).strip():
                        return self._err(422, "invalid_request", "prompt must be a non-empty string")
                    samples = body.get("samples", 1)
                    if not isinstance(samples, int) or not 1 <= samples <= 8:
                        return self._err(422, "invalid_request", "samples must be 1..8")
                    jid = uuid.uuid4().hex[:12]
                    outer.jobs[jid] = {"id": jid, "req": body, "polls": 0, "status": "queued"}
                    return self._send(202, {"id": jid, "status": "queued", "position": 0})
                if len(parts) == 4 and parts[3] == "cancel":
                    job = outer.jobs.get(parts[2])
                    if job is None:
                        return self._err(404, "not_found", "no such job")
                    outer.cancelled.append(parts[2])
                    if outer.stopping:  # a server still stopping the job answers honestly (ar3d serve)
                        return self._send(200, {"id": parts[2], "status": job["status"], "stopping": True,
                                                "message": "the job is stopping"})  # fmt: skip
                    job["status"] = "cancelled"
                    return self._send(200, {"id": parts[2], "status": "cancelled", "stopping": False,
                                            "message": "cancelled"})  # fmt: skip
                return self._err(404, "not_found", self.path)

        self.httpd = _QuietHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def glb(self, index: int) -> bytes:
        with self._lock:
            if index not in self._glbs:
                self._glbs[index] = sample_mesh(index).export(file_type="glb")
            return self._glbs[index]

    def poll(self, job: dict) -> dict:
        req = job["req"]
        n = req.get("samples", 1)
        job["polls"] += 1
        stages = ["queued", "planning", "coarse", "decoding"]
        if job["status"] not in ("cancelled", "done", "failed"):
            if not self.hang and job["polls"] >= self.polls_to_done:
                job["status"] = "failed" if self.fail else "done"
            else:
                job["status"] = stages[min(job["polls"], len(stages) - 1)]
        plans = [[f"plan for '{req['prompt']}' sample {i}", f"details {i}"] for i in range(n)]
        results = []
        if job["status"] == "done":
            seed = req.get("seed")
            for i in range(n):
                score = self.scores[i] if self.scores else None
                results.append({"index": i, "url": f"/v1/jobs/{job['id']}/results/{i}.glb", "score": score,
                                "scores": {"clip": score} if score is not None else {},
                                "seed": seed if seed is not None else 1000})  # one batch, one seed (as ar3d serve)
            if self.scores:
                results.sort(key=lambda r: -r["score"])
        return {"id": job["id"], "status": job["status"], "stage": job["status"], "step": 1, "steps": 2, "samples": n,
                "tokens_done": min(job["polls"] * 300, 1024), "tokens_total": 1024, "plans": plans,
                "error": self.fail if job["status"] == "failed" else None, "position": 0, "results": results}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":  # `python tests/addon_server.py -m ar3d.cli serve --port P`: the stand-in server
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1]) if "--port" in args else 8765
    time.sleep(0.5)  # like a real server loading its model: the add-on must wait for /v1/health
    with FakeServer(port) as srv:
        print(f"stand-in ar3d server listening on {srv.url} (args: {' '.join(args)}; "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')})", flush=True)  # fmt: skip
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
