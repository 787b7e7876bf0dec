"""``sdkit serve``: the seed's OpenAI-style Stable Diffusion API, served from a local pipeline.

    POST /v1/chat/completions     the page's request; the last user message is the prompt
    POST /v1/images/generations   OpenAI's images request; ``b64_json`` or ``url``
    GET  /v1/models               the served model, under each name it answers to
    GET  /health                  no key needed: status and queue figures
    GET  /files/images/{id}.png   images handed out as URLs (random ids, kept in memory)

FastAPI and uvicorn are imported when a server is made, never by ``import sdkit``.
Generation runs in worker threads (:mod:`sdkit.jobqueue`), one per backend, with a bounded
queue: when it is full the reply is 429 with ``Retry-After``. Request bodies are read and
checked by :mod:`sdkit.wire`, so every refusal has OpenAI's error shape and names the field.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend import Backend
from .errors import InvalidRequestError, MissingDependencyError, SdkitError, ServerBusyError, ValidationError
from .wire import (
    ServedModel,
    chat_chunks,
    chat_completion,
    chat_role_chunks,
    error_body,
    images_reply,
    load_json,
    models_reply,
    parse_chat_request,
    parse_images_request,
    refusal_message,
    sse_event,
)

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI, Request

    from .jobqueue import Job, JobOutput

__all__ = [
    "API_KEYS_ENV",
    "BackgroundServer",
    "create_app",
    "exposure_warning",
    "keys_from_env",
    "run_server",
    "serve_in_background",
]

#: Comma-separated API keys the server accepts (``--api-key`` adds to them).
API_KEYS_ENV = "SDKIT_SERVER_API_KEYS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_QUEUE = 32
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_IMAGES = 4
IMAGE_TTL_S = 3600.0
MAX_STORED_IMAGES = 256
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{22}\.png$")
_DISCONNECT_POLL_S = 0.25


def _fastapi():
    try:
        import fastapi
        import uvicorn  # noqa: F401 - checked together: both come with the serve extra
    except ImportError:
        raise MissingDependencyError("fastapi and uvicorn", "serve") from None
    return fastapi


def keys_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The keys in ``$SDKIT_SERVER_API_KEYS`` (comma-separated, blanks dropped)."""
    raw = (os.environ if environ is None else environ).get(API_KEYS_ENV, "")
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_keys: Sequence[str]) -> str | None:
    """A warning when the server would listen beyond this machine with no key, else None."""
    if api_keys or is_loopback(host):
        return None
    return (
        f"sdkit serve is listening on {host} without an API key: anyone who can reach this port can use "
        f"the GPU. Set --api-key or ${API_KEYS_ENV}."
    )


def _check_keys(api_keys: Iterable[str]) -> tuple[bytes, ...]:
    keys = tuple(api_keys)
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key):
            raise ValidationError(f"api_keys[{i}]", "<hidden>", "must be a non-empty string without spaces")
    return tuple(k.encode() for k in keys)


def authorized(header: str | None, keys: Sequence[bytes]) -> bool:
    """Whether an ``Authorization`` header carries one of ``keys`` as a Bearer token.
    Every key is compared in constant time, so the reply time does not tell which matched."""
    if not keys:
        return True
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    given = token.strip().encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key)
    return ok


class ImageStore:
    """PNGs handed out as URLs: in memory, under random ids, for ``ttl_s`` seconds, at most
    ``max_items`` (the oldest go first). Names are looked up, never used as paths."""

    def __init__(self, *, ttl_s: float = IMAGE_TTL_S, max_items: int = MAX_STORED_IMAGES) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, png: bytes) -> str:
        name = secrets.token_urlsafe(16) + ".png"
        with self._lock:
            self._expire()
            self._items[name] = (time.monotonic() + self.ttl_s, png)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return name

    def get(self, name: str) -> bytes | None:
        if not _IMAGE_NAME.match(name):
            return None
        with self._lock:
            self._expire()
            item = self._items.get(name)
        return item[1] if item else None

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items and next(iter(self._items.values()))[0] < now:
            self._items.popitem(last=False)


def _served_model(model: str, model_id: str | None) -> ServedModel:
    if model_id is None:
        # A folder is named by its last part (its full path stays private); a hub id is kept whole.
        is_path = model.startswith((".", "/", "~")) or (os.sep in model and Path(model).expanduser().exists())
        model_id = Path(model).name if is_path else model
    return ServedModel(model=model, id=model_id, created=int(time.time()))


