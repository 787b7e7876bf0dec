"""Running the API under uvicorn: :func:`run_server` in the foreground (what ``sdkit serve`` runs),
:func:`serve_in_background` in a thread (for a notebook or Colab), returning a :class:`BackgroundServer`.

The port is bound before the model loads, so a busy port fails at once. A connection that has not
sent a request's headers within ``header_timeout_s`` is closed (uvicorn alone would let a client
that sends a byte every few seconds hold it for ever), and query strings are cut from the access log.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from sdkit.errors import MissingDependencyError

try:
    import h11
    import uvicorn
    from fastapi import FastAPI
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError:
    raise MissingDependencyError("fastapi and uvicorn", "serve") from None

from sdkit.backends.base import Backend
from sdkit.errors import ModelError, SdkitError, ValidationError
from sdkit.server.app import create_app
from sdkit.server.auth import exposure_warning, keys_from_env
from sdkit.server.defaults import DEFAULT_HEADER_TIMEOUT_S, DEFAULT_HOST, DEFAULT_PORT
from sdkit.server.jobqueue import JobQueue

__all__ = ["BackgroundServer", "run_server", "serve_in_background"]


class _NoQueryStrings(logging.Filter):
    """Cuts query strings out of uvicorn's access log lines: a key sent as ``?api_key=…`` (never
    accepted) must not land in a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
        return True


class _HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that has not sent a request's headers within
    ``header_timeout_s`` (uvicorn only times out idle keep-alive connections, so a client sending a
    header byte every few seconds would hold its connection for ever)."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
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
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's Server, saying where it listens when given a bound socket (uvicorn is silent then)."""

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if sockets is not None and self.started:
            self._log_started_message(sockets)


def _uvicorn_server(
    app: FastAPI, host: str, port: int, log_level: str, *, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
) -> uvicorn.Server:
    if isinstance(header_timeout_s, bool) or not isinstance(header_timeout_s, (int, float)) or header_timeout_s <= 0:
        raise ValidationError("header_timeout_s", header_timeout_s, "must be a positive number of seconds")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
        http=type("HeaderTimeoutH11Protocol", (_HeaderTimeoutH11Protocol,), {"header_timeout_s": header_timeout_s}),
    )
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in access.filters):
        access.addFilter(_NoQueryStrings())
    return _Server(config)


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening): a bad or busy port fails here, at once."""
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


def _load_error(queue: JobQueue) -> SdkitError:
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
        app.state.sdkit.queue.preload()
        server = _uvicorn_server(app, host, port, log_level, header_timeout_s=header_timeout_s)
        server.run(sockets=[sock])
    finally:
        sock.close()


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
    queue = app.state.sdkit.queue
    if wait_ready:
        if not queue.ready.wait(max(0.0, deadline - time.monotonic())):
            handle.stop()
            raise SdkitError(f"the model did not load within {timeout:g} s")
        if queue.warmup_error is not None:
            handle.stop()
            raise _load_error(queue)
    return handle
