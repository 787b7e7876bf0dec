"""``sdkit serve``: the seed's OpenAI-style Stable Diffusion API, served from a local pipeline.

    POST /v1/chat/completions     the page's request; the last user message is the prompt
    POST /v1/images/generations   OpenAI's images request; ``b64_json`` or ``url``
    GET  /v1/models               the served model, under each name it answers to
    GET  /health                  no key needed: status and queue figures
    GET  /files/images/{id}.png   images handed out as URLs (random ids, kept in memory)

FastAPI and uvicorn are imported when a server is made, never by ``import sdkit``.
Generation runs in worker threads (:mod:`sdkit.server.jobqueue`), one per backend, with a bounded
queue: when it is full the reply is 429 with ``Retry-After``. Request bodies are read and
checked by :mod:`sdkit.server.wire`, so every refusal has OpenAI's error shape and names the field.

Against hostile or careless clients: bodies are capped in bytes, nesting and read time; prompts
in characters; each request's work in pixel-steps (width × height × steps × images, by default
what the served model does at its native size in 200 steps); each request has a deadline (504),
and a request whose client leaves is dropped, or stopped at its next step if it runs.
Connections that do not finish their headers in time are closed. Prompts are never logged,
and query strings never reach the access log.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
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

from sdkit.backends.base import Backend
from sdkit.backends.local.embedded import NATIVE_SIZE, is_embedded
from sdkit.errors import (
    InvalidRequestError,
    MissingDependencyError,
    ModelError,
    SdkitError,
    ServerBusyError,
    ValidationError,
)
from sdkit.server.wire import (
    DEFAULT_MAX_PROMPT_CHARS,
    WORK_STEPS_AT_NATIVE,
    ServedModel,
    chat_chunks,
    chat_completion,
    chat_role_chunks,
    check_work,
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
    import socket

    import uvicorn
    from fastapi import FastAPI, Request

    from sdkit.server.jobqueue import Job, JobOutput

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
#: The image store's cap in bytes (the oldest images go first).
MAX_STORED_BYTES = 128 << 20
#: Seconds a request may take, waiting and generating, before it is stopped and answered 504.
DEFAULT_REQUEST_TIMEOUT_S = 300.0
#: Seconds a client has to send a request's headers, and then its body, before it is dropped.
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
#: Native side assumed for a model whose pipeline does not say (SD 1.x).
FALLBACK_NATIVE_SIZE = 512
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
    ``max_items`` of them and ``max_bytes`` in all (the oldest go first). Names are looked up,
    never used as paths."""

    def __init__(
        self, *, ttl_s: float = IMAGE_TTL_S, max_items: int = MAX_STORED_IMAGES, max_bytes: int = MAX_STORED_BYTES
    ) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """The bytes of the PNGs held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def put(self, png: bytes) -> str:
        name = secrets.token_urlsafe(16) + ".png"
        with self._lock:
            self._expire()
            self._items[name] = (time.monotonic() + self.ttl_s, png)
            self._bytes += len(png)
            while len(self._items) > self.max_items or (self._bytes > self.max_bytes and len(self._items) > 1):
                self._pop_oldest()
        return name

    def get(self, name: str) -> bytes | None:
        if not _IMAGE_NAME.match(name):
            return None
        with self._lock:
            self._expire()
            item = self._items.get(name)
        return item[1] if item else None

    def _pop_oldest(self) -> None:
        _, (_, png) = self._items.popitem(last=False)
        self._bytes -= len(png)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items and next(iter(self._items.values()))[0] < now:
            self._pop_oldest()


def _served_model(model: str, model_id: str | None) -> ServedModel:
    if model_id is None:
        # A folder is named by its last part (its full path stays private); a hub id is kept whole.
        is_path = model.startswith((".", "/", "~")) or (os.sep in model and Path(model).expanduser().exists())
        model_id = Path(model).name if is_path else model
    return ServedModel(model=model, id=model_id, created=int(time.time()))


def _scrubber(served: ServedModel):
    """A function that puts the model's public name in place of its local path in a message
    (an error naming ``/home/me/models/x`` is shown to clients as naming ``x``)."""
    forms = {served.model}
    try:
        path = Path(served.model).expanduser()
        forms |= {str(path), str(path.absolute()), str(path.resolve())}
    except (OSError, RuntimeError):  # pragma: no cover - odd paths
        pass
    forms = sorted((f for f in forms if len(f) > 1 and f != served.id), key=len, reverse=True)

    def scrub(text: str) -> str:
        for form in forms:
            text = text.replace(form, served.id)
        return text

    return scrub


def _pipe_native_size(pipe: Any) -> int | None:
    """The side a diffusers pipeline draws at by default (UNet sample size × VAE scale)."""
    try:
        return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
    except (AttributeError, TypeError, ValueError):
        return None


def _backends(backend: Backend | Sequence[Backend] | None, concurrency: int, local: dict[str, Any]) -> list[Backend]:
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValidationError("concurrency", concurrency, "must be a positive integer")
    if backend is None:
        from sdkit.backends.local.pipeline import LocalBackend

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
    max_work: int | None = None,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    max_store_bytes: int = MAX_STORED_BYTES,
) -> FastAPI:
    """The API as a FastAPI app.

    ``backend`` left out: ``concurrency`` :class:`~sdkit.LocalBackend` s on each ``device``
    (``"cuda:0,cuda:1"`` names several), each a worker running one pipeline call at a time;
    or give one backend, or a list (one worker each).
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
    at most ``max_store_bytes``. ``threads`` and ``portable`` go to each :class:`~sdkit.LocalBackend`
    (see :mod:`sdkit.backends.local.cpu`).
    """
    fastapi = _fastapi()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException

    from sdkit.server.jobqueue import JobQueue

    # FastAPI reads endpoint annotations from this module's globals: bind Request there now,
    # when a server is made, so that importing sdkit stays free of FastAPI.
    globals()["Request"] = fastapi.Request
    for name, value, lo in (
        ("max_queue", max_queue, 0),
        ("max_body_bytes", max_body_bytes, 1),
        ("max_images", max_images, 1),
        ("max_prompt_chars", max_prompt_chars, 1),
        ("max_store_bytes", max_store_bytes, 1),
        ("max_work", 1 if max_work is None else max_work, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise ValidationError(name, value, f"must be an integer ≥ {lo}")
    for name, seconds in (("request_timeout_s", request_timeout_s), ("body_timeout_s", body_timeout_s)):
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValidationError(name, seconds, "must be a positive number of seconds")
    keys = _check_keys(api_keys)
    served = _served_model(model, model_id)
    local = {"device": device, "dtype": dtype, "memory": memory, "threads": threads, "portable": portable}
    workers = _backends(backend, concurrency, local)
    queue = JobQueue(workers, max_queue=max_queue, warmup=model)
    store = ImageStore(max_bytes=max_store_bytes)
    scrub = _scrubber(served)
    native: list[int] = []  # the served model's native side, once known

    def native_size() -> int:
        if native:
            return native[0]
        side = None
        if queue.ready.is_set() and not queue.warmup_error:
            load = getattr(queue.backends[0], "load", None)
            if callable(load):
                try:
                    side = _pipe_native_size(load(served.model))
                except Exception:  # the request will report it
                    side = None
            if side is None:
                side = FALLBACK_NATIVE_SIZE if not is_embedded(served.model) else NATIVE_SIZE
            native.append(side)
            return side
        return NATIVE_SIZE if is_embedded(served.model) else FALLBACK_NATIVE_SIZE

    def work_budget() -> int:
        return max_work if max_work is not None else native_size() ** 2 * WORK_STEPS_AT_NATIVE

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
        return error(500, scrub(f"generation failed: {exc}"), code="generation_failed")

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
        try:
            async with asyncio.timeout(body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise InvalidRequestError(
                            None,
                            None,
                            f"the body is larger than {max_body_bytes} bytes",
                            status=413,
                            code="request_too_large",
                        )
                    chunks.append(chunk)
        except TimeoutError:
            raise InvalidRequestError(
                None, None, f"the body was not sent within {body_timeout_s:g} s", status=408, code="request_timeout"
            ) from None
        return load_json(b"".join(chunks))

    def parse(kind, request_data: dict[str, Any]):
        req = kind(request_data, served, max_images=max_images, max_prompt_chars=max_prompt_chars)
        check_work(req.params, max_work=work_budget(), native_size=native_size())
        return req

    def timed_out() -> JSONResponse:
        message = f"the request did not finish within this server's limit of {request_timeout_s:g} s; it was stopped"
        return error(504, message, code="timeout")

    async def wait_for(job: Job, request: Request, started: float) -> JobOutput | Response:
        """The job's output; or, when the client went away (499) or the deadline passed (504), a
        reply, the job being dropped if it waits or stopped at its next step if it runs."""
        future = asyncio.wrap_future(job.future)
        deadline = started + request_timeout_s

        def abandon() -> None:
            job.abandon()
            future.cancel()  # nobody will read its outcome

        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    abandon()
                    return timed_out()
                done, _ = await asyncio.wait({future}, timeout=min(_DISCONNECT_POLL_S, left))
                if done:
                    return future.result()
                if await request.is_disconnected():
                    abandon()
                    return Response(status_code=499)
        except asyncio.CancelledError:
            abandon()
            raise

    @app.get("/health")
    async def health():
        stats = queue.stats()
        status = "error" if queue.warmup_error else "ok" if stats["ready"] else "loading"
        reply = {"status": status, "model": served.id, "queue": stats}
        if queue.warmup_error:
            reply["error"] = scrub(queue.warmup_error)
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
        started = time.monotonic()
        req = parse(parse_chat_request, await read_json(request))
        job = queue.submit(req.params)
        ident = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()), "model": req.model}
        if req.stream:
            return StreamingResponse(
                stream_chat(job, req, ident, started),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        output = await wait_for(job, request, started)
        if isinstance(output, Response):
            return output
        reply = chat_completion(**ident, pngs=output.pngs, choices=req.choices, prompt_tokens=output.prompt_tokens)
        return JSONResponse(reply)

    async def stream_chat(job: Job, req, ident: dict[str, Any], started: float):
        # Starlette cancels this generator when the client disconnects; the job is dropped with it.
        try:
            for event in chat_role_chunks(**ident, choices=req.choices):
                yield sse_event(event)
            left = max(0.0, started + request_timeout_s - time.monotonic())
            try:
                output = await asyncio.wait_for(asyncio.wrap_future(job.future), left)
            except TimeoutError:
                message = f"the request did not finish within this server's limit of {request_timeout_s:g} s"
                yield sse_event(error_body(504, message, code="timeout"))
            except SdkitError as exc:
                yield sse_event(error_body(500, scrub(f"generation failed: {exc}"), code="generation_failed"))
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
            job.abandon()

    @app.post("/v1/images/generations", dependencies=guarded)
    async def images_generations(request: Request):
        started = time.monotonic()
        req = parse(parse_images_request, await read_json(request))
        job = queue.submit(req.params)
        output = await wait_for(job, request, started)
        if isinstance(output, Response):
            return output
        import base64

        if req.response_format == "b64_json":
            items = [{"b64_json": base64.b64encode(png).decode("ascii")} for png in output.pngs]
        else:
            base = (public_url or _own_url(request)).rstrip("/")
            items = [{"url": f"{base}/files/images/{store.put(png)}"} for png in output.pngs]
        return JSONResponse(images_reply(created=int(time.time()), items=items))

    @app.get("/files/images/{name}")
    async def stored_image(name: str):
        png = store.get(name)
        if png is None:
            raise HTTPException(404, "no such image (image URLs expire after an hour)")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return app


def _own_url(request: Request) -> str:
    """``http://host:port`` of the socket the request came in on (never its ``Host`` header)."""
    host, port = request.scope.get("server") or (DEFAULT_HOST, DEFAULT_PORT)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}" if port is None else f"http://{shown}:{port}"