def _backends(backend: Backend | Sequence[Backend] | None, concurrency: int, local: dict[str, Any]) -> list[Backend]:
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValidationError("concurrency", concurrency, "must be a positive integer")
    if backend is None:
        from .local import LocalBackend

        # "cuda:0,cuda:1": one set of workers per device.
        device = local.pop("device", None)
        devices = [d.strip() for d in device.split(",")] if device else [None]
        return [LocalBackend(device=d, progress=False, **local) for d in devices for _ in range(concurrency)]
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
    model: str = "tiny",
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
) -> FastAPI:
    """The API as a FastAPI app.

    ``backend`` left out: ``concurrency`` :class:`~sdkit.LocalBackend` s on each ``device``
    (``"cuda:0,cuda:1"`` names several), each a worker running one pipeline call at a time;
    or give one backend, or a list (one worker each).
    ``model`` is what the backend loads (``tiny``, a hub id, a folder); clients name it
    ``model_id`` (default: ``model``, a folder's name for a path) or ``stable-diffusion-api``.
    With ``api_keys``, every ``/v1`` request needs ``Authorization: Bearer KEY``.
    At most ``max_queue`` requests wait (then 429), ``max_images`` images per request,
    ``max_body_bytes`` per body (then 413). Image URLs start with ``public_url`` when given
    (e.g. a tunnel's address), else with the address the client used. ``threads`` and ``portable``
    go to each :class:`~sdkit.LocalBackend` (see :mod:`sdkit.cpu`).
    """
    fastapi = _fastapi()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException

    from .jobqueue import JobQueue

    # FastAPI reads endpoint annotations from this module's globals: bind Request there now,
    # when a server is made, so that importing sdkit stays free of FastAPI.
    globals()["Request"] = fastapi.Request
    for name, value, lo in (
        ("max_queue", max_queue, 0),
        ("max_body_bytes", max_body_bytes, 1),
        ("max_images", max_images, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise ValidationError(name, value, f"must be an integer ≥ {lo}")
    keys = _check_keys(api_keys)
    served = _served_model(model, model_id)
    local = {"device": device, "dtype": dtype, "memory": memory, "threads": threads, "portable": portable}
    workers = _backends(backend, concurrency, local)
    queue = JobQueue(workers, max_queue=max_queue, warmup=model)
    store = ImageStore()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app):
        queue.start()
        try:
            yield
        finally:
            await asyncio.to_thread(queue.close)

    app = fastapi.FastAPI(title="sdkit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.queue = queue
    app.state.served = served
    app.state.images = store

    def error(status: int, message: str, *, param: str | None = None, code: str | None = None, headers=None):
        return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)

    @app.exception_handler(InvalidRequestError)
    async def _refused(_request, exc: InvalidRequestError):
        return error(exc.status, refusal_message(exc), param=exc.field, code=exc.code)

    @app.exception_handler(ServerBusyError)
    async def _busy(_request, exc: ServerBusyError):
        return error(429, str(exc), code="queue_full", headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query")]
        return error(422, str(first.get("msg", "invalid request")), param=".".join(loc) or None, code="invalid_type")

    @app.exception_handler(HTTPException)
    async def _http(_request, exc: HTTPException):
        codes = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed"}
        return error(exc.status_code, str(exc.detail), code=codes.get(exc.status_code), headers=exc.headers)

    @app.exception_handler(SdkitError)
    async def _failed(_request, exc: SdkitError):
        return error(500, f"generation failed: {exc}", code="generation_failed")

    @app.exception_handler(Exception)
    async def _crashed(_request, exc: Exception):
        return error(500, f"internal server error ({type(exc).__name__})", code="internal_error")

    def authorize(request: Request) -> None:
        if not authorized(request.headers.get("authorization"), keys):
            raise HTTPException(
                401,
                "Incorrect or missing API key: send it as a Bearer token in the Authorization header.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [fastapi.Depends(authorize)]

    async def read_json(request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body_bytes:
            raise InvalidRequestError(
                None, None, f"the body is larger than {max_body_bytes} bytes", status=413, code="request_too_large"
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise InvalidRequestError(
                    None, None, f"the body is larger than {max_body_bytes} bytes", status=413, code="request_too_large"
                )
            chunks.append(chunk)
        return load_json(b"".join(chunks))

    async def wait_for(job: Job, request: Request) -> JobOutput | None:
        """The job's output, or None when the client went away (a waiting job is then dropped)."""
        future = asyncio.wrap_future(job.future)
        while True:
            done, _ = await asyncio.wait({future}, timeout=_DISCONNECT_POLL_S)
            if done:
                return future.result()
            if await request.is_disconnected():
                future.cancel()
                return None

    @app.get("/health")
    async def health():
        stats = queue.stats()
        status = "error" if queue.warmup_error else "ok" if stats["ready"] else "loading"
        reply = {"status": status, "model": served.id, "queue": stats}
        if queue.warmup_error:
            reply["error"] = queue.warmup_error
        return reply

    @app.get("/v1/models", dependencies=guarded)
    async def models():
        return models_reply(served)

    @app.get("/v1/models/{name:path}", dependencies=guarded)
    async def model_info(name: str):
        for item in models_reply(served)["data"]:
            if item["id"] == name:
                return item
        raise InvalidRequestError(
            "model", name, f"the model {name!r} does not exist", status=404, code="model_not_found"
        )

    @app.post("/v1/chat/completions", dependencies=guarded)
    async def chat_completions(request: Request):
        req = parse_chat_request(await read_json(request), served, max_images=max_images)
        job = queue.submit(req.params)
        ident = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()), "model": req.model}
        if req.stream:
            return StreamingResponse(
                stream_chat(job, req, ident),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        output = await wait_for(job, request)
        if output is None:
            return Response(status_code=499)
        reply = chat_completion(**ident, pngs=output.pngs, choices=req.choices, prompt_tokens=output.prompt_tokens)
        return JSONResponse(reply)

    async def stream_chat(job: Job, req, ident: dict[str, Any]):
        # Starlette cancels this generator when the client disconnects; the job is dropped with it.
        try:
            for event in chat_role_chunks(**ident, choices=req.choices):
                yield sse_event(event)
            try:
                output = await asyncio.wrap_future(job.future)
            except SdkitError as exc:
                yield sse_event(error_body(500, f"generation failed: {exc}", code="generation_failed"))
            else:
                events = chat_chunks(
                    **ident,
                    pngs=output.pngs,
                    choices=req.choices,
                    prompt_tokens=output.prompt_tokens,
                    include_usage=req.include_usage,
                )
                for event in events:
                    yield sse_event(event)
            yield sse_event("[DONE]")
        finally:
            job.future.cancel()

    @app.post("/v1/images/generations", dependencies=guarded)
    async def images_generations(request: Request):
        req = parse_images_request(await read_json(request), served, max_images=max_images)
        job = queue.submit(req.params)
        output = await wait_for(job, request)
        if output is None:
            return Response(status_code=499)
        import base64

        if req.response_format == "b64_json":
            items = [{"b64_json": base64.b64encode(png).decode("ascii")} for png in output.pngs]
        else:
            base = (public_url or str(request.base_url)).rstrip("/")
            items = [{"url": f"{base}/files/images/{store.put(png)}"} for png in output.pngs]
        return JSONResponse(images_reply(created=int(time.time()), items=items))

    @app.get("/files/images/{name}")
    async def stored_image(name: str):
        png = store.get(name)
        if png is None:
            raise HTTPException(404, "no such image (image URLs expire after an hour)")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return app


def _uvicorn_server(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Server:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def run_server(
    backend: Backend | Sequence[Backend] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_keys: Iterable[str] = (),
    log_level: str = "info",
    **options: Any,
) -> None:
    """Serve until interrupted (what ``sdkit serve`` runs). ``options`` go to :func:`create_app`."""
    keys = tuple(api_keys)
    app = create_app(backend, api_keys=keys, **options)
    _uvicorn_server(app, host, port, log_level).run()


class BackgroundServer:
    """A server running in a background thread: ``url``, ``stop()``, and a context manager."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str, app: FastAPI) -> None:
        self._server = server
        self._thread = thread
        self.url = url
        self.app = app

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<BackgroundServer {self.url} {state}>"

    @property
    def base_url(self) -> str:
        """The URL OpenAI-style clients take as ``base_url`` (``…/v1``)."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving and wait for the thread (running generations finish first)."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_background(
    backend: Backend | Sequence[Backend] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    api_keys: Iterable[str] | None = None,
    log_level: str = "warning",
    wait_ready: bool = True,
    timeout: float = 300.0,
    **options: Any,
) -> BackgroundServer:
    """Start the API in a background thread (for a notebook or Colab) and return once it listens
    (and, with ``wait_ready``, once the model is loaded). ``port=0`` picks a free port.
    ``api_keys`` left out come from ``$SDKIT_SERVER_API_KEYS``. ``options`` go to :func:`create_app`.

    >>> with serve_in_background(model="tiny") as server:    # doctest: +SKIP
    ...     print(server.url)
    """
    keys = keys_from_env() if api_keys is None else tuple(api_keys)
    if (message := exposure_warning(host, keys)) is not None:
        warnings.warn(message, stacklevel=2)
    app = create_app(backend, api_keys=keys, **options)
    server = _uvicorn_server(app, host, port, log_level)
    thread = threading.Thread(target=server.run, name="sdkit-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise SdkitError(f"the server could not start on {host}:{port} (is the port in use?)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise SdkitError(f"the server did not start within {timeout:g} s")
        time.sleep(0.02)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    handle = BackgroundServer(server, thread, f"http://{shown}:{bound_port}", app)
    if wait_ready and not app.state.queue.ready.wait(max(0.0, deadline - time.monotonic())):
        handle.stop()
        raise SdkitError(f"the model did not load within {timeout:g} s")
    return handle
