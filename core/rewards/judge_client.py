"""A small, robust client for VLM judges served by ``vllm serve`` (OpenAI-compatible API).

RL training scores thousands of renders per step, so the client must keep the judge busy
(bounded concurrency over one pooled HTTP client), survive a busy or restarting server
(retries with backoff on timeouts, dropped connections, 429 and 5xx), and never crash a
training step for one bad request: ``chat``/``chat_many`` return a ``ChatResult`` with either
the answer text or the error, and the reward turns an error into a *missing* score.

Images go as PNG data URLs in ``image_url`` parts *before* the text part (the order the
Qwen2.5-VL chat template expects); each is downscaled (aspect kept) to ``max_image_pixels``
first, because Qwen2.5-VL spends one token per 28×28 pixels.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import math
import os
import random
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit

import httpx
import numpy as np

from ..errors import Ar3dError

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # plus any other 5xx


class JudgeUnavailableError(Ar3dError):
    """The judge server is down, unreachable, or does not serve a model a reward needs."""


def _default_api_key() -> str:
    return os.environ.get("AR3D_JUDGE_API_KEY") or "EMPTY"


@dataclass
class JudgeConfig:
    """How to reach one judge server and how hard to try.

    base_url: the server's OpenAI-compatible root (``vllm serve`` listens on ``/v1``).
    api_key: sent as ``Authorization: Bearer …``; default ``$AR3D_JUDGE_API_KEY``, else "EMPTY"
        (vLLM without ``--api-key`` accepts anything).
    timeout_s: read/write timeout of one request. A 7B judge answering 6 images with a short
        reasoning takes seconds; a long ``<think>`` block with a full queue can take a minute.
    connect_timeout_s: fail fast when nothing listens (the server is down or still loading).
    max_retries: retries after the first attempt (so up to ``max_retries + 1`` attempts) on
        timeouts, dropped connections, 408/429 and 5xx. Other 4xx are our bug: never retried.
    backoff_base_s / backoff_max_s: exponential backoff ``base·2^k`` capped at max, with jitter
        (a random 50–100 % of it) so that many clients do not retry in lock-step.
    retry_after_max_s: cap on a server's ``Retry-After`` (seconds or an HTTP date).
    max_concurrency: requests in flight at once per client (vLLM batches them on the GPU);
        also sizes the HTTP connection pool and the worker threads.
    max_image_pixels: each image is downscaled (aspect kept) to at most this many pixels;
        512·512 ≈ 334 Qwen2.5-VL tokens an image. None or 0: send as is.
    image_format: "png" (lossless) or "jpeg" (smaller, lossy).
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str = field(default_factory=_default_api_key)
    timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 60.0
    max_concurrency: int = 16
    max_image_pixels: int | None = 512 * 512
    image_format: str = "png"

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"JudgeConfig.base_url must start with http:// or https://, got {self.base_url!r}")
        if self.max_concurrency < 1 or self.max_retries < 0:
            raise ValueError("JudgeConfig: max_concurrency must be ≥ 1 and max_retries ≥ 0")
        self.image_format = self.image_format.lower()
        if self.image_format not in ("png", "jpeg"):
            raise ValueError(f"JudgeConfig.image_format must be 'png' or 'jpeg', got {self.image_format!r}")


@dataclass
class ChatRequest:
    """One chat completion: ``images`` (uint8 [H, W, 3] arrays) then ``text``, one user turn."""

    model: str
    text: str
    images: Sequence[np.ndarray] = ()
    max_tokens: int = 256
    temperature: float = 0.0


@dataclass
class ChatResult:
    """The judge's answer (``text``) or why there is none (``error``); never both None.

    attempts: HTTP attempts made (1 = no retry). seconds: wall time including backoff.
    finish_reason: the server's ("length" means the answer was cut at max_tokens).
    """

    text: str | None
    error: str | None
    attempts: int
    seconds: float
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --- images ---------------------------------------------------------------------------------------
def bounded_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """(w, h) scaled down, aspect kept, so that w·h ≤ max_pixels (never scaled up)."""
    if not max_pixels or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    while w * h > max_pixels:  # float rounding
        w, h = (w - 1, h) if w >= h else (w, h - 1)
    return w, h


