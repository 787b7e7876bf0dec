"""``sdkit serve``: the seed's OpenAI-style Stable Diffusion API, served from local pipelines.

    POST /v1/chat/completions     the page's request; the last user message is the prompt
    POST /v1/images/generations   OpenAI's images request; ``b64_json`` or ``url``
    GET  /v1/models               the served model, under each name it answers to
    GET  /health                  no key needed: status and queue figures
    GET  /files/images/{id}.png   images handed out as URLs (random ids, kept in memory)

The server in modules, by what each does:

- :mod:`sdkit.server.app` (here): :func:`create_app` builds the backends (through the registry), the
  job queue and the :class:`~sdkit.server.state.ServerState`, and wires the routes, the lifespan and
  the error replies into a FastAPI app;
- :mod:`sdkit.server.routes`: the endpoints, each reading the state as a dependency;
- :mod:`sdkit.server.wire`: request bodies in, reply bodies out, as pure functions;
- :mod:`sdkit.server.jobqueue`: the bounded queue and its worker threads (one per backend);
- :mod:`sdkit.server.state`: what the server holds (queue, image store, served model, limits);
- :mod:`sdkit.server.auth`: API keys and the warning for an exposed server;
- :mod:`sdkit.server.serve`: running it under uvicorn, in the foreground or a background thread;
- :mod:`sdkit.server.defaults`: the defaults and limits.

FastAPI and uvicorn are imported when these modules are, never by ``import sdkit``. Generation runs in
worker threads, one per backend, with a bounded queue: when it is full the reply is 429 with
``Retry-After``. Every refusal has OpenAI's error shape and names the field.

Against hostile or careless clients: bodies are capped in bytes, nesting and read time; prompts
in characters; each request's work in pixel-steps (width × height × steps × images, by default
what the served model does at its native size in 200 steps); each request has a deadline (504),
and a request whose client leaves is dropped, or stopped at its next step if it runs.
Connections that do not finish their headers in time are closed. Prompts are never logged,
and query strings never reach the access log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sdkit.errors import MissingDependencyError

try:
    import fastapi
    import uvicorn  # noqa: F401 - checked together: both come with the serve extra
except ImportError:
    raise MissingDependencyError("fastapi and uvicorn", "serve") from None

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from sdkit.backends.base import Backend
from sdkit.backends.registry import create_backend
from sdkit.errors import InvalidRequestError, SdkitError, ServerBusyError, ValidationError
from sdkit.params import DEFAULT_MODEL, is_int
from sdkit.server.auth import check_keys
from sdkit.server.defaults import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_REQUEST_TIMEOUT_S,
    MAX_STORED_BYTES,
)
from sdkit.server.jobqueue import JobQueue
from sdkit.server.routes import api, error_response, public
from sdkit.server.state import ImageStore, Limits, NativeSize, ServerState, scrubber, served_model
from sdkit.server.wire import DEFAULT_MAX_PROMPT_CHARS, refusal_message

__all__ = ["SERVED_KIND", "build_backends", "create_app"]

#: The backend kind the server builds when given none (through :func:`sdkit.create_backend`).
SERVED_KIND = "local"


def build_backends(backend: Backend | Sequence[Backend] | None, concurrency: int = 1, **options: Any) -> list[Backend]:
    """The server's workers' backends, one worker each: ``backend`` as given (one, or a list), or
    ``concurrency`` backends of :data:`SERVED_KIND` per device, built by the registry with ``options``
    (a ``device`` of ``"cuda:0,cuda:1"`` names several devices)."""
    if not is_int(concurrency) or concurrency < 1:
        raise ValidationError("concurrency", concurrency, "must be a positive integer")
    if backend is None:
        device = options.pop("device", None)
        devices = [d.strip() for d in device.split(",")] if device else [None]
        return [
            create_backend(SERVED_KIND, device=d, progress=False, **options)
            for d in devices
            for _ in range(concurrency)
        ]
    if isinstance(backend, Sequence):
        if not backend:
            raise ValidationError("backend", backend, "must not be an empty list")
        return list(backend)
    if concurrency > 1:
        raise ValidationError(
            "concurrency", concurrency, "one backend object runs one job at a time; pass one backend per worker"
        )
    return [backend]


def create_app(
    backend: Backend | Sequence[Backend] | None = None,
    *,
    model: str = DEFAULT_MODEL,
    model_id: str | None = None,
    api_keys: Iterable[str] = (),
    max_queue: int = DEFAULT_MAX_QUEUE,
    concurrency: int = 1,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_images: int = DEFAULT_MAX_IMAGES,
    public_url: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    memory: str = "none",
    threads: int | str = "auto",
    portable: bool = False,
    embeddings: str | None = None,
    max_work: int | None = None,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    max_store_bytes: int = MAX_STORED_BYTES,
) -> fastapi.FastAPI:
    """The API as a FastAPI app.

    ``backend`` left out: ``concurrency`` backends of :data:`SERVED_KIND` (a :class:`~sdkit.LocalBackend`)
    on each ``device`` (``"cuda:0,cuda:1"`` names several), each a worker running one pipeline call at
    a time; ``dtype``, ``memory``, ``threads``, ``portable`` and ``embeddings`` go to each (see
    :mod:`sdkit.backends.local.cpu`). Or give one backend, or a list (one worker each).
    ``model`` is what the backend loads (``tiny``, a hub id, a folder); clients name it
    ``model_id`` (default: ``model``, a folder's name for a path) or ``stable-diffusion-api``.
    With ``api_keys``, every ``/v1`` request needs ``Authorization: Bearer KEY``.
    At most ``max_queue`` requests wait (then 429), ``max_images`` images per request,
    ``max_body_bytes`` per body (then 413), sent within ``body_timeout_s`` (then 408),
    ``max_prompt_chars`` per prompt (then 400).
    ``max_work`` caps one request's width × height × steps × images (pixel-steps; default: the
    served model's native size, 200 steps: 50 steps for each of 4 images); more is a 400 naming
    the field. A request not done within ``request_timeout_s`` is stopped and answered 504.
    Image URLs start with ``public_url`` when given (e.g. a tunnel's address), else with the
    address the server is bound to (never the client's ``Host`` header); the image store holds
    at most ``max_store_bytes``.

    The app's ``state.sdkit`` is the :class:`~sdkit.server.state.ServerState` its endpoints read;
    ``state.queue``, ``state.served`` and ``state.images`` name its parts.
    """
    limits = Limits(
        max_queue=max_queue,
        max_body_bytes=max_body_bytes,
        max_images=max_images,
        max_prompt_chars=max_prompt_chars,
        max_work=max_work,
        max_store_bytes=max_store_bytes,
        request_timeout_s=request_timeout_s,
        body_timeout_s=body_timeout_s,
    )
    keys = check_keys(api_keys)
    served = served_model(model, model_id)
    workers = build_backends(
        backend,
        concurrency,
        device=device,
        dtype=dtype,
        memory=memory,
        threads=threads,
        portable=portable,
        embeddings=embeddings,
    )
    queue = JobQueue(workers, max_queue=max_queue, warmup=model)
    state = ServerState(
        queue=queue,
        served=served,
        images=ImageStore(max_bytes=max_store_bytes),
        keys=keys,
        limits=limits,
        public_url=public_url,
        native_size=NativeSize(queue, model),
        scrub=scrubber(served),
    )
    app = fastapi.FastAPI(title="sdkit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan)
    app.state.sdkit = state
    app.state.queue, app.state.served, app.state.images = state.queue, state.served, state.images
    for exc_class, reply in _ERROR_REPLIES.items():
        app.add_exception_handler(exc_class, reply)
    app.include_router(public)
    app.include_router(api)
    return app


@asynccontextmanager
async def _lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
    queue = app.state.sdkit.queue
    queue.start()
    try:
        yield
    finally:
        await asyncio.to_thread(queue.close)


# --- error replies: every failure in OpenAI's error shape; nothing else (no traceback, no local path) leaks ---


async def _refused(_request: fastapi.Request, exc: InvalidRequestError) -> fastapi.Response:
    return error_response(exc.status, refusal_message(exc), param=exc.field, code=exc.code)


async def _busy(_request: fastapi.Request, exc: ServerBusyError) -> fastapi.Response:
    return error_response(429, str(exc), code="queue_full", headers={"Retry-After": str(exc.retry_after)})


async def _invalid(_request: fastapi.Request, exc: RequestValidationError) -> fastapi.Response:
    first = (exc.errors() or [{}])[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query")]
    message = str(first.get("msg", "invalid request"))
    return error_response(422, message, param=".".join(loc) or None, code="invalid_type")


async def _http(_request: fastapi.Request, exc: HTTPException) -> fastapi.Response:
    codes = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed"}
    return error_response(exc.status_code, str(exc.detail), code=codes.get(exc.status_code), headers=exc.headers)


async def _failed(request: fastapi.Request, exc: SdkitError) -> fastapi.Response:
    scrub = request.app.state.sdkit.scrub
    return error_response(500, scrub(f"generation failed: {exc}"), code="generation_failed")


async def _crashed(_request: fastapi.Request, exc: Exception) -> fastapi.Response:
    return error_response(500, f"internal server error ({type(exc).__name__})", code="internal_error")


#: Exception → reply; Starlette picks the nearest class in an exception's MRO (an InvalidRequestError, also
#: a SdkitError, is _refused).
_ERROR_REPLIES: dict[type[Exception], Any] = {
    InvalidRequestError: _refused,
    ServerBusyError: _busy,
    RequestValidationError: _invalid,
    HTTPException: _http,
    SdkitError: _failed,
    Exception: _crashed,
}
