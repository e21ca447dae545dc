"""The HTTP API of `ar3d serve` (FastAPI): submit a prompt, poll the job, download GLBs.

`create_app` takes a ready pipeline (or a loader), so tests run the real API around a tiny model;
`serve` is the CLI's entry: check the settings, load the model once, run uvicorn.
Every error is ``{"error": {"code", "message"}}`` with a message a person can act on.
"""

from __future__ import annotations

import hmac
import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path as PathParam, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..core.prompts import MAX_PROMPT_CHARS
from ..headless.ranking import Ranker
from .config import MAX_SAMPLES, ServerConfig, ServerConfigError, check_port_free
from .jobs import TOKENS_TOTAL, JobManager, JobNotFound, JobParams, QueueFull, ShuttingDown

log = logging.getLogger("ar3d.server")

Status = Literal["queued", "planning", "coarse", "refined", "decoding", "done", "failed", "cancelled"]
Stage = Literal["planning", "coarse", "refined", "decoding"]
# Module level: with postponed annotations FastAPI resolves these names in the module's globals.
JobId = Annotated[str, PathParam(description="the id POST /v1/jobs returned")]
SampleIndex = Annotated[int, PathParam(ge=0, le=MAX_SAMPLES - 1, description="results[].index")]


# --- bodies ------------------------------------------------------------------------------------
class JobRequest(BaseModel):
    """A generation request. Unknown fields are refused, so a misspelt option is an error, not ignored;
    types are strict (``"2"`` or ``true`` is not a number), so a client's bug is not guessed around."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT_CHARS)] = Field(
        description=f"what to make, e.g. 'a wooden chair'; 1..{MAX_PROMPT_CHARS} characters after stripping spaces"
    )
    two_step: bool = Field(False, description="Hi-GRPO two-step generation: plan → coarse, visual plan → refined")
    samples: int = Field(1, ge=1, le=MAX_SAMPLES, description="meshes to make from the prompt (one batch)")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="same seed and settings → same meshes; null = random")
    temperature: float = Field(0.7, ge=0, le=2, allow_inf_nan=False, description="0 = greedy")
    top_p: float = Field(0.7, gt=0, le=1, allow_inf_nan=False)
    top_k: int = Field(8192, ge=0, le=2**31 - 1, description="0 = off")
    max_plan_tokens: int = Field(1022, ge=0, le=1022, description="cap on the plan text before the mesh")
    smoothing: Literal["none", "low", "medium", "high"] = Field(
        "medium", description="mesh smoothing: none (voxel steps) … high (rounder); medium is the CLI's default"
    )

    @field_validator("prompt")
    @classmethod
    def _utf8(cls, v: str) -> str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the prompt is not valid Unicode text (it holds a lone surrogate)") from None
        return v


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. not_found, invalid_request, busy")
    message: str = Field(description="what went wrong and what to do, for a person")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class JobCreated(BaseModel):
    id: str
    status: Literal["queued"]
    position: int = Field(description="place in the queue, 1 = runs next")


class ResultItem(BaseModel):
    index: int = Field(description="the sample's index in generation order; the URL uses it")
    url: str | None = Field(description="the GLB; null when this sample's mesh was degenerate (see error)")
    score: float | None = Field(description="the ranking ensemble's total; null without --rank-rewards or when missing")
    scores: dict[str, float | None] = Field(description="each ranking term's weighted share of score")
    seed: int = Field(description="the seed this sample was generated with: a job's samples are one batch under one "
                                  "seed, so this seed, the job's samples and index reproduce it")
    error: str | None = Field(None, description="why there is no mesh")


class JobStatus(BaseModel):
    id: str
    status: Status
    prompt: str
    two_step: bool
    samples: int
    seed: int | None = Field(description="the seed asked for (null = random; results[].seed has the one used)")
    stage: Stage | None = Field(description="the last stage the job reached; null while queued")
    step: int = Field(description="1 or 2 (two-step); 0 while queued")
    steps: int
    tokens_done: int = Field(description="mesh codes written in the current step")
    tokens_total: int = TOKENS_TOTAL
    plans: list[list[str]] = Field(description="per sample, the plan of each step (filled when generation ends)")
    error: str | None
    position: int | None = Field(description="place in the queue while queued (1 = next), else null")
    created: float = Field(description="unix time")
    started: float | None
    finished: float | None
    results: list[ResultItem] = Field(description="best first when ranking, else in sample order")


class CancelResult(BaseModel):
    id: str
    status: Status = Field(description="the job's status now: cancelled only once it has stopped")
    stopping: bool = Field(description="true while a running job has been told to stop and has not yet; "
                                       "poll GET /v1/jobs/{id} until its status is cancelled")
    message: str = Field(description="what happened, for a person")


class QueueInfo(BaseModel):
    queued: int
    running: int
    limit: int


class ThreadsInfo(BaseModel):
    threads: int = Field(description="torch's intra-op CPU threads")
    source: str = Field(description="where the number came from: --threads, AR3D_THREADS, OMP_NUM_THREADS, auto")
    wait_policy: str = Field(description="OpenMP's wait policy as the process started it")
    passive_wait: bool = Field(description="waiting threads sleep instead of spinning (what a shared machine needs)")
    cores: int


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    model: str
    vqvae: str
    device: str
    engine: str
    queue: QueueInfo
    auth: bool = Field(description="whether requests need 'Authorization: Bearer <token>'")
    threads: ThreadsInfo | None = Field(None, description="the CPU thread policy of the server process")


# --- errors ------------------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               409: "not_ready", 413: "too_large", 415: "unsupported_media_type", 429: "busy", 503: "unavailable"}  # fmt: skip


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc) or "request"
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            msg = "the body is not valid JSON"
        elif err.get("type") == "missing" and loc[:1] == ["body"] and len(loc) == 1:
            msg = "a JSON body is required"
        parts.append(f"{where}: {msg}")
    return "invalid request: " + "; ".join(parts)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts on this path (Starlette's 405 names only the first route's)."""
    from starlette.routing import Match

    methods = set()
    routes = [*request.app.router.routes, *getattr(request.app.state, "api_routes", ())]  # included routers nest
    for route in routes:
        if route.matches(request.scope)[0] != Match.NONE:  # PARTIAL: the path matches, the method not
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods | {"OPTIONS"})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; the API is described at /docs"
        elif exc.status_code == 405:
            allowed = _allowed_methods(request)
            if request.method == "OPTIONS":  # the methods of this path, for clients and proxies that ask
                return Response(status_code=204, headers={"Allow": ", ".join(allowed)})
            message = f"{request.method} is not allowed on {request.url.path}; it takes {', '.join(allowed)} (see /docs)"
            return error_response(405, "method_not_allowed", message, {"Allow": ", ".join(allowed)})
        elif exc.status_code == 400 and "parsing the body" in str(exc.detail):
            message = "the request body could not be read: send a JSON object encoded as UTF-8"
        else:
            message = str(exc.detail)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal server error; the server log has the details")