def image_data_url(image: np.ndarray, max_pixels: int | None = 512 * 512, fmt: str = "png") -> str:
    """uint8 [H, W, 3] → ``data:image/png;base64,…``, downscaled to ``max_pixels``.

    A bad array is a caller bug, so it raises ValueError instead of becoming a missing score.
    """
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"judge images must be uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
    img = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    size = bounded_size(img.width, img.height, max_pixels)
    if size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=1)  # lossless either way; level 1 is ~5× faster than 6
    else:
        img.save(buf, "JPEG", quality=90)
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _EncodedCache:
    """Data URLs by pixel content, shared by every client in the process.

    In step 2 the unified, colour/material/texture and part judges all send the same six views;
    hashing a 512² view (~1 ms) is much cheaper than PNG-encoding it again (~10 ms).
    """

    def __init__(self, size: int = 512) -> None:
        self.size, self._lock, self._items = size, threading.Lock(), OrderedDict()

    def get(self, image: np.ndarray, max_pixels: int | None, fmt: str) -> str:
        arr = np.ascontiguousarray(image)
        key = (hashlib.blake2b(arr.data, digest_size=16).digest(), arr.shape, arr.dtype.str, max_pixels, fmt)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        url = image_data_url(arr, max_pixels, fmt)
        with self._lock:
            self._items[key] = url
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return url

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


ENCODED = _EncodedCache()


def _image_key(image: Any) -> tuple:
    """Identity of an image's pixels for de-duplication within one ``chat_many`` call (the
    requests keep the arrays alive meanwhile, so equal memory means equal pixels)."""
    if isinstance(image, np.ndarray):
        return (image.__array_interface__["data"][0], image.shape, image.strides, image.dtype.str)
    return ("id", id(image))