class _NoQueryStrings(logging.Filter):
    """Cuts query strings out of uvicorn's access log lines: a key sent as ``?api_key=…`` (never
    accepted) must not land in a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
        return True


def _h11_with_header_timeout(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection that has not sent a request's headers
    within ``header_timeout_s`` (uvicorn only times out idle keep-alive connections, so a
    client sending a header byte every few seconds would hold its connection for ever)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._cancel_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutH11Protocol


def _uvicorn_server(
    app: FastAPI, host: str, port: int, log_level: str, *, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
) -> uvicorn.Server:
    import uvicorn

    if isinstance(header_timeout_s, bool) or not isinstance(header_timeout_s, (int, float)) or header_timeout_s <= 0:
        raise ValidationError("header_timeout_s", header_timeout_s, "must be a positive number of seconds")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
        http=_h11_with_header_timeout(header_timeout_s),
    )
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in access.filters):
        access.addFilter(_NoQueryStrings())
    return _logging_server(uvicorn.Server)(config)


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening): a bad or busy port fails here, at once."""
    import socket

    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValidationError("port", port, "must be an integer from 0 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ValidationError("host", host, f"is not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise SdkitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _load_error(queue) -> SdkitError:
    exc = queue.warmup_exception
    if isinstance(exc, SdkitError):
        return exc
    return ModelError(f"the model could not be loaded: {queue.warmup_error}")


def run_server(
    backend: Backend | Sequence[Backend] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_keys: Iterable[str] = (),
    log_level: str = "info",
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    **options: Any,
) -> None:
    """Serve until interrupted (what ``sdkit serve`` runs). ``options`` go to :func:`create_app`.

    The port is taken and the model loaded before anything listens: a busy port or a model that
    does not load raises (:class:`~sdkit.errors.SdkitError`) at once, with nothing served.
    A connection that has not sent a request's headers within ``header_timeout_s`` is closed."""
    keys = tuple(api_keys)
    sock = _bind(host, port)
    try:
        app = create_app(backend, api_keys=keys, **options)
        app.state.queue.preload()
        server = _uvicorn_server(app, host, port, log_level, header_timeout_s=header_timeout_s)
        server.run(sockets=[sock])
    finally:
        sock.close()


def _logging_server(server_cls: type) -> type:
    """uvicorn's Server, saying where it listens when given a bound socket (uvicorn is silent then)."""

    class Server(server_cls):  # type: ignore[misc, valid-type]
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if sockets is not None and self.started:
                self._log_started_message(sockets)

    return Server


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
    (and, with ``wait_ready``, once the model is loaded; a model that does not load raises its
    error). ``port=0`` picks a free port.
    ``api_keys`` left out come from ``$SDKIT_SERVER_API_KEYS``. ``header_timeout_s`` as for
    :func:`run_server`; other ``options`` go to :func:`create_app`.

    >>> with serve_in_background(model="tiny") as server:    # doctest: +SKIP
    ...     print(server.url)
    """
    keys = keys_from_env() if api_keys is None else tuple(api_keys)
    if (message := exposure_warning(host, keys)) is not None:
        warnings.warn(message, stacklevel=2)
    header_timeout_s = options.pop("header_timeout_s", DEFAULT_HEADER_TIMEOUT_S)
    app = create_app(backend, api_keys=keys, **options)
    server = _uvicorn_server(app, host, port, log_level, header_timeout_s=header_timeout_s)
    sock = _bind(host, port)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    bound_port = sock.getsockname()[1]
    thread = threading.Thread(target=run, name="sdkit-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise SdkitError(f"the server could not start on {host}:{bound_port}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise SdkitError(f"the server did not start within {timeout:g} s")
        time.sleep(0.02)
    shown = f"[{host}]" if ":" in host else host
    handle = BackgroundServer(server, thread, f"http://{shown}:{bound_port}", app)
    queue = app.state.queue
    if wait_ready:
        if not queue.ready.wait(max(0.0, deadline - time.monotonic())):
            handle.stop()
            raise SdkitError(f"the model did not load within {timeout:g} s")
        if queue.warmup_error is not None:
            handle.stop()
            raise _load_error(queue)
    return handle