MAX_BODY_BYTES = 64 * 1024  # a job request is a prompt of at most 2000 characters and a few numbers


class BodyGuard:
    """ASGI middleware: a request body larger than `limit` gets 413 without being read into memory
    (the Content-Length is checked first, a chunked body is counted as it arrives), and a body
    that is not JSON gets 415 before anything parses it."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        too_large = error_response(413, "too_large", f"the request body is larger than {self.limit} bytes; a job "
                                   "request is a JSON object with a prompt of at most 2000 characters")  # fmt: skip
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await too_large(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and kind != b"application/json" and not kind.endswith(b"+json"):
            shown = kind.decode("latin-1") or "none"
            return await error_response(415, "unsupported_media_type", f"the body must be JSON, sent with "
                                        f"'Content-Type: application/json' (it came as {shown})")(scope, receive, send)  # fmt: skip
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class BearerAuth:
    """ASGI middleware: every request but /v1/health needs 'Authorization: Bearer <token>'.
    Middleware rather than a dependency so unknown paths, /docs and /openapi.json are covered too."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/v1/health":
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, given = header.partition(b" ")
            if not header:
                message = "this server needs a token: send 'Authorization: Bearer <token>' (the --token or AR3D_SERVER_TOKEN it was started with)"
            elif scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.token):
                message = "the token is wrong: send 'Authorization: Bearer <token>' with the token the server was started with"
            else:
                message = None
            if message:
                response = error_response(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- the app -----------------------------------------------------------------------------------
def describe(pipeline) -> dict:
    """Model facts for /v1/health; tolerant so that test doubles need not mimic everything."""
    policy = getattr(pipeline, "policy", None)
    model = getattr(policy, "model", None)
    return {
        "model": str(getattr(policy, "name", "") or getattr(policy, "path", "") or "unknown"),
        "vqvae": str(getattr(pipeline, "vqvae_path", "") or "unknown"),
        "device": str(getattr(model, "device", "unknown")),
        "engine": str(getattr(getattr(policy, "engine", None), "name", "unknown")),
    }


def _threads_info() -> dict | None:
    try:
        from ..core.threads import describe as describe_threads

        return describe_threads()
    except ImportError:  # pragma: no cover - torch is always there with the server
        return None


def _errors(*codes: int) -> dict:
    return {c: {"model": ErrorResponse} for c in codes}


def create_app(pipeline_or_loader, config: ServerConfig | None = None, *, ranker: Ranker | None = None) -> FastAPI:
    """The API around a `TextTo3D` (or anything with its `generate`), or a zero-argument loader
    of one. The model is loaded here, once; the job worker starts at once."""
    config = (config or ServerConfig()).validate()
    pipeline = pipeline_or_loader if hasattr(pipeline_or_loader, "generate") else pipeline_or_loader()
    if ranker is None and config.rank_rewards:
        ranker = Ranker(config.rank_rewards, config.rank_views)
    jobs = JobManager(pipeline, config.max_queue, config.keep_jobs, ranker)
    info = describe(pipeline)
    threads_info = _threads_info()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.close()

    app = FastAPI(
        title="ar3d",
        version=__version__,
        description="Text-to-3D jobs: POST /v1/jobs, poll GET /v1/jobs/{id}, download results[].url (GLB).",
        lifespan=lifespan,
    )
    app.state.jobs, app.state.config = jobs, config
    _install_error_handlers(app)
    app.add_middleware(BodyGuard)
    if config.token:  # added last, so it runs first: an unauthorised body is never read
        app.add_middleware(BearerAuth, token=config.token)
    # Documents the bearer scheme in the schema; BearerAuth enforces it.
    security = [Security(HTTPBearer(auto_error=False))] if config.token else []
    api = APIRouter(prefix="/v1", dependencies=security, responses=_errors(400, 401, 422))

    def unknown(job_id: str) -> ApiError:
        return ApiError(404, "not_found", f"no job '{job_id}': it never existed, or it finished long ago and was "
                        f"evicted (the server keeps the last {config.keep_jobs} finished jobs)")  # fmt: skip

    @api.post("/jobs", status_code=202, response_model=JobCreated, responses=_errors(413, 415, 429, 503))
    def submit(body: JobRequest) -> JobCreated:
        """Queue a generation job; poll GET /v1/jobs/{id} for its progress and results."""
        try:
            snap = jobs.submit(JobParams(**body.model_dump()))
        except QueueFull as e:
            raise ApiError(429, "busy", f"the server is busy: {e.limit} jobs are already waiting; retry in "
                           f"{e.retry_after} s or cancel one of yours", {"Retry-After": str(e.retry_after)}) from None  # fmt: skip
        except ShuttingDown:
            raise ApiError(503, "unavailable", "the server is shutting down; start it again and resubmit") from None
        return JobCreated(id=snap["id"], status="queued", position=snap["position"])

    @api.get("/jobs/{job_id}", response_model=JobStatus, responses=_errors(404))
    def get_job(job_id: JobId) -> dict:
        try:
            return jobs.get(job_id)
        except JobNotFound:
            raise unknown(job_id) from None

    @api.get(
        "/jobs/{job_id}/results/{index}.glb",
        response_class=Response,
        responses={200: {"content": {"model/gltf-binary": {"schema": {"type": "string", "format": "binary"}}},
                         "description": "the mesh as binary glTF (z-up data in glTF's y-up frame)"},
                   **_errors(404, 409)},  # fmt: skip
    )
    def get_result(job_id: JobId, index: SampleIndex) -> Response:
        try:
            snap, result = jobs.result_path(job_id, index)
        except JobNotFound:
            raise unknown(job_id) from None
        status = snap["status"]
        if status != "done":
            if status in ("failed", "cancelled"):
                why = f": {snap['error']}" if snap["error"] else ""
                raise ApiError(409, "not_ready", f"job {job_id} ended {status}{why}; it has no results. Submit it again.")
            raise ApiError(409, "not_ready", f"job {job_id} is {status} ({snap['tokens_done']}/{TOKENS_TOTAL} tokens "
                           f"of step {snap['step']}/{snap['steps']}); poll GET /v1/jobs/{job_id} until status is done")  # fmt: skip
        if result is None:
            raise ApiError(404, "not_found", f"job {job_id} has samples 0..{snap['samples'] - 1}, not {index}")
        if result.path is None:
            raise ApiError(404, "no_mesh", f"sample {index} of job {job_id} has no mesh: {result.error}")
        try:
            data = result.path.read_bytes()
        except FileNotFoundError:  # evicted between the lookup and the read
            raise unknown(job_id) from None
        headers = {"Content-Disposition": f'attachment; filename="ar3d_{job_id}_{index}.glb"'}
        return Response(data, media_type="model/gltf-binary", headers=headers)

    def cancel(job_id: str) -> dict:
        try:
            snap = jobs.cancel(job_id)
        except JobNotFound:
            raise unknown(job_id) from None
        status = snap["status"]
        stopping = status not in ("done", "failed", "cancelled")
        if status == "cancelled":
            message = "cancelled"
        elif stopping:
            message = f"the job is stopping ({status}); poll GET /v1/jobs/{job_id} until its status is cancelled"
        else:
            message = f"the job had already ended ({status}); nothing to cancel"
        return {"id": snap["id"], "status": status, "stopping": stopping, "message": message}

    @api.post("/jobs/{job_id}/cancel", response_model=CancelResult, responses=_errors(404))
    def cancel_job(job_id: JobId) -> dict:
        """Queued: removed. Running: stops at the next token (the answer waits up to 2 s for it; if
        it has not stopped by then the answer says so: `stopping` true). Finished: unchanged."""
        return cancel(job_id)

    @api.delete("/jobs/{job_id}", response_model=CancelResult, responses=_errors(404))
    def delete_job(job_id: JobId) -> dict:
        """The same as POST /v1/jobs/{id}/cancel."""
        return cancel(job_id)

    app.include_router(api)
    app.state.api_routes = list(api.routes)

    @app.get("/v1/health", response_model=Health, tags=["health"])
    def health() -> dict:
        """Liveness and model facts; needs no token."""
        return {"status": "ok", "version": __version__, **info, "queue": jobs.stats(), "auth": bool(config.token),
                "threads": threads_info}  # fmt: skip

    return app


def serve(args) -> int:
    """`ar3d serve`: validate the settings, load the model once, serve until Ctrl-C."""
    config = ServerConfig.from_args(args)
    check_port_free(config.host, config.port)
    try:
        import uvicorn
    except ImportError:
        raise ServerConfigError("ar3d serve needs uvicorn: pip install 'ar3d[serve]'") from None
    from ..core.hub import default_policy, is_demo_model

    ranker = None
    if config.rank_rewards:  # fail before the load
        folder = Path(str(args.model or default_policy())).expanduser()
        ranker = Ranker.for_model(config.rank_rewards, folder, config.rank_views)
    from ..core.pipeline import TextTo3D

    print("ar3d: loading the model …", file=sys.stderr)
    pipe = TextTo3D.load(args.model, args.vqvae, device=args.device, engine=getattr(args, "engine", None),
                         precision=getattr(args, "precision", None))  # fmt: skip
    if is_demo_model(pipe.policy.path):
        print("ar3d: serving the bundled demo model (procedural shapes only); pass --model for ShapeLLM-Omni / "
              "AR3D-R1", file=sys.stderr)  # fmt: skip
    app = create_app(pipe, config, ranker=ranker)
    auth = "token required" if config.token else "no token (local only)"
    print(f"ar3d: serving on http://{config.host}:{config.port} ({auth}); API at /docs", file=sys.stderr)
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="info")
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: that is a normal stop
        pass
    return 0
