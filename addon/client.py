"""A small, dependency-free client for the ``ar3d serve`` HTTP API (standard library only).

Nothing here imports ``bpy``: the client is used from a worker thread and can be tested alone.

API (see ``ar3d serve``)::

    POST /v1/jobs                      -> 202 {id, status, position}   (429 busy, Retry-After)
    GET  /v1/jobs/{id}                 -> {id, status, stage, step, steps, tokens_done, ...}
    GET  /v1/jobs/{id}/results/{i}.glb -> GLB bytes
    POST /v1/jobs/{id}/cancel          -> 200
    GET  /v1/health                    -> {status: "ok", model, device, queue, auth}

Errors come back as JSON ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8765"
TERMINAL = frozenset({"done", "failed", "cancelled"})
START_HINT = "start it with `ar3d serve` or enable 'start a local server' in the ar3d add-on preferences"


# The server's mesh smoothing levels (JobRequest.smoothing), as Blender EnumProperty items.
SMOOTHING_ITEMS = (
    ("none", "None", "No smoothing: voxel steps show"),
    ("low", "Low", "A little smoothing"),
    ("medium", "Medium", "The default"),
    ("high", "High", "Rounder; thin parts get thinner"),
)


class ServerError(RuntimeError):
    """A failed request, with a message fit to show an artist.

    ``status`` is the HTTP status (``None`` when the server could not be reached), ``code`` the
    server's error code, ``retry_after`` the seconds a busy server asked us to wait.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None, unreachable: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.unreachable = unreachable


def normalize_url(url: str) -> str:
    url = (url or "").strip() or DEFAULT_URL
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"invalid server URL {url!r}: expected something like {DEFAULT_URL}")
    return url.rstrip("/")


def url_port(url: str) -> int:
    parts = urllib.parse.urlsplit(normalize_url(url))
    return parts.port or (443 if parts.scheme == "https" else 80)


def is_local_url(url: str) -> bool:
    """True when the URL points at this computer (no online access needed)."""
    host = urllib.parse.urlsplit(normalize_url(url)).hostname or ""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    def __init__(self, base_url: str = DEFAULT_URL, token: str = "", timeout: float = 30.0):
        self.base_url = normalize_url(base_url)
        self.token = (token or "").strip()
        self.timeout = float(timeout)
        # Never go through a proxy for the local server (a system proxy would break localhost).
        handlers = [urllib.request.ProxyHandler({})] if is_local_url(self.base_url) else []
        self._opener = urllib.request.build_opener(*handlers)

    # ---- low level ---------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + "/" + path.lstrip("/")

    def request(self, method: str, path: str, body: dict | None = None, *, raw: bool = False,
                timeout: float | None = None):
        url = self._url(path)
        headers = {"Accept": "application/json", "User-Agent": "ar3d-blender"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        timeout = self.timeout if timeout is None else timeout
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(e, method, url) from None
        except (socket.timeout, TimeoutError) as e:
            raise ServerError(f"the ar3d server at {self.base_url} did not answer within {timeout:g} s "
                              f"({method} {urllib.parse.urlsplit(url).path})") from e
        except urllib.error.URLError as e:
            raise self._url_error(e) from e
        except (ConnectionError, OSError) as e:
            raise self._url_error(urllib.error.URLError(e)) from e
        if raw:
            return payload
        try:
            return json.loads(payload.decode("utf-8")) if payload else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ServerError(f"the ar3d server at {self.base_url} sent a bad answer to {method} "
                              f"{urllib.parse.urlsplit(url).path} (not JSON)") from None

    def _url_error(self, e: urllib.error.URLError) -> ServerError:
        reason = e.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return ServerError(f"the ar3d server at {self.base_url} did not answer within {self.timeout:g} s")
        if isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower():
            return ServerError(f"the ar3d server at {self.base_url} is not running; {START_HINT}",
                               unreachable=True)
        if isinstance(reason, socket.gaierror):
            return ServerError(f"cannot resolve the ar3d server host in {self.base_url} ({reason})",
                               unreachable=True)
        return ServerError(f"cannot reach the ar3d server at {self.base_url}: {reason}", unreachable=True)

    def _http_error(self, e: urllib.error.HTTPError, method: str, url: str) -> ServerError:
        code = message = None
        try:
            body = json.loads(e.read().decode("utf-8"))
            err = body.get("error") if isinstance(body, dict) else None
            if isinstance(err, dict):
                code, message = err.get("code"), err.get("message")
            elif isinstance(err, str):
                message = err
            elif isinstance(body, dict) and isinstance(body.get("detail"), str):
                message = body["detail"]
        except Exception:  # noqa: BLE001 - a non-JSON error page
            pass
        retry_after = None
        if e.headers is not None and e.headers.get("Retry-After"):
            try:
                retry_after = float(e.headers["Retry-After"])
            except ValueError:
                pass
        path = urllib.parse.urlsplit(url).path
        if e.code == 401 or e.code == 403:
            text = message or "unauthorized"
            text = f"the ar3d server refused the access token ({text}); set it in the add-on preferences"
        elif e.code == 429:
            text = "the ar3d server is busy (its queue is full)"
            if retry_after is not None:
                text += f"; try again in {retry_after:g} s"
        else:
            text = f"the ar3d server answered {e.code} to {method} {path}"
            if message:
                text += f": {message}"
        return ServerError(text, status=e.code, code=code, retry_after=retry_after)

    # ---- API ---------------------------------------------------------------------------------
    def health(self, timeout: float | None = None) -> dict:
        data = self.request("GET", "/v1/health", timeout=timeout)
        if not isinstance(data, dict) or data.get("status") != "ok":
            raise ServerError(f"the ar3d server at {self.base_url} is not healthy: {data!r}")
        return data

    def submit(self, prompt: str, *, two_step: bool = True, samples: int = 1, seed: int | None = None,
               temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
               max_plan_tokens: int | None = None, smoothing: str | None = None) -> dict:
        body = {"prompt": prompt, "two_step": bool(two_step), "samples": int(samples), "seed": seed}
        for key, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k),
                           ("max_plan_tokens", max_plan_tokens), ("smoothing", smoothing)):
            if value is not None:
                body[key] = value
        data = self.request("POST", "/v1/jobs", body)
        if not isinstance(data, dict) or not data.get("id"):
            raise ServerError(f"the ar3d server at {self.base_url} sent a bad answer to POST /v1/jobs: {data!r}")
        return data

    def job(self, job_id: str) -> dict:
        data = self.request("GET", f"/v1/jobs/{urllib.parse.quote(str(job_id))}")
        if not isinstance(data, dict) or "status" not in data:
            raise ServerError(f"the ar3d server at {self.base_url} sent a bad job status: {data!r}")
        return data

    def cancel(self, job_id: str) -> dict:
        return self.request("POST", f"/v1/jobs/{urllib.parse.quote(str(job_id))}/cancel", {})

    def download(self, url: str) -> bytes:
        data = self.request("GET", url, raw=True)
        if len(data) < 12 or data[:4] != b"glTF":
            raise ServerError(f"the ar3d server sent a bad mesh file for {url} (not a GLB)")
        return data
