"""`ar3d serve`: the HTTP API around a tiny random model (CPU).

Real generation is slow here (~1030 tokens a mesh at 5-20 ms a token), so only a few jobs run
to the end; the queue, cancel and auth tests stop theirs after a few tokens.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ar3d.server.app import create_app  # noqa: E402
from ar3d.server.config import ServerConfig, ServerConfigError  # noqa: E402

STATUSES = {"queued", "planning", "coarse", "refined", "decoding", "done", "failed", "cancelled"}
FAST = {"max_plan_tokens": 2}  # the random policy's plan text is noise; keep it short


@pytest.fixture(scope="module")
def pipe(small_pair):
    from ar3d.core.pipeline import TextTo3D

    return TextTo3D.load(str(small_pair), device="cpu")


def client_for(pipeline, **config) -> TestClient:
    return TestClient(create_app(pipeline, ServerConfig(**config)))


def poll(client, job_id, until, timeout=120.0, interval=0.05, headers=None) -> list[dict]:
    """GET the job until `until(status_json)`; returns every snapshot seen."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if until(seen[-1]):
            return seen
        assert time.monotonic() < deadline, f"timed out; last status {seen[-1]}"
        time.sleep(interval)


def assert_error(r, status: int, code: str, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    for w in words:
        assert w in body["error"]["message"], body
    return body["error"]


def finished(s) -> bool:
    return s["status"] in ("done", "failed", "cancelled")


def load_glb(data: bytes):
    import trimesh

    mesh = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
    assert len(mesh.faces) > 0
    return mesh


# --- real generation -------------------------------------------------------------------------
def test_generate_two_step_ranked_best_first(pipe):
    with client_for(pipe, rank_rewards="geometry", rank_views=False) as c:  # no Blender in the test
        r = c.post("/v1/jobs", json={"prompt": "  a small chair  ", "two_step": True, "samples": 2, "seed": 3, **FAST})
        assert r.status_code == 202, r.text
        created = r.json()
        assert created["status"] == "queued" and created["position"] == 1
        seen = poll(c, created["id"], finished)
        final = seen[-1]
        assert final["status"] == "done", final
        statuses = [s["status"] for s in seen]
        assert set(statuses) <= STATUSES
        assert "coarse" in statuses and "refined" in statuses
        assert statuses.index("coarse") < statuses.index("refined")
        for stage in ("coarse", "refined"):  # progress rises while generating
            tokens = [s["tokens_done"] for s in seen if s["status"] == stage]
            assert len(set(tokens)) > 2 and tokens == sorted(tokens), (stage, tokens)
        during = [s["plans"] for s in seen if s["status"] == "refined"]
        assert during and all(len(p) == 2 and len(p[0]) == 1 for p in during)  # step-1 plans shown early
        assert final["prompt"] == "a small chair" and final["seed"] == 3 and final["steps"] == 2
        assert final["tokens_total"] == 1024 and final["error"] is None and final["position"] is None
        assert final["created"] <= final["started"] <= final["finished"]
        assert len(final["plans"]) == 2 and all(len(p) == 2 for p in final["plans"])
        results = final["results"]
        assert sorted(r["index"] for r in results) == [0, 1]
        scores = [r["score"] for r in results]
        assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
        for res in results:
            assert res["seed"] == 3 and res["url"] == f"/v1/jobs/{final['id']}/results/{res['index']}.glb"
            assert "geometry.fill" in res["scores"] and "geometry.silhouette" not in res["scores"]  # views dropped
            assert res["score"] == pytest.approx(sum(v for v in res["scores"].values()))
            glb = c.get(res["url"])
            assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
            load_glb(glb.content)
        assert_error(c.get(f"/v1/jobs/{final['id']}/results/2.glb"), 404, "not_found", "samples 0..1")
    with client_for(pipe) as other:  # results live in the server that made them
        assert_error(other.get(results[0]["url"]), 404, "not_found", final["id"])


def test_cancel_running_and_queued_and_queue_limit(pipe):
    with client_for(pipe, max_queue=1) as c:
        a = c.post("/v1/jobs", json={"prompt": "a lamp", **FAST}).json()
        running = poll(c, a["id"], lambda s: s["tokens_done"] > 0)[-1]
        assert running["status"] == "coarse" and running["step"] == 1  # one-step's mesh stage reads "coarse"
        b = c.post("/v1/jobs", json={"prompt": "a cup", **FAST})
        assert b.status_code == 202 and b.json()["position"] == 1
        b = b.json()
        assert c.get(f"/v1/jobs/{b['id']}").json()["position"] == 1
        full = c.post("/v1/jobs", json={"prompt": "a vase", **FAST})
        assert_error(full, 429, "busy", "retry")
        assert int(full.headers["Retry-After"]) >= 1
        assert c.get("/v1/health").json()["queue"] == {"queued": 1, "running": 1, "limit": 1}
        assert_error(c.get(f"/v1/jobs/{a['id']}/results/0.glb"), 409, "not_ready", "poll")

        r = c.delete(f"/v1/jobs/{b['id']}")  # queued: removed at once
        assert r.status_code == 200 and r.json() == {"id": b["id"], "status": "cancelled", "stopping": False,
                                                     "message": "cancelled"}  # fmt: skip
        gone = c.get(f"/v1/jobs/{b['id']}").json()
        assert gone["status"] == "cancelled" and gone["position"] is None and gone["started"] is None

        t0 = time.monotonic()
        r = c.post(f"/v1/jobs/{a['id']}/cancel")
        assert r.status_code == 200
        seen = poll(c, a["id"], finished, timeout=5, interval=0.01)
        elapsed = time.monotonic() - t0
        assert seen[-1]["status"] == "cancelled" and elapsed < 1.0, (seen[-1], elapsed)
        assert seen[-1]["tokens_done"] < 1024
        assert_error(c.get(f"/v1/jobs/{a['id']}/results/0.glb"), 409, "not_ready", "cancelled")
        assert c.post(f"/v1/jobs/{a['id']}/cancel").json()["status"] == "cancelled"  # idempotent
        assert c.get("/v1/health").json()["queue"] == {"queued": 0, "running": 0, "limit": 1}


# --- no generation ---------------------------------------------------------------------------
def test_health_and_openapi(pipe, small_pair):
    with client_for(pipe) as c:
        h = c.get("/v1/health").json()
        assert h["status"] == "ok" and h["auth"] is False and h["engine"] == "graph"
        assert h["device"] == "cpu" and h["vqvae"].endswith("vqvae.safetensors") and str(small_pair) in h["model"]
        assert h["queue"] == {"queued": 0, "running": 0, "limit": 8}
        spec = c.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/results/{index}.glb", "/v1/jobs/{job_id}/cancel",
            "/v1/health"} <= set(spec["paths"])  # fmt: skip
    req = spec["components"]["schemas"]["JobRequest"]["properties"]
    assert req["samples"]["maximum"] == 8 and req["prompt"]["maxLength"] == 2000
    err = spec["paths"]["/v1/jobs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert err["$ref"].endswith("/ErrorResponse")


@pytest.mark.parametrize(
    "body, words",
    [
        ({"prompt": "   "}, ["prompt"]),
        ({"prompt": "x" * 2001}, ["prompt", "2000"]),
        ({}, ["prompt", "Field required"]),
        ({"prompt": "a chair", "samples": 0}, ["samples", "greater than or equal to 1"]),
        ({"prompt": "a chair", "samples": 99}, ["samples", "less than or equal to 8"]),
        ({"prompt": "a chair", "top_p": 0}, ["top_p"]),
        ({"prompt": "a chair", "max_plan_tokens": 5000}, ["max_plan_tokens"]),
        ({"prompt": "a chair", "two-step": True}, ["two-step", "Extra inputs"]),
        # strict types: a client's bug is an error, not a guess
        ({"prompt": "a chair", "samples": True}, ["samples", "integer"]),
        ({"prompt": "a chair", "samples": "2"}, ["samples", "integer"]),
        ({"prompt": "a chair", "max_plan_tokens": False}, ["max_plan_tokens", "integer"]),
        ({"prompt": "a chair", "two_step": 1}, ["two_step", "boolean"]),
        ({"prompt": "a chair", "temperature": "0.5"}, ["temperature", "number"]),
        ({"prompt": "a chair", "seed": 1.5}, ["seed"]),
    ],
)
def test_bad_job_requests(pipe, body, words):
    with client_for(pipe) as c:
        assert_error(c.post("/v1/jobs", json=body), 422, "invalid_request", *words)
        assert c.get("/v1/health").json()["queue"]["queued"] == 0


def test_bad_requests_other(pipe):
    with client_for(pipe) as c:
        assert_error(c.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}),
                     422, "invalid_request", "JSON")  # fmt: skip
        assert_error(c.get("/v1/jobs/nope"), 404, "not_found", "nope")
        assert_error(c.post("/v1/jobs/nope/cancel"), 404, "not_found")
        assert_error(c.get("/v1/jobs/nope/results/0.glb"), 404, "not_found")
        assert_error(c.get("/v1/jobs/nope/results/x.glb"), 422, "invalid_request", "index")
        assert_error(c.get("/v1/nothing"), 404, "not_found", "/docs")
        assert_error(c.put("/v1/jobs"), 405, "method_not_allowed")