def chat_payload(request: ChatRequest, image_urls: Sequence[str]) -> dict:
    """The OpenAI chat-completions body: image parts first, then the text part."""
    content: list[dict] = [{"type": "image_url", "image_url": {"url": u}} for u in image_urls]
    content.append({"type": "text", "text": request.text})
    return {
        "model": request.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": int(request.max_tokens),
        "temperature": float(request.temperature),
    }


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# --- the client -----------------------------------------------------------------------------------
class JudgeClient:
    """Synchronous API over a pooled ``httpx.Client`` and a thread pool.

    One client per judge server; share it between the rewards that use that server. A
    semaphore bounds the requests in flight to ``max_concurrency`` even when several threads
    call ``chat_many`` at once.
    """

    def __init__(self, config: JudgeConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = JudgeConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a JudgeConfig or keyword overrides, not both")
        self.config = config
        n = config.max_concurrency
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            headers={"Authorization": f"Bearer {config.api_key}"},
            # a local judge must not go through $HTTP_PROXY; a remote one may need it
            trust_env=urlsplit(config.base_url).hostname not in ("127.0.0.1", "localhost", "::1"),
        )
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ar3d-judge")
        # PNG encoding is CPU work (zlib releases the GIL): one thread per core, apart from the
        # senders, so that requests go out while later images are still being encoded.
        self._encoder = ThreadPoolExecutor(max_workers=min(n, os.cpu_count() or 4), thread_name_prefix="ar3d-encode")
        self._slots = threading.BoundedSemaphore(n)
        self._closed = False

    # -- lifecycle
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
            self._encoder.shutdown(wait=True)
            self._http.close()

    def __enter__(self) -> "JudgeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("JudgeClient is closed")

    # -- public API
    def chat(self, model: str, images: Sequence[np.ndarray], text: str, max_tokens: int = 256,
             temperature: float = 0.0) -> ChatResult:  # fmt: skip
        """One request; blocks until answered or given up. Never raises for a failed request."""
        self._check_open()
        req = ChatRequest(model, text, images, max_tokens, temperature)
        urls = [self._encode(im) for im in req.images]
        return self._send(chat_payload(req, urls))

    def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """All requests concurrently (at most ``max_concurrency`` in flight); results in order.
        Raises only for a caller bug (an image that is not uint8 [H, W, 3]).

        Images shared between requests (the same array, e.g. the six views that the part judge
        sends once per component) are hashed and encoded once; images seen before (by content,
        in any client of this process) come from ``ENCODED``.
        """
        self._check_open()
        if not requests:
            return []
        encoding: dict[tuple, Future] = {}
        for r in requests:
            for im in r.images:
                key = _image_key(im)
                if key not in encoding:
                    encoding[key] = self._encoder.submit(self._encode, im)

        def send(r: ChatRequest) -> ChatResult:  # starts as soon as its own images are encoded
            return self._send(chat_payload(r, [encoding[_image_key(im)].result() for im in r.images]))

        return list(self._pool.map(send, requests))

    def served_models(self) -> list[str]:
        """GET /models → the served model names; raises JudgeUnavailableError when unreachable."""
        self._check_open()
        url = f"{self.config.base_url}/models"
        try:
            r = self._http.get(url, timeout=httpx.Timeout(10.0, connect=self.config.connect_timeout_s))
        except httpx.HTTPError as e:
            raise JudgeUnavailableError(
                f"no judge server answers at {self.config.base_url} ({type(e).__name__}: {e}). "
                f"Start the judges with `ar3d judges --run` (`ar3d judges` prints the vllm commands), "
                f"or point the judge base_url at a running server."
            ) from None
        if r.status_code in (401, 403):
            raise JudgeUnavailableError(
                f"the judge server at {self.config.base_url} refused our API key (HTTP {r.status_code}); "
                f"set AR3D_JUDGE_API_KEY to the key vllm was started with (--api-key / VLLM_API_KEY)"
            )
        try:
            r.raise_for_status()
            return [m["id"] for m in r.json()["data"]]
        except (httpx.HTTPStatusError, ValueError, KeyError, TypeError) as e:
            raise JudgeUnavailableError(
                f"{url} did not answer like an OpenAI-compatible server (HTTP {r.status_code}: "
                f"{_short(r.text, 200)}); is base_url right? ({type(e).__name__})"
            ) from None

    def health_check(self, models: Sequence[str]) -> list[str]:
        """Check at start-up that the server is up and serves every model in ``models``.

        Returns the served names; raises JudgeUnavailableError naming the URL, the missing
        models and the ``vllm serve`` command that serves them.
        """
        served = self.served_models()
        missing = [m for m in models if m not in served]
        if missing:
            from .vllm_serve import command_hint

            port = urlsplit(self.config.base_url).port or 8000
            hints = "\n".join(f"  {command_hint(m, port)}" for m in missing)
            raise JudgeUnavailableError(
                f"the judge server at {self.config.base_url} does not serve {', '.join(missing)} "
                f"(it serves: {', '.join(served) or 'nothing'}). Serve it with:\n{hints}\n"
                f"or start all default judges with `ar3d judges --run`."
            )
        return served

    # -- internals
    def _encode(self, image: np.ndarray) -> str:
        return ENCODED.get(image, self.config.max_image_pixels, self.config.image_format)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.retry_after_max_s)
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)

    def _send(self, payload: dict) -> ChatResult:
        url = f"{self.config.base_url}/chat/completions"
        t0 = time.perf_counter()
        attempt, error = 0, "no attempt made"
        while True:
            attempt += 1
            retry_after = None
            with self._slots:
                try:
                    r = self._http.post(url, json=payload)
                except httpx.TimeoutException as e:
                    error, retryable = f"timed out ({type(e).__name__}, timeout {self.config.timeout_s:g}s)", True
                except httpx.TransportError as e:  # refused, reset, dropped without an answer
                    error, retryable = f"connection failed ({type(e).__name__}: {e})", True
                else:
                    if r.status_code == 200:
                        return self._answer(r, attempt, time.perf_counter() - t0)
                    error = f"HTTP {r.status_code} from {url}: {_short(r.text)}"
                    retryable = r.status_code in RETRY_STATUS or r.status_code >= 500
                    if r.status_code in (429, 503):
                        retry_after = _retry_after_seconds(r.headers.get("retry-after"))
            if not retryable or attempt > self.config.max_retries or self._closed:
                if retryable and attempt > 1:
                    error += f" (gave up after {attempt} attempts)"
                return ChatResult(None, error, attempt, time.perf_counter() - t0)
            time.sleep(self._backoff(attempt, retry_after))

    @staticmethod
    def _answer(r: httpx.Response, attempts: int, seconds: float) -> ChatResult:
        try:
            choice = r.json()["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return ChatResult(None, f"malformed completion from the server: {_short(r.text)}", attempts, seconds)
        if not isinstance(text, str):
            return ChatResult(None, "the server returned an empty answer", attempts, seconds)
        return ChatResult(text, None, attempts, seconds, choice.get("finish_reason"))
