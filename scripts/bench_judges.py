"""What the judge HTTP client costs on top of the judge itself.

A Hi-GRPO batch of 8 prompts × 2 samples, six 512² views each, against a local server that
answers either instantly (the client's own cost: encoding, JSON, HTTP) or after a fixed 50 ms
(how close bounded concurrency gets to the ideal ``latency × requests / concurrency``). Two
request shapes, as the rewards send them: one view per request (UnifiedAlignment,
UnifiedReward2: 96 requests) and six views per request (consistency: 16 requests).

The server runs in its own process so that its work does not compete with the client's for the
GIL; it reads each body and answers a fixed UnifiedReward-2.0 reply without parsing.

    .venv/bin/python scripts/bench_judges.py --json bench_judges.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from ar3d.core.rewards.judge_client import ENCODED, ChatRequest, JudgeClient, JudgeConfig, image_data_url

ANSWER = "Alignment Score (1-5): 4\nCoherence Score (1-5): 3.5\nStyle Score (1-5): 3"


def serve(port_queue, latency_s: float) -> None:
    body = json.dumps({"id": "b", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}}]}).encode()  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body wait 40 ms on a delayed ACK

        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if latency_s:
                time.sleep(latency_s)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    port_queue.put(server.server_address[1])
    server.serve_forever()


def start_server(latency_s: float):
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=serve, args=(q, latency_s), daemon=True)
    p.start()
    return p, q.get(timeout=10)


def render_like(seed: int, size: int) -> np.ndarray:
    """A shaded blob on white, compressing like a real render (not like noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    r = np.hypot(x * rng.uniform(0.8, 1.3), y)
    shade = np.clip(1.2 - 2.5 * r + 0.3 * x, 0, 1)
    img = np.full((size, size, 3), 255, np.uint8)
    inside = r < 0.35
    color = rng.integers(60, 200, 3)
    img[inside] = (shade[inside, None] * color).astype(np.uint8)
    return img


def run_case(url: str, samples: list[np.ndarray], per_view: bool, concurrency: int, repeats: int,
             cached: bool = False) -> dict:  # fmt: skip
    """Median wall time of one chat_many over the batch; the encode cache is cleared before
    each run unless ``cached`` (views another reward already sent)."""
    if samples[0].ndim == 5:  # text-only requests
        requests = [ChatRequest("judge", "rate this", [], 64) for _ in range(len(samples[0]))]
    elif per_view:
        requests = [ChatRequest("judge", "rate this view", [v[k]], 64) for v in samples for k in range(len(v))]
    else:
        requests = [ChatRequest("judge", "rate these views", list(v), 64) for v in samples]
    walls = []
    with JudgeClient(JudgeConfig(base_url=url, max_concurrency=concurrency, timeout_s=30)) as client:
        client.chat_many(requests[:concurrency])  # warm the connection pool
        for _ in range(repeats):
            if not cached:
                ENCODED.clear()
            t0 = time.perf_counter()
            results = client.chat_many(requests)
            walls.append(time.perf_counter() - t0)
            bad = [r.error for r in results if not r.ok]
            if bad:
                raise SystemExit(f"bench request failed: {bad[0]}")
    return {"requests": len(requests), "images_per_request": len(requests[0].images), "wall_s": statistics.median(walls)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=2, help="samples per prompt")
    ap.add_argument("--size", type=int, default=512, help="view resolution (the client's bound is 512²)")
    ap.add_argument("--concurrency", type=int, default=JudgeConfig.max_concurrency)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    n = args.prompts * args.group
    samples = [np.stack([render_like(s * 6 + k, args.size) for k in range(6)]) for s in range(n)]
    t0 = time.perf_counter()
    for k in range(12):
        image_data_url(samples[0][k % 6])
    encode_ms = (time.perf_counter() - t0) / 12 * 1e3
    png_kb = len(image_data_url(samples[0][0])) * 3 / 4 / 1024

    rows = []
    for latency in (0.0, args.latency_ms / 1e3):
        proc, port = start_server(latency)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            serial = run_case(url, samples[:2], True, 1, args.repeats)  # one at a time: round trip
            if latency == 0:  # the HTTP + JSON cost alone: 50 text-only requests one at a time
                bare = run_case(url, [np.zeros((50, 0, 1, 1, 3), np.uint8)], False, 1, args.repeats)
                http_ms = bare["wall_s"] / 50 * 1e3
            for per_view, cached in ((True, False), (False, False), (False, True)):
                r = run_case(url, samples, per_view, args.concurrency, args.repeats, cached)
                ideal = latency * r["requests"] / args.concurrency
                shape = "1 view/request" if per_view else "6 views/request" + (" (cached)" if cached else "")
                rows.append(dict(r, latency_ms=latency * 1e3, concurrency=args.concurrency, shape=shape,
                                 req_per_s=r["requests"] / r["wall_s"], ideal_s=ideal,
                                 overhead_ms_per_request=(r["wall_s"] - ideal) / r["requests"] * 1e3,
                                 serial_round_trip_ms=serial["wall_s"] / serial["requests"] * 1e3))  # fmt: skip
        finally:
            proc.terminate()
            proc.join()

    print(f"judge client: {n} samples × 6 views of {args.size}², concurrency {args.concurrency}, "
          f"PNG encode {encode_ms:.1f} ms/view ({png_kb:.0f} KB), text-only HTTP round trip {http_ms:.2f} ms, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    head = f"{'latency':>8} {'shape':>24} {'requests':>8} {'wall s':>7} {'req/s':>7} {'ideal s':>7} {'overhead ms/req':>15} {'serial RTT ms':>13}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['latency_ms']:>6.0f}ms {r['shape']:>24} {r['requests']:>8} {r['wall_s']:>7.3f} {r['req_per_s']:>7.1f} "
              f"{r['ideal_s']:>7.3f} {r['overhead_ms_per_request']:>15.2f} {r['serial_round_trip_ms']:>13.2f}")  # fmt: skip
    print("overhead ms/req = (wall − ideal) / requests, amortised over the concurrent batch; serial RTT = one\n"
          "1-view request at a time, latency included; (cached) = views another reward already encoded")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "when": datetime.datetime.now().isoformat(timespec="seconds"), "platform": platform.platform(),
            "cpus": os.cpu_count(), "samples": n, "views": 6, "size": args.size, "encode_ms_per_view": encode_ms,
            "png_kb_per_view": png_kb, "http_round_trip_ms": http_ms, "rows": rows}, indent=1))  # fmt: skip
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