def test_auth(pipe, monkeypatch, capsys):
    from ar3d import cli

    monkeypatch.delenv("AR3D_SERVER_TOKEN", raising=False)
    with pytest.raises(ServerConfigError, match="token"):
        create_app(pipe, ServerConfig(host="0.0.0.0"))
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2  # refused before loading a model
    assert "--token" in capsys.readouterr().err

    with client_for(pipe, host="0.0.0.0", token="s3cret") as c:
        h = c.get("/v1/health")
        assert h.status_code == 200 and h.json()["auth"] is True
        r = assert_error(c.get("/v1/jobs/x"), 401, "unauthorized", "Authorization: Bearer")
        assert_error(c.get("/openapi.json"), 401, "unauthorized")
        assert_error(c.get("/v1/jobs/x", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized", "wrong")
        assert_error(c.post("/v1/jobs", json={"prompt": "a chair"}), 401, "unauthorized")
        assert c.get("/v1/jobs/x").headers["WWW-Authenticate"] == "Bearer"
        ok = {"Authorization": "Bearer s3cret"}
        assert c.get("/openapi.json", headers=ok).status_code == 200
        assert_error(c.get("/v1/jobs/x", headers=ok), 404, "not_found")  # past auth
        r = c.post("/v1/jobs", json={"prompt": "a chair", **FAST}, headers=ok)
        assert r.status_code == 202
        assert c.delete(f"/v1/jobs/{r.json()['id']}", headers=ok).status_code == 200
    monkeypatch.setenv("AR3D_SERVER_TOKEN", "from-env")
    args = cli.build_parser().parse_args(["serve", "--host", "0.0.0.0"])
    assert ServerConfig.from_args(args).token == "from-env" and args.port == 8765


def test_serve_command_end_to_end(small_pair, tmp_path):
    """The real `ar3d serve` process over HTTP: load, generate (one-step, unranked), download the
    GLB, and exit cleanly on Ctrl-C, removing the GLB folder."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, AR3D_SERVER_TOKEN="", TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "ar3d.cli", "serve", "--model", str(small_pair), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, proc.stdout.read()
                try:
                    h = http.get("/v1/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not come up"
                    time.sleep(0.3)
            assert h.json()["status"] == "ok" and h.json()["auth"] is False
            assert list(tmp_path.glob("ar3d-serve-*")), "no work folder for the GLBs"
            job = http.post("/v1/jobs", json={"prompt": "a stool", "seed": 1, **FAST}).json()
            final = poll(http, job["id"], finished, interval=0.2)[-1]
            assert final["status"] == "done", final
            (res,) = final["results"]
            assert res["score"] is None and res["scores"] == {} and res["index"] == 0 and res["seed"] == 1
            assert len(final["plans"]) == 1 and len(final["plans"][0]) == 1
            glb = http.get(res["url"])
            assert glb.headers["content-type"] == "model/gltf-binary"
            load_glb(glb.content)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert not list(tmp_path.glob("ar3d-serve-*")), "the GLB folder outlived the server"


# --- schema fuzzing ----------------------------------------------------------------------------
class BoxPipeline:
    """A stand-in for `TextTo3D` with the same `generate` signature, returning real MeshResults of
    a small box. Used only by the fuzz test: the fuzzer submits hundreds of jobs, and the tiny
    model takes seconds per job, so with it the run would take hours and mostly test the queue."""

    def __init__(self):
        from ar3d.core.mesh import occupancy_to_mesh

        self.occupancy = np.zeros((64, 64, 64), dtype=bool)
        self.occupancy[20:44, 24:40, 10:30] = True
        self.box = occupancy_to_mesh(self.occupancy)

    def generate(self, prompts, samples=1, two_step=False, sampling=None, seed=None, progress=None, should_stop=None,
                 mesh_config=None):
        from ar3d.core.engine import GenerationCancelled, SamplingConfig
        from ar3d.core.pipeline import MeshResult, PipelineOutput
        from ar3d.core.policy import GenerationResult, Progress, Sample, StepOutput
        from ar3d.core.prompts import check_prompt

        prompts = [check_prompt(p) for p in ([prompts] if isinstance(prompts, str) else prompts)]
        steps = 2 if two_step else 1
        for step in range(1, steps + 1):
            if progress:
                progress(Progress(step, steps, "mesh" if steps == 1 else ("coarse", "refined")[step - 1], 1024))
            if should_stop and should_stop():
                raise GenerationCancelled("generation cancelled")
        codes = np.zeros(1024, dtype=np.int64)
        results = []
        for p in prompts:
            for i in range(samples):
                outs = [StepOutput(k, f"plan {k}", codes, [], [], [], [], 0.0) for k in range(1, steps + 1)]
                results.append(MeshResult(Sample(p, i, outs), self.occupancy, self.box))
        gen = GenerationResult([r.sample for r in results], 0 if seed is None else seed, two_step,
                               sampling or SamplingConfig(), "box", "box", 0.0)  # fmt: skip
        return PipelineOutput(results, gen)


def test_fuzz_openapi_no_server_errors():
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance
    from schemathesis.generation import GenerationMode

    app = create_app(BoxPipeline(), ServerConfig(max_queue=4))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    strategy = st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        # No 5xx, and every answer (errors included) matches the schema the add-on is written against.
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    try:
        run()
    finally:
        app.state.jobs.close()


# --- failures and bookkeeping ------------------------------------------------------------------
def test_failed_job_reports_why(pipe):
    with client_for(pipe) as c:
        job = c.post("/v1/jobs", json={"prompt": "ж😀" * 1000, **FAST}).json()  # 2000 chars, > 1024 tokens
        final = poll(c, job["id"], finished)[-1]
        assert final["status"] == "failed" and "Shorten it" in final["error"], final
        assert final["results"] == [] and final["finished"] is not None
        assert_error(c.get(f"/v1/jobs/{job['id']}/results/0.glb"), 409, "not_ready", "failed", "Shorten it")


def test_finished_jobs_are_evicted_oldest_first(pipe):
    with client_for(pipe, keep_jobs=1) as c:
        a = c.post("/v1/jobs", json={"prompt": "a bed", **FAST}).json()
        poll(c, a["id"], lambda s: s["status"] != "queued")  # running: the next two wait
        b, d = (c.post("/v1/jobs", json={"prompt": p, **FAST}).json() for p in ("a box", "a mug"))
        assert [b["position"], d["position"]] == [1, 2]
        c.post(f"/v1/jobs/{b['id']}/cancel")
        assert c.get(f"/v1/jobs/{d['id']}").json()["position"] == 1  # moved up
        c.post(f"/v1/jobs/{d['id']}/cancel")
        assert_error(c.get(f"/v1/jobs/{b['id']}"), 404, "not_found", "evicted")
        assert c.get(f"/v1/jobs/{d['id']}").json()["status"] == "cancelled"
        assert c.delete(f"/v1/jobs/{a['id']}").json()["status"] == "cancelled"


def test_internal_errors_are_generic_and_logged(pipe, caplog):
    app = create_app(pipe, ServerConfig())

    @app.get("/v1/boom")
    def boom():
        raise RuntimeError("secret detail")

    with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level("ERROR", logger="ar3d.server"):
        err = assert_error(c.get("/v1/boom"), 500, "internal", "server log")
    assert "secret detail" not in err["message"]
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)


# --- limits: body size, content type, methods, Retry-After, honest cancel ----------------------
def _asgi_post(app, path: str, chunks, headers):
    """One POST straight through the ASGI app; returns (status, headers, body, chunks the app read)."""
    import asyncio

    pulled = [0]
    sent: list[dict] = []
    chunks = list(chunks)

    async def receive():
        if pulled[0] < len(chunks):
            pulled[0] += 1
            return {"type": "http.request", "body": chunks[pulled[0] - 1], "more_body": pulled[0] < len(chunks)}
        await asyncio.sleep(3600)  # a client that sends nothing more

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765)}  # fmt: skip
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, pulled[0]


def test_request_body_limit_without_reading_the_body():
    """A 200 MB POST is refused with 413 before it is read: by its Content-Length at once, and a
    chunked one (no length) after the limit's worth of chunks, not all of them."""
    import json as _json

    app = create_app(BoxPipeline(), ServerConfig())
    try:
        mb = b"x" * 2**20
        status, _, body, pulled = _asgi_post(app, "/v1/jobs", [mb] * 200,
                                             {"content-type": "application/json", "content-length": str(200 * 2**20)})  # fmt: skip
        assert status == 413 and pulled == 0, (status, pulled)
        assert _json.loads(body)["error"]["code"] == "too_large"
        status, _, body, pulled = _asgi_post(app, "/v1/jobs", [mb] * 200, {"content-type": "application/json"})
        assert status == 413 and pulled <= 2, (status, pulled)
        ok = _json.dumps({"prompt": "a chair", "max_plan_tokens": 2}).encode()
        status, _, body, _ = _asgi_post(app, "/v1/jobs", [ok[:10], ok[10:]], {"content-type": "application/json"})
        assert status == 202, body  # a small chunked body still works
    finally:
        app.state.jobs.close()


def test_content_type_options_and_allow():
    app = create_app(BoxPipeline(), ServerConfig())
    with TestClient(app) as c:
        body = b'{"prompt": "a chair"}'
        for ctype in ("text/plain", "application/x-www-form-urlencoded"):
            assert_error(c.post("/v1/jobs", content=body, headers={"content-type": ctype}), 415,
                         "unsupported_media_type", "application/json", ctype)  # fmt: skip
        assert c.get("/v1/health").json()["queue"]["queued"] == 0
        r = c.post("/v1/jobs", content=body, headers={"content-type": "application/json; charset=utf-8"})
        assert r.status_code == 202
        job = r.json()["id"]
        r = c.options(f"/v1/jobs/{job}")
        assert r.status_code == 204
        allow = {m.strip() for m in r.headers["allow"].split(",")}
        assert {"GET", "DELETE", "OPTIONS"} <= allow and "POST" not in allow
        r = c.put(f"/v1/jobs/{job}")
        assert_error(r, 405, "method_not_allowed", "DELETE")
        assert "DELETE" in r.headers["allow"]
        assert {m.strip() for m in c.options("/v1/jobs").headers["allow"].split(",")} >= {"POST", "OPTIONS"}


class SlowPipeline(BoxPipeline):
    """BoxPipeline that takes `seconds` a job, or ignores cancel for `deaf` seconds first: the
    durations and stages a real model has, without its cost (a test double: timing control)."""

    def __init__(self, seconds: float = 0.0, deaf: float = 0.0):
        super().__init__()
        self.seconds, self.deaf = seconds, deaf

    def generate(self, prompts, samples=1, two_step=False, sampling=None, seed=None, progress=None, should_stop=None,
                 mesh_config=None):
        from ar3d.core.engine import GenerationCancelled
        from ar3d.core.policy import Progress

        t0 = time.monotonic()
        if progress:
            progress(Progress(1, 1, "mesh", 10))
        time.sleep(self.deaf)  # a stage that does not look at the cancel flag
        while time.monotonic() - t0 < self.seconds:
            if should_stop and should_stop():
                raise GenerationCancelled("generation cancelled")
            time.sleep(0.01)
        return super().generate(prompts, samples, two_step, sampling, seed, None, None)


def test_retry_after_counts_finished_jobs_not_cancelled_ones():
    app = create_app(SlowPipeline(seconds=4.0), ServerConfig(max_queue=1))
    with TestClient(app) as c:
        first = c.post("/v1/jobs", json={"prompt": "a chair"}).json()
        assert poll(c, first["id"], finished, timeout=60)[-1]["status"] == "done"  # took >= 4 s
        for _ in range(3):  # jobs cancelled at once: they say nothing about how long a job takes
            j = c.post("/v1/jobs", json={"prompt": "a stool"}).json()
            poll(c, j["id"], lambda s: s["status"] != "queued")
            assert c.post(f"/v1/jobs/{j['id']}/cancel").json()["status"] == "cancelled"
        running = c.post("/v1/jobs", json={"prompt": "a lamp"}).json()
        poll(c, running["id"], lambda s: s["status"] != "queued")
        c.post("/v1/jobs", json={"prompt": "a vase"})  # fills the queue
        full = c.post("/v1/jobs", json={"prompt": "a box"})
        assert_error(full, 429, "busy")
        # ~4 s minus what the running job has done; the cancelled ones would pull the mean to ~1 s
        assert int(full.headers["Retry-After"]) >= 2, full.headers["Retry-After"]
        c.delete(f"/v1/jobs/{running['id']}")


def test_cancel_reply_says_stopping_until_the_job_has_stopped():
    app = create_app(SlowPipeline(seconds=1.0, deaf=4.0), ServerConfig())
    with TestClient(app) as c:
        job = c.post("/v1/jobs", json={"prompt": "a chair"}).json()
        poll(c, job["id"], lambda s: s["status"] == "coarse")
        r = c.post(f"/v1/jobs/{job['id']}/cancel").json()  # the server waits 2 s; the job needs ~4
        assert r["status"] == "coarse" and r["stopping"] is True and "stopping" in r["message"], r
        final = poll(c, job["id"], finished, timeout=30)[-1]
        assert final["status"] == "cancelled" and final["results"] == []
        again = c.post(f"/v1/jobs/{job['id']}/cancel").json()
        assert again == {"id": job["id"], "status": "cancelled", "stopping": False, "message": "cancelled"}


def test_cancel_lands_inside_the_vqvae_decode(pipe):
    """A decode takes seconds on a busy CPU: a cancel stops it between the decoder's layers, and
    the decoder is left as it was (no hook stays behind)."""
    from ar3d.core.engine import GenerationCancelled

    codes = np.zeros((2, 1024), dtype=np.int64)
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(GenerationCancelled):
        pipe.decode(codes, should_stop=stop_after_three)
    assert len(calls) == 4  # stopped at the 4th layer, not after the whole decode
    assert pipe.decode(codes).shape == (2, 64, 64, 64) and len(calls) == 4


def test_smoothing_field_reaches_the_mesh_settings():
    """Issue #21: a job's `smoothing` picks the mesh's Taubin passes; an unknown level is a 422.
    The pipeline is the BoxPipeline stand-in, recording the mesh settings it is handed."""
    from ar3d.core.mesh import SMOOTHING_LEVELS

    class Recording(BoxPipeline):
        def __init__(self):
            super().__init__()
            self.seen = []

        def generate(self, *a, mesh_config=None, **k):
            self.seen.append(mesh_config)
            return super().generate(*a, **k)

    rec = Recording()
    with client_for(rec) as c:
        for body, passes in (({}, 10), ({"smoothing": "none"}, 0), ({"smoothing": "high"}, SMOOTHING_LEVELS["high"])):
            r = c.post("/v1/jobs", json={"prompt": "a chair", **body})
            assert r.status_code == 202, r.text
            assert poll(c, r.json()["id"], finished)[-1]["status"] == "done"
            assert rec.seen[-1].smoothing_iterations == passes
        assert_error(c.post("/v1/jobs", json={"prompt": "a chair", "smoothing": "extreme"}), 422, "invalid_request",
                     "smoothing")  # fmt: skip
    # the add-on offers exactly the server's levels (its client module is pure stdlib)
    import importlib.util
    import typing
    from pathlib import Path

    from ar3d.server.app import JobRequest

    spec = importlib.util.spec_from_file_location("addon_client", Path(__file__).parents[1] / "addon" / "client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    levels = typing.get_args(JobRequest.model_fields["smoothing"].annotation)
    assert tuple(i[0] for i in client.SMOOTHING_ITEMS) == levels == tuple(SMOOTHING_LEVELS)
