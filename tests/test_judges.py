"""VLM judges: answer parsers, the HTTP client's retries, each judge reward end to end, `ar3d judges`.

The real judges run under `vllm serve` on a GPU, which these CPU-only machines cannot run, so the
tests talk to a scripted OpenAI-compatible server (stdlib ThreadingHTTPServer on 127.0.0.1, an
ephemeral port, in a thread). Each test scripts its answers: well-formed and malformed text,
slow answers (client timeout), 500s, 429 + Retry-After, dropped connections, 400s. Nothing here
reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shlex
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from ar3d.cli import main
from ar3d.core.errors import Ar3dError
from ar3d.core.rewards import judge_client as jc
from ar3d.core.rewards import judge_prompts as P
from ar3d.core.rewards import vllm_serve
from ar3d.core.rewards.base import Reward, RewardBatch
from ar3d.core.rewards.judge_client import ChatRequest, JudgeClient, JudgeConfig, JudgeUnavailableError, bounded_size
from ar3d.core.rewards.judges import (
    CategoryConsistency,
    ColourMaterialTexture,
    PartCompleteness,
    PartVerdict,
    UnifiedAlignment,
    UnifiedReward2,
    extract_components,
)

IMG_BOUND = 24 * 24  # pixels; the test renders are 32×32, so every image is downscaled


# --- the scripted server ------------------------------------------------------------------------------
def answer(text, delay=0.0, finish="stop"):
    return ("answer", text, delay, finish)


def status(code, body="error", headers=None):
    return ("status", code, body, headers or {})


DROP = ("drop",)


class ScriptedJudge:
    """An OpenAI-compatible server whose POST answers come from ``script(body) -> action``."""

    def __init__(self, models=("UnifiedReward-2.0-qwen-7b", "UnifiedReward-Think-qwen-7b", "Qwen2.5-VL-7B-Instruct")):
        self.models = list(models)
        self.script = lambda body: answer("Final Score: 3")
        self.requests, self.headers = [], []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait 40 ms on a delayed ACK

            def log_message(self, *args):
                pass

            def _send(self, code, body: bytes, headers=()):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    data = {"object": "list", "data": [{"id": m, "object": "model"} for m in judge.models]}
                    self._send(200, json.dumps(data).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with judge.lock:
                    judge.requests.append(body)
                    judge.headers.append(dict(self.headers))
                    judge.in_flight += 1
                    judge.max_in_flight = max(judge.max_in_flight, judge.in_flight)
                try:
                    action = judge.script(body)
                    if action[0] == "drop":  # close the socket without answering
                        self.close_connection = True
                        return
                    if action[0] == "status":
                        _, code, text, headers = action
                        self._send(code, json.dumps({"error": {"message": text}}).encode(), headers.items())
                        return
                    _, text, delay, finish = action
                    time.sleep(delay)
                    completion = {"id": "x", "object": "chat.completion", "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": finish,
                                               "message": {"role": "assistant", "content": text}}]}  # fmt: skip
                    self._send(200, json.dumps(completion).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before the answer
                finally:
                    with judge.lock:
                        judge.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def sequence(self, *actions):
        """Answer the n-th POST with actions[n] (the last one repeats)."""
        count = iter(range(10**9))
        self.script = lambda body: actions[min(next(count), len(actions) - 1)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server():
    s = ScriptedJudge()
    yield s
    s.close()


@pytest.fixture
def judge(server):
    deadline = time.monotonic() + 3
    while server.in_flight and time.monotonic() < deadline:  # slow answers a previous test gave up on
        time.sleep(0.02)
    server.requests.clear()
    server.headers.clear()
    server.max_in_flight = 0
    server.models = ["UnifiedReward-2.0-qwen-7b", "UnifiedReward-Think-qwen-7b", "Qwen2.5-VL-7B-Instruct"]
    return server


def make_client(url, **kw) -> JudgeClient:
    cfg = dict(base_url=url, timeout_s=0.4, connect_timeout_s=0.5, max_retries=2, backoff_base_s=0.01,
               backoff_max_s=0.05, max_concurrency=8, max_image_pixels=IMG_BOUND, api_key="secret-key")  # fmt: skip
    cfg.update(kw)
    return JudgeClient(JudgeConfig(**cfg))


@pytest.fixture
def client(judge):
    with make_client(judge.url) as c:
        yield c


def text_of(body) -> str:
    return body["messages"][0]["content"][-1]["text"]


def decode_images(body) -> list[Image.Image]:
    parts = body["messages"][0]["content"]
    out = []
    for p in parts[:-1]:
        assert p["type"] == "image_url"
        url = p["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        out.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    return out


def views(seed, n=6, size=32, alpha=False):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 255, (n, size, size, 4 if alpha else 3), dtype=np.uint8)
    return v


def caption(body) -> str:
    return re.search(r'[Cc]aption:\s*["\[]([^"\]]*)', text_of(body)).group(1)


def find_view(text):
    m = re.search(r"\((\w+) view\)", text)
    return m.group(1) if m else None


# --- parsers --------------------------------------------------------------------------------------
PARSE_CASES = [
    # (parser, answer text, expected value, or an exception)
    (P.parse_unified2, "Alignment Score (1-5): 4\nCoherence Score (1-5): 3\nStyle Score (1-5): 5",
     {"alignment": 4, "coherence": 3, "style": 5}),
    (P.parse_unified2, "Word-wise Scores: [[\"chair\", 1], [\"[No_mistakes]\", 4]]\n\nAlignment Score (1-5): 3.62\n"
                       "Coherence Score (1-5): 4.0\nStyle Score (1-5): 2.5", {"alignment": 3.62, "coherence": 4, "style": 2.5}),
    (P.parse_unified2, "**Alignment Score (1-5):** 4.5\n**Coherence Score (1-5):** 3\n**Style Score (1-5):** 4",
     {"alignment": 4.5, "coherence": 3, "style": 4}),
    (P.parse_unified2, "alignment score (1–5) : 4.5/5\nCOHERENCE SCORE (1-5):3/5\nstyle score: 2 out of 5",
     {"alignment": 4.5, "coherence": 3, "style": 2}),
    (P.parse_unified2, "Alignment Score (1-5): 4\nCoherence Score (1-5): 3", P.ParseError),  # no style
    (P.parse_unified2, "Alignment Score (1-5): 7\nCoherence Score (1-5): 3\nStyle Score (1-5): 3", P.ParseError),
    (P.parse_unified2, "Alignment Score (1-5): X\nCoherence Score (1-5): Y\nStyle Score (1-5): Z", P.ParseError),
    (P.parse_unified2, "<think>Alignment Score (1-5): 1</think>\nAlignment Score (1-5): 5\nCoherence Score (1-5): 5\n"
                       "Style Score (1-5): 5", {"alignment": 5, "coherence": 5, "style": 5}),
    (P.parse_final_score, "The chair matches.\nFinal Score: 4", 4.0),
    (P.parse_final_score, "<think>Maybe Final Score: 2? No, the legs are there.</think>\n<answer>Final Score: 4.5</answer>", 4.5),
    (P.parse_final_score, "chair (object): 1\nlegs (attribute): 1\n**Final Score:** 3/5", 3.0),
    (P.parse_final_score, "Final Score: 2\n... on reflection ...\nFinal Score: 3", 3.0),
    (P.parse_final_score, "<think>the object looks like a chair, Final Score: 4", P.ParseError),  # cut inside think
    (P.parse_final_score, "I am not sure what this is.", P.ParseError),
    (P.parse_final_score, "Final Score: 0", P.ParseError),
    (P.parse_binary, "The object has four legs and a backrest, so it is a chair.\nAnswer: yes", 1.0),
    (P.parse_binary, "Answer: No", 0.0),
    (P.parse_binary, "no.", 0.0),
    (P.parse_binary, "Yes, this is clearly a chair.", 1.0),
    (P.parse_binary, "<think>Answer: no</think>1", 1.0),
    (P.parse_binary, "Answer: yes\nWait, it is a table.\nFinal answer: no", 0.0),
    (P.parse_binary, "It is hard to say.", P.ParseError),
    # never a wrong value silently: decimal commas read right, ranges and non-answers missing
    (P.parse_binary, "No doubt about it, this is a chair.", P.ParseError),
    (P.parse_binary, "The legs are there.\nYes.", 1.0),
    (P.parse_binary, "No - it is a table", 0.0),
    (P.parse_final_score, "The chair matches.\nFinal Score: 4,5", 4.5),
    (P.parse_final_score, "Final Score: 3-4", P.ParseError),
    (P.parse_final_score, "Final Score: 3 to 4 out of 5", P.ParseError),
    (P.parse_final_score, "Final Score: 4,5,6", P.ParseError),
    (P.parse_final_score, "Final Score: 4, the legs are right", 4.0),
    (P.parse_unified2, "Alignment Score (1-5): 4,5\nCoherence Score (1-5): 3\nStyle Score (1-5): 2,25",
     {"alignment": 4.5, "coherence": 3, "style": 2.25}),
    (P.parse_unified2, "Alignment Score (1-5): 4\nCoherence Score (1-5): 3-4\nStyle Score (1-5): 2", P.ParseError),
    (P.parse_cmt, "Colour: 0,5\nMaterial: 0,25\nTexture: 1", {"color": 0.5, "material": 0.25, "texture": 1.0}),
    (P.parse_part, "Exists: yes\nCompleteness: 0,8", {"exists": 1.0, "completeness": 0.8}),
    (P.parse_cmt, '{"color": 0.8, "material": 0.6, "texture": 0.7}', {"color": 0.8, "material": 0.6, "texture": 0.7}),
    (P.parse_cmt, "```json\n{\"colour_smoothness\": 1, \"material_realism\": 0.5, \"texture\": \"0.25\"}\n```",
     {"color": 1.0, "material": 0.5, "texture": 0.25}),
    (P.parse_cmt, "Colour smoothness: 0.9\nMaterial realism: 0.4\n**Texture:** 0.3", {"color": 0.9, "material": 0.4, "texture": 0.3}),
    (P.parse_cmt, '{"color": 8, "material": 6, "texture": 7}', P.ParseError),  # 0-10 scale, not asked for
    (P.parse_cmt, "The colours look fine.", P.ParseError),
    (P.parse_part, '{"exists": 1, "completeness": 0.8}', {"exists": 1.0, "completeness": 0.8}),
    (P.parse_part, '{"exists": false, "completeness": 0.9}', {"exists": 0.0, "completeness": 0.0}),
    (P.parse_part, "Exists: yes\nCompleteness: 0.6", {"exists": 1.0, "completeness": 0.6}),
    (P.parse_part, '{"exists": "yes"}', P.ParseError),  # existing part without completeness
    (P.parse_part, "The seat is there.", P.ParseError),
]


@pytest.mark.parametrize("parser,text,expected", PARSE_CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(PARSE_CASES)])
def test_parsers(parser, text, expected):
    if expected is P.ParseError:
        with pytest.raises(P.ParseError):
            parser(text)
    else:
        assert parser(text) == pytest.approx(expected)


def test_extract_components():
    assert extract_components("The chair has a seat, a backrest, and four legs.") == ["seat", "backrest", "legs"]
    assert extract_components("It consists of a cylindrical body, a handle on the side, and a spout.") == [
        "cylindrical body", "handle", "spout"]  # fmt: skip
    assert extract_components("A sofa with a smooth shape.\n- Seat: a flat cushion\n- 4 legs\n1. armrests") == [
        "seat", "legs", "armrests"]  # fmt: skip
    assert extract_components("Components: blade, handle and guard") == ["blade", "handle", "guard"]
    assert extract_components("A red chair.") == []


# --- the client -----------------------------------------------------------------------------------
def test_chat_sends_images_before_text_bounded_and_authorised(judge, client):
    judge.sequence(answer("Final Score: 4"))
    img = np.zeros((48, 64, 3), np.uint8)
    r = client.chat("UnifiedReward-Think-qwen-7b", [img, img], "rate this", max_tokens=77)
    assert r.ok and r.text == "Final Score: 4" and r.attempts == 1 and r.finish_reason == "stop"
    body = judge.requests[0]
    assert body["model"] == "UnifiedReward-Think-qwen-7b" and body["max_tokens"] == 77 and body["temperature"] == 0
    assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "image_url", "text"]
    sizes = [im.size for im in decode_images(body)]
    w, h = sizes[0]
    assert w * h <= IMG_BOUND and abs(w / h - 64 / 48) < 0.1 and sizes[0] == sizes[1]
    assert judge.headers[0]["Authorization"] == "Bearer secret-key"
    assert bounded_size(100, 50, None) == (100, 50) and bounded_size(1000, 10, 100)[0] * bounded_size(1000, 10, 100)[1] <= 100


def test_api_key_defaults_to_env(monkeypatch):
    monkeypatch.setenv("AR3D_JUDGE_API_KEY", "from-env")
    assert JudgeConfig().api_key == "from-env"
    monkeypatch.delenv("AR3D_JUDGE_API_KEY")
    assert JudgeConfig().api_key == "EMPTY"


def test_500s_then_success_are_retried(judge, client):
    judge.sequence(status(500), status(503), answer("ok"))
    r = client.chat("m", [], "hi")
    assert r.text == "ok" and r.attempts == 3 and len(judge.requests) == 3


def test_429_honours_retry_after(judge, client):
    judge.sequence(status(429, "slow down", {"Retry-After": "1"}), answer("ok"))
    t0 = time.perf_counter()
    r = client.chat("m", [], "hi")
    assert r.text == "ok" and r.attempts == 2
    assert time.perf_counter() - t0 >= 0.95  # backoff alone would be ≤ 0.05 s


def test_slow_answer_times_out_is_retried_then_reported(judge):
    judge.sequence(answer("too late", delay=1.0))
    with make_client(judge.url, timeout_s=0.2, max_retries=1) as c:
        r = c.chat("m", [], "hi")
    assert r.text is None and "timed out" in r.error and "gave up after 2 attempts" in r.error
    assert r.attempts == 2 and len(judge.requests) == 2


def test_dropped_connection_is_retried(judge, client):
    judge.sequence(DROP, answer("ok"))
    r = client.chat("m", [], "hi")
    assert r.text == "ok" and r.attempts == 2
    judge.sequence(DROP)
    r = client.chat("m", [], "hi")
    assert r.text is None and "connection failed" in r.error and r.attempts == 3


def test_400_is_not_retried(judge, client):
    judge.sequence(status(400, "At most 6 image(s) may be provided in one request."))
    r = client.chat("m", [], "hi")
    assert r.attempts == 1 and "HTTP 400" in r.error and "At most 6 image" in r.error and len(judge.requests) == 1


def test_connection_refused_is_a_result_not_an_exception():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with make_client(f"http://127.0.0.1:{port}/v1", max_retries=1) as c:
        r = c.chat("m", [], "hi")
        assert r.text is None and "connection failed" in r.error and r.attempts == 2
        with pytest.raises(JudgeUnavailableError, match=rf"no judge server answers at http://127.0.0.1:{port}/v1.*ar3d judges --run"):
            c.health_check(["Qwen2.5-VL-7B-Instruct"])


def test_chat_many_keeps_order_and_bounds_concurrency(judge):
    judge.script = lambda body: answer(f"echo {text_of(body)}", delay=0.1)
    with make_client(judge.url, max_concurrency=4) as c:
        t0 = time.perf_counter()
        results = c.chat_many([ChatRequest("m", f"#{i}") for i in range(16)])
        elapsed = time.perf_counter() - t0
    assert [r.text for r in results] == [f"echo #{i}" for i in range(16)]
    assert judge.max_in_flight == 4 and 0.35 < elapsed < 1.2  # 16 × 0.1 s / 4 = 0.4 s ideal


def test_health_check(judge, client):
    assert "Qwen2.5-VL-7B-Instruct" in client.health_check(["Qwen2.5-VL-7B-Instruct"])
    judge.models = ["Qwen2.5-VL-7B-Instruct"]
    with pytest.raises(JudgeUnavailableError) as e:
        client.health_check(["Qwen2.5-VL-7B-Instruct", "UnifiedReward-2.0-qwen-7b"])
    msg = str(e.value)
    assert isinstance(e.value, Ar3dError) and judge.url in msg and "does not serve UnifiedReward-2.0-qwen-7b" in msg
    assert "vllm serve CodeGoat24/UnifiedReward-2.0-qwen-7b" in msg and f"--port {judge.url.split(':')[2][:-3]}" in msg


# --- the judge rewards end to end -------------------------------------------------------------------------
def test_unified_alignment_max_over_views(judge, client):
    def script(body):
        text = text_of(body)
        if caption(body) == "garbage":
            return answer("What a lovely object!")
        return answer("<think>Final Score: 1 for now… the legs are right.</think>\nFinal Score: 4" if find_view(text) == "back"
                      else "Final Score: 2.5")  # fmt: skip

    judge.script = script
    batch = RewardBatch(["a chair", "garbage", "a lamp"], views=[views(0, alpha=True), views(1), None])
    reward = UnifiedAlignment(client)
    assert isinstance(reward, Reward) and reward.name == "unified_alignment" and reward.sub_scores == 1
    s = reward.score(batch)
    assert s[0].value == 4.0 and s[0].details["views"]["front"] == {"alignment": 2.5}
    assert s[0].details["raw"]["back"].endswith("Final Score: 4")
    assert s[1].value is None and s[1].missing.startswith("unparseable judge answer") and "(view front)" in s[1].missing
    assert s[1].details["raw"]["front"] == "What a lovely object!"
    assert s[2].missing.startswith("no render")
    assert len(judge.requests) == 12  # 6 views × 2 rendered samples, one image each
    for body in judge.requests:
        (im,) = decode_images(body)
        assert im.size[0] * im.size[1] <= IMG_BOUND and body["model"] == "UnifiedReward-Think-qwen-7b"
        assert '"a chair"' in text_of(body) or '"garbage"' in text_of(body)


def test_unified_reward2_per_dimension_max_and_failures(judge, client):
    def script(body):
        view = find_view(text_of(body))
        if caption(body) == "broken":
            return status(500, "CUDA out of memory")
        if caption(body) == "flaky" and view == "top":
            return answer("Sorry, I cannot see the object.")
        if view == "front":
            return answer("Alignment Score (1-5): 4.5\nCoherence Score (1-5): 2\nStyle Score (1-5): 3")
        return answer("**Alignment Score (1-5):** 3\n**Coherence Score (1-5):** 4\n**Style Score (1-5):** 2/5")

    judge.script = script
    batch = RewardBatch(["a chair", "broken", "flaky"], views=[views(0), views(1), views(2)], step=2)
    s = UnifiedReward2(client).score(batch)
    assert s[0].value == pytest.approx(4.5 + 4 + 3) and s[0].details["sub_scores"] == {"alignment": 4.5, "coherence": 4, "style": 3}
    assert s[1].missing.startswith("judge request failed: HTTP 500") and "CUDA out of memory" in s[1].missing
    assert s[2].missing.startswith("unparseable judge answer") and "(view top)" in s[2].missing
    lenient = UnifiedReward2(client, min_views=5, reduce="mean").score(batch)
    assert lenient[2].value == pytest.approx((4.5 + 4 * 3 + 2 + 4 * 4 + 3 + 4 * 2) / 5) and lenient[2].details["failures"]
    assert UnifiedReward2.value_range == (3.0, 15.0) and UnifiedReward2.sub_scores == 3


def test_category_consistency_sends_all_views_once(judge, client):
    judge.script = lambda body: answer({"a chair": "It has four legs and a backrest.\nAnswer: yes",
                                        "a table": "Answer: no"}.get(caption(body), "Hmm."))  # fmt: skip
    batch = RewardBatch(["a chair", "a table", "a blob"], views=[views(0), views(1), views(2)])
    s = CategoryConsistency(client).score(batch)
    assert [x.value for x in s[:2]] == [1.0, 0.0] and s[2].missing.startswith("unparseable judge answer")
    assert s[2].details["raw"] == "Hmm." and s[0].details["sub_scores"] == {"category_match": 1.0}
    assert len(judge.requests) == 3
    for body in judge.requests:
        assert len(decode_images(body)) == 6 and body["model"] == "Qwen2.5-VL-7B-Instruct"
        assert "front, right, back, left, top and bottom" in text_of(body)


def test_colour_material_texture(judge, client):
    judge.script = lambda body: answer('Here you go: {"color": 0.5, "material": 0.25, "texture": 1}'
                                       if caption(body) == "a vase" else "Looks nice")  # fmt: skip
    s = ColourMaterialTexture(client).score(RewardBatch(["a vase", "a cup"], views=[views(0), views(1)], step=2))
    assert s[0].value == pytest.approx(1.75) and s[0].details["sub_scores"]["material"] == 0.25
    assert s[1].value is None and "unparseable judge answer" in s[1].missing and s[1].details["raw"] == "Looks nice"


def test_part_completeness_vlm_judge(judge, client, monkeypatch):
    verdicts = {"seat": '{"exists": 1, "completeness": 0.5}', "backrest": '{"exists": 1, "completeness": 1.0}',
                "legs": '```json\n{"exists": 0, "completeness": 0.9}\n```', "wheels": "no idea"}  # fmt: skip
    judge.script = lambda body: answer(verdicts[re.search(r'component: "([^"]+)"', text_of(body)).group(1)])
    encoded = []
    real = JudgeClient._encode
    monkeypatch.setattr(JudgeClient, "_encode", lambda self, im: encoded.append(1) or real(self, im))
    batch = RewardBatch(["a chair", "a red chair", "an office chair", "a sofa"], plans=["visual plan"] * 4, step=2,
                        views=[views(0), views(1), views(2), None],
                        step1_plans=["The chair has a seat, a backrest, and four legs.", "A red chair.",
                                     "A chair.", "It has a seat."])  # fmt: skip
    reward = PartCompleteness(client)
    s = reward.score(batch, components=[None, None, ["seat", "wheels"], None])
    assert s[0].value == pytest.approx((1.5 + 2.0 + 0.0) / 3)
    assert s[0].details["components"] == ["seat", "backrest", "legs"] and s[0].details["parts"]["legs"]["exists"] == 0
    assert s[0].details["sub_scores"] == pytest.approx({"exists": 2 / 3, "completeness": 0.5})
    assert s[1].missing.startswith("no components found in the step-1 plan")
    assert s[2].missing.startswith("unparseable judge answer") and "(component 'wheels')" in s[2].missing
    assert s[3].missing.startswith("no render")
    assert len(judge.requests) == 5 and all(len(decode_images(b)) == 6 for b in judge.requests)
    assert len(encoded) == 12  # the six views encoded once per sample, not once per component
    assert isinstance(reward, Reward) and reward.value_range == (0.0, 2.0) and reward.sub_scores == 2


def test_views_are_encoded_once_across_rewards(judge, client, monkeypatch):
    jc.ENCODED.clear()
    calls = []
    real = jc.image_data_url
    monkeypatch.setattr(jc, "image_data_url", lambda *a: calls.append(1) or real(*a))
    judge.script = lambda body: answer('{"color": 1, "material": 1, "texture": 1, "exists": 1, "completeness": 1}')
    batch = RewardBatch(["a chair"], views=[views(7)], step=2, step1_plans=["It has a seat and a back."])
    assert ColourMaterialTexture(client).score(batch)[0].value == 3.0
    assert PartCompleteness(client).score(batch)[0].value == 2.0
    assert len(calls) == 6 and len(judge.requests) == 3  # 6 views encoded once for 3 requests of 6 images


def test_part_completeness_takes_another_part_judge():
    class PointCloudJudge:  # e.g. ShapeLLM over the mesh
        def judge(self, queries):
            return [PartVerdict(exists=1.0, completeness=0.75 if q.mesh == "mesh" else 0.25) for q in queries]

    batch = RewardBatch(["a table"], step=2, meshes=["mesh"], step1_plans=["A table with a top and four legs."])
    (s,) = PartCompleteness(judge=PointCloudJudge()).score(batch)
    assert s.value == pytest.approx(1.75) and s.details["components"] == ["top", "legs"]


def test_http_failure_reaches_every_sample_as_missing(judge, client):
    judge.sequence(status(404, "The model `UnifiedReward-Think-qwen-7b` does not exist."))
    s = UnifiedAlignment(client).score(RewardBatch(["a"], views=[views(0, n=2)]))
    assert s[0].value is None and "HTTP 404" in s[0].missing and "does not exist" in s[0].missing
    assert len(judge.requests) == 2  # 4xx: no retries


# --- `ar3d judges` --------------------------------------------------------------------------------------------
def test_cli_judges_prints_the_vllm_commands(capsys):
    assert main(["judges", "--gpus", "0,1,2", "--port-base", "9100"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "vllm serve" in ln]
    assert len(lines) == 3
    for i, (line, j) in enumerate(zip(lines, vllm_serve.DEFAULT_JUDGES)):
        argv = shlex.split(line)
        assert argv[0] == f"CUDA_VISIBLE_DEVICES={i}" and argv[1:4] == ["vllm", "serve", j.hf_id]
        flags = dict(zip(argv[4::2], argv[5::2]))
        assert flags["--served-model-name"] == j.served_name and flags["--port"] == str(9100 + i)
        assert flags["--host"] == "127.0.0.1" and json.loads(flags["--limit-mm-per-prompt"]) == {"image": 6}
        assert json.loads(flags["--mm-processor-kwargs"]) == {"max_pixels": 512 * 512}
        assert flags["--gpu-memory-utilization"] == "0.9" and int(flags["--max-model-len"]) >= 8192
    assert """--limit-mm-per-prompt '{"image":6}'""" in lines[0]


def test_cli_judges_shares_gpu_memory_and_rejects_bad_gpus(capsys):
    assert main(["judges", "--gpus", "0"]) == 0
    assert capsys.readouterr().out.count("--gpu-memory-utilization 0.3") == 3
    assert main(["judges", "--gpus", "a,b"]) == 2
    assert "--gpus takes comma-separated GPU indices" in capsys.readouterr().err


def test_cli_judges_run_starts_and_stops_them(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "vllm"
    fake.write_text('#!/bin/sh\necho "$CUDA_VISIBLE_DEVICES $VLLM_API_KEY $*" > "$0.$$.args"\n'
                    'case "$*" in *"--port 8002"*) sleep 0.5; exit 3;; esac\nexec sleep 30\n')  # fmt: skip
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AR3D_JUDGE_API_KEY", "k3y")
    t0 = time.perf_counter()
    assert main(["judges", "--run", "--gpus", "4,5"]) == 3  # one judge died: the others are stopped
    assert time.perf_counter() - t0 < 10
    recorded = sorted(p.read_text() for p in tmp_path.glob("vllm.*.args"))
    assert len(recorded) == 3 and all(r.split()[1] == "k3y" for r in recorded)
    assert sorted(r.split()[0] for r in recorded) == ["4", "4", "5"]
    assert "exited with status 3" in capsys.readouterr().err
