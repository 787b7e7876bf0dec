"""HTTP clients for an OpenAI-style Stable Diffusion API, sync (:class:`Client`) and async
(:class:`AsyncClient`), on httpx (imported when a client first sends).

They only do I/O: the request body comes from :mod:`sdkit.backends.relay.apirequest`, the reply is parsed by
:mod:`sdkit.backends.relay.reply`, the waits come from :mod:`sdkit.backends.relay.retry`. Image URLs in a
reply are fetched at once (they expire), without the API key. Every error is an :class:`~sdkit.APIError` whose text
has the key scrubbed out.

A relay is not trusted. Bodies are read streamed, inflated here in bounded steps and counted
against :class:`~sdkit.Limits`; one wall-clock deadline covers each try (a sync read blocked past
it is woken by shutting its socket down); redirects are followed by hand so that their bodies are
never read; images are checked (bytes, magic number, pixels from the header) before anything
decodes them. Whatever comes back from a reply (request id, text, raw reply) has the key masked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import sys
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdkit.backends.relay.apirequest import (
    ChatRequest,
    ImageEditRequest,
    ImagesRequest,
    endpoint_url,
    request_headers,
)
from sdkit.backends.relay.credentials import resolve_api_key, resolve_base_url
from sdkit.backends.relay.limits import ERROR_BODY_BYTES, Limits
from sdkit.backends.relay.reply import (
    ChatCompletion,
    ImageRef,
    ImagesResponse,
    check_image,
    decode_image,
    find_images,
    parse_chat_reply,
    parse_images_response,
)
from sdkit.backends.relay.retry import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    retry_after_seconds,
    should_retry_status,
)
from sdkit.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    ReplyError,
    ReplyTooLargeError,
    ValidationError,
    status_error_class,
)
from sdkit.secret import Secret, scrub

__all__ = ["APIReply", "AsyncClient", "Client", "FetchedImage", "status_error"]

logger = logging.getLogger("sdkit.backends.relay.client")

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-oneapi-request-id", "openai-request-id")
#: Longer request ids are cut (a relay chooses them; they end up in manifests and PNGs).
MAX_REQUEST_ID_CHARS = 200
#: Headers sent when fetching an image URL: never the Authorization header.
IMAGE_HEADERS = {"Accept": "image/*"}
#: Content codings the client decodes itself, bounded (httpx's decoders inflate without a limit).
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
#: Largest piece inflated at once.
_INFLATE_STEP = 1 << 20


@dataclass(frozen=True, repr=False)
class FetchedImage:
    """An image's bytes (magic number, size and pixel count checked), where it was found and, if
    fetched, its URL."""

    data: bytes
    mime: str
    shape: str
    url: str | None = None

    def __repr__(self) -> str:
        return f"<FetchedImage {self.mime} {len(self.data)} bytes from {self.shape}>"

    def to_pil(self):
        """The image decoded with PIL (RGB or RGBA); its pixel count was checked when it was received."""
        return decode_image(self.data, max_pixels=sys.maxsize)


@dataclass(frozen=True, repr=False)
class APIReply:
    """A parsed reply, its images (already fetched) and how it went."""

    reply: ChatCompletion | ImagesResponse
    images: tuple[FetchedImage, ...]
    request_id: str | None
    attempts: int
    elapsed_s: float

    @property
    def raw(self) -> str:
        """The reply's text as received, the API key masked if the relay echoed it."""
        return self.reply.raw

    def __repr__(self) -> str:
        return f"<APIReply {len(self.images)} image(s), {self.attempts} attempt(s), {self.elapsed_s:.2f} s>"


def _request_id(headers: Mapping[str, str], *secrets: Secret | str | None) -> str | None:
    """The relay's request id, every secret scrubbed out (a relay may echo the key in it), cut short."""
    lower = {k.lower(): v for k, v in headers.items()}
    value = next((lower[h] for h in REQUEST_ID_HEADERS if lower.get(h)), None)
    if value is None:
        return None
    value = scrub(value, *secrets)
    return value if len(value) <= MAX_REQUEST_ID_CHARS else value[:MAX_REQUEST_ID_CHARS] + "…"


def status_error(
    status_code: int, headers: Mapping[str, str], text: str, *secrets: Secret | str | None
) -> APIStatusError:
    """The exception for a non-2xx reply: the server's ``error.message`` (else its text), the
    request id, and for 429 the ``Retry-After`` hint; every secret scrubbed from message, body and
    request id."""
    clean = scrub(text, *secrets)
    body: Any = clean
    message = ""
    try:
        body = json.loads(clean)
    except (json.JSONDecodeError, ValueError, RecursionError):
        pass
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
        elif isinstance(err, str):
            message = err
        elif isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(body.get("errors"), list) and body["errors"]:  # Stability: {id, name, errors: [...]}
            name = f"{body['name']}: " if isinstance(body.get("name"), str) else ""
            message = name + "; ".join(str(e) for e in body["errors"])
        elif body.get("detail"):  # Flux (FastAPI): {detail: text or [{loc, msg, type}]}
            detail = body["detail"]
            items = detail if isinstance(detail, list) else [detail]
            message = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in items)
    if not message:
        message = clean.strip()[:300] or "(empty reply)"
    cls = status_error_class(status_code)
    request_id = _request_id(headers, *secrets)
    if request_id is None and isinstance(body, dict) and isinstance(body.get("id"), str) and "errors" in body:
        request_id = body["id"][:MAX_REQUEST_ID_CHARS]  # Stability names the request in the body
    kwargs: dict[str, Any] = {"status_code": status_code, "request_id": request_id, "body": body}
    if cls is RateLimitError:
        kwargs["retry_after"] = retry_after_seconds(headers)
    return cls(message, **kwargs)


def _gave_up(error: APIError, attempts: int, *secrets: Secret | None) -> APIError:
    """``error`` with "(gave up after N attempts)" added when there was more than one."""
    if attempts <= 1:
        return error
    note = f" (gave up after {attempts} attempts)"
    if isinstance(error, APIStatusError):
        kwargs: dict[str, Any] = {
            "status_code": error.status_code,
            "request_id": error.request_id,
            "body": error.body,
        }
        if isinstance(error, RateLimitError):
            kwargs["retry_after"] = error.retry_after
        return type(error)(error.message + note, **kwargs)
    return type(error)(scrub(str(error), *secrets) + note)


def _url_password(url: str) -> Secret | None:
    """The password written into ``url`` (``https://user:password@host``), if any: httpx sends it as
    Basic auth, so it is a credential to mask like the key."""
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return Secret(password) if password else None


def _transport_error(exc: Exception, method: str, url: str, *secrets: Secret | None) -> APIConnectionError:
    import httpx

    text = scrub(f"{method} {url}: {type(exc).__name__}: {exc}", *secrets)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no reply in time: {text}")
    return APIConnectionError(f"connection failed: {text}")


def _image_error(ref: ImageRef, exc: APIError, raw: str) -> ReplyError:
    if isinstance(exc, ReplyTooLargeError):  # keeps its type: the limit and how to raise it
        return ReplyTooLargeError(f"the image at {ref.url}: {exc}", limit=exc.limit, value=exc.value, raw=raw)
    return ReplyError(f"the image at {ref.url} could not be fetched: {exc}", raw)


class _Deadline(Exception):
    """Raised inside an exchange when its wall-clock limit passed (turned into APITimeoutError)."""


@dataclass(frozen=True)
class _Budget:
    """What one exchange may take: ``max_bytes`` of body (``limit`` names the setting) within ``seconds``."""

    max_bytes: int
    limit: str
    seconds: float
    time_limit: str
    max_redirects: int


class _Body:
    """One reply body read from its raw bytes: inflated here (gzip or deflate, one layer, in
    bounded steps) and counted, so a bomb or an endless body stops at the limit.

    An error reply (``truncate``) is cut at :data:`ERROR_BODY_BYTES` instead of failing.
    """

    def __init__(self, response: Any, budget: _Budget, *, truncate: bool, what: str) -> None:
        self.max = ERROR_BODY_BYTES if truncate else budget.max_bytes
        self.budget, self.truncate, self.what = budget, truncate, what
        self.parts: list[bytes] = []
        self.size = self.raw_size = 0
        self.full = False
        header = response.headers.get("content-encoding", "")
        codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
        if len(codings) > 1 or (codings and codings[0] not in _WBITS):
            raise ReplyError(f"{what} is encoded as {header!r}; the client reads only gzip or deflate, one layer")
        self.coding = codings[0] if codings else None
        self._inflater = zlib.decompressobj(_WBITS[self.coding]) if self.coding else None
        declared = response.headers.get("content-length", "")
        if not truncate and declared.strip().isdigit() and int(declared) > self.max:
            self._too_large(f"declares {int(declared)} bytes (Content-Length), more than")

    def _too_large(self, how: str) -> None:
        name = self.budget.limit
        raise ReplyTooLargeError(
            f"{self.what} {how} {name}={self.max}; {Limits.hint(name)}", limit=name, value=self.max
        )

    def _add(self, piece: bytes) -> None:
        if self.size + len(piece) > self.max:
            if not self.truncate:
                self._too_large("is larger than")
            piece = piece[: self.max - self.size]
            self.full = True
        self.parts.append(piece)
        self.size += len(piece)

    def feed(self, chunk: bytes) -> None:
        """Take the next raw chunk; raises ReplyTooLargeError past the limit (sets ``full`` when truncating)."""
        self.raw_size += len(chunk)
        if self.raw_size > self.max and not self.truncate:
            self._too_large("is larger than")
        if self._inflater is None:
            self._add(chunk)
            return
        data = chunk
        while data and not self.full and not self._inflater.eof:
            try:
                out = self._inflater.decompress(data, min(self.max - self.size + 1, _INFLATE_STEP))
            except zlib.error as exc:
                if self.coding == "deflate" and not self.size and self._inflater.unused_data == b"":
                    self.coding = "raw deflate"  # some servers send deflate without the zlib header
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise ReplyError(f"{self.what} says Content-Encoding: {self.coding} but is not ({exc})") from None
            self._add(out)
            data = self._inflater.unconsumed_tail

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _text_of(body: bytes, response: Any) -> str:
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except (LookupError, UnicodeError):  # a charset Python does not know, or one that cannot replace
        return body.decode("utf-8", errors="replace")


def _redirect(response: Any, redirects: int, budget: _Budget, what: str) -> Any:
    """The request to send for a redirect (httpx's, which drops Authorization across origins), or None."""
    nxt = response.next_request
    if nxt is None:
        return None
    if redirects >= budget.max_redirects:
        raise APIConnectionError(
            f"{what} redirects more than max_redirects={budget.max_redirects} times; {Limits.hint('max_redirects')}"
        )
    if nxt.url.scheme not in ("http", "https"):
        raise APIConnectionError(f"{what} redirects to {str(nxt.url)[:100]!r}: only http(s) URLs are followed")
    return nxt


class _Watchdog:
    """Ends a sync exchange at its deadline: shuts down the sockets it uses, which wakes a read
    blocked in another thread (httpx's timeouts are per read, so a byte a second never trips them)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: every new connection's stream is watched."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: Any) -> None:
        try:  # the plain socket's shutdown, also for a TLS socket (its own would drop its state)
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


class _Base:
    """What the sync and async clients share: configuration, request preparation, reply parsing."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: Secret | str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        strict: bool = False,
        limits: Limits | None = None,
        transport: Any = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._api_key = resolve_api_key(api_key)
        #: masked in every message and kept reply: the key, and a password written into the base URL
        self._secrets = (self._api_key, _url_password(self.base_url))
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < math.inf:
            raise ValidationError("timeout", timeout, "must be a finite number of seconds > 0")
        self.timeout = float(timeout)
        self.connect_timeout = float(min(connect_timeout, timeout))
        if retry is None:
            retry = RetryPolicy() if max_retries is None else RetryPolicy(max_retries=max_retries)
        elif max_retries is not None:
            raise ValidationError("max_retries", max_retries, "give either retry=RetryPolicy(…) or max_retries")
        if limits is None:
            limits = Limits()
        elif not isinstance(limits, Limits):
            raise ValidationError("limits", limits, "must be a sdkit.Limits")
        self.retry = retry
        self.limits = limits
        self.strict = strict
        self._transport = transport
        self._lock = threading.Lock()

    @property
    def has_key(self) -> bool:
        return self._api_key is not None

    def scrub(self, text: str, *, patterns: bool = True) -> str:
        """``text`` with this client's API key masked (see :func:`sdkit.secret.scrub`); ``patterns=False``
        masks the key only, leaving a reply kept as received byte-exact otherwise."""
        return scrub(text, *self._secrets, patterns=patterns)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        url = self.scrub(self.base_url)
        return f"<{type(self).__name__} base_url={url!r} api_key={key} retries={self.retry.max_retries}>"

    def _http_options(self) -> dict[str, Any]:
        import httpx

        # No idle connections kept: each request opens its own, so its deadline can watch its socket.
        pool = httpx.Limits(max_keepalive_connections=0)
        return {"timeout": self._timeout(self.timeout), "transport": self._transport, "limits": pool}

    def _timeout(self, seconds: float):
        import httpx

        return httpx.Timeout(seconds, connect=min(self.connect_timeout, seconds))

    def _prepare(self, request: ChatRequest | ImagesRequest | ImageEditRequest) -> tuple[str, dict[str, str], bytes]:
        if not isinstance(request, (ChatRequest, ImagesRequest, ImageEditRequest)):
            raise ValidationError("request", request, "must be a ChatRequest, an ImagesRequest or an ImageEditRequest")
        url = endpoint_url(self.base_url, request.path)
        headers = request_headers(self._api_key)
        if isinstance(request, ImageEditRequest):  # multipart, made once: a retry sends the same bytes
            headers["Content-Type"], body = request.to_multipart()
            return url, headers, body
        return url, headers, request.to_json().encode("utf-8")

    def _reply_budget(self, request: ChatRequest | ImagesRequest | ImageEditRequest) -> _Budget:
        lim = self.limits
        if getattr(request, "stream", False):
            return _Budget(
                lim.max_reply_bytes, "max_reply_bytes", lim.stream_timeout, "stream_timeout", lim.max_redirects
            )
        return _Budget(lim.max_reply_bytes, "max_reply_bytes", self.timeout, "timeout", lim.max_redirects)

    def _image_budget(self) -> _Budget:
        lim = self.limits
        return _Budget(lim.max_image_bytes, "max_image_bytes", self.timeout, "timeout", lim.max_redirects)

    def _idle_error(self, method: str, url: str, budget: _Budget) -> APITimeoutError:
        """A read that waited ``timeout`` (for a stream: between two chunks; otherwise the whole budget)."""
        if budget.time_limit == "timeout":
            return self._deadline_error(method, url, budget)
        text = f"{method} {url}: nothing received for {self.timeout:g} s (timeout={self.timeout:g}); "
        return APITimeoutError(scrub(text, *self._secrets) + Limits.hint("timeout"))

    def _deadline_error(self, method: str, url: str, budget: _Budget) -> APITimeoutError:
        name = budget.time_limit
        return APITimeoutError(
            scrub(
                f"{method} {url}: no complete reply within {budget.seconds:g} s ({name}={budget.seconds:g}); ",
                *self._secrets,
            )
            + Limits.hint(name)
        )

    def _parse(
        self, request: ChatRequest | ImagesRequest | ImageEditRequest, text: str
    ) -> ChatCompletion | ImagesResponse:
        """Parse the reply, the key masked first (a relay may echo it): the raw text kept is the reply
        byte for byte but for the key."""
        text = scrub(text, *self._secrets, patterns=False)
        try:
            if isinstance(request, ChatRequest):
                return parse_chat_reply(text, strict=self.strict)
            return parse_images_response(text)
        except ReplyError as exc:
            raise ReplyError(scrub(str(exc), *self._secrets), exc.raw) from None
        except RecursionError:  # JSON nested thousands deep
            raise ReplyError("the reply is nested too deeply to parse", text) from None

    def _refs(self, reply: ChatCompletion | ImagesResponse, want_images: bool) -> tuple[ImageRef, ...]:
        refs = find_images(reply) if want_images else ()
        if want_images and not refs:
            quoted = reply.raw if len(reply.raw) <= 300 else reply.raw[:300] + "…"
            raise ReplyError(f"the reply holds no image: {quoted!r}", reply.raw)
        if len(refs) > self.limits.max_images:
            raise ReplyTooLargeError(
                f"the reply holds {len(refs)} images, more than max_images={self.limits.max_images}; "
                + Limits.hint("max_images"),
                limit="max_images",
                value=self.limits.max_images,
                raw=reply.raw,
            )
        return refs

    def _checked(self, data: bytes, ref: ImageRef, raw: str) -> FetchedImage:
        where = f"at {ref.url}" if ref.url else f"in the reply ({ref.shape})"
        try:
            mime = check_image(
                data, max_bytes=self.limits.max_image_bytes, max_pixels=self.limits.max_image_pixels, where=where
            )
        except ReplyTooLargeError as exc:
            raise ReplyTooLargeError(str(exc), limit=exc.limit, value=exc.value, raw=raw) from None
        except ReplyError as exc:
            raise ReplyError(str(exc), raw) from None
        return FetchedImage(data=data, mime=mime, shape=ref.shape, url=ref.url)


class Client(_Base):
    """A synchronous client. Use as a context manager, or call :meth:`close`.

    ``base_url`` and ``api_key`` default to ``SDKIT_BASE_URL``/``SDKIT_API_KEY`` (then the
    ``OPENAI_…`` pair, then Colab's secrets, then a hidden prompt in a notebook).
    ``api_key=""`` sends no Authorization header. ``timeout`` is the wall-clock limit of one
    request (each try, each image download), from connecting to the reply's last byte; a streamed
    reply gets ``limits.stream_timeout`` instead. ``limits`` (:class:`~sdkit.Limits`) bounds what
    a relay may send. Thread-safe: one client can serve many threads.
    """

    _http: Any = None

    def _client(self):
        with self._lock:  # generate_many's threads share one client
            if self._http is None:
                import httpx

                self._http = httpx.Client(**self._http_options())
            return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, method: str, url: str, headers: Mapping[str, str], content: bytes | None, budget: _Budget):
        """One try: send, follow redirects, read the body within ``budget``; (status, headers, body, text)."""
        import httpx

        http = self._client()
        dog = _Watchdog(budget.seconds)
        what = f"the reply from {url}"
        try:
            request = http.build_request(
                method,
                url,
                headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
                content=content,
                timeout=self._timeout(min(self.timeout, budget.seconds)),
                extensions={"trace": dog.trace},
            )
            redirects = 0
            while True:
                response = http.send(request, stream=True)
                try:
                    dog.watch(response.extensions.get("network_stream"))
                    nxt = _redirect(response, redirects, budget, what)
                    if nxt is None:
                        body = _Body(response, budget, truncate=not response.is_success, what=what)
                        for chunk in response.iter_raw():
                            body.feed(chunk)
                            if body.full or dog.expired:
                                break
                        if dog.expired:
                            raise _Deadline
                        data = body.bytes()
                        return response.status_code, response.headers, data, _text_of(data, response)
                finally:
                    response.close()
                redirects += 1
                request = nxt
        except (_Deadline, httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as exc:
            if dog.expired:
                raise self._deadline_error(method, url, budget) from None
            if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
                raise self._idle_error(method, url, budget) from None
            if isinstance(exc, httpx.TransportError):
                raise
            raise APIConnectionError(scrub(f"{method} {url}: {type(exc).__name__}: {exc}", *self._secrets)) from None
        finally:
            dog.cancel()

    def _send(self, method: str, url: str, headers: Mapping[str, str], content: bytes | None, budget: _Budget):
        """One request with retries; returns (headers, text, attempts) for a 2xx reply, raises otherwise."""
        import httpx

        attempts = 0
        while True:
            attempts += 1
            retry_after = None
            try:
                status, response_headers, body, text = self._exchange(method, url, headers, content, budget)
            except httpx.TransportError as exc:
                error: APIError = _transport_error(exc, method, url, *self._secrets)
            else:
                if 200 <= status < 300:
                    return response_headers, body, text, attempts
                error = status_error(status, response_headers, text, *self._secrets)
                if not should_retry_status(status):
                    raise _gave_up(error, attempts, *self._secrets)
                retry_after = retry_after_seconds(response_headers)
            if attempts > self.retry.max_retries:
                raise _gave_up(error, attempts, *self._secrets)
            wait = self.retry.delay(attempts - 1, retry_after)
            logger.info("%s %s failed (%s); retry %d in %.2f s", method, self.scrub(url), error, attempts, wait)
            time.sleep(wait)

    def send(self, request: ChatRequest | ImagesRequest | ImageEditRequest, *, images: bool = True) -> APIReply:
        """Send ``request``; with ``images`` (default) find the reply's images and fetch their URLs,
        raising :class:`~sdkit.ReplyError` when there are none."""
        url, headers, content = self._prepare(request)
        start = time.perf_counter()
        response_headers, _, text, attempts = self._send("POST", url, headers, content, self._reply_budget(request))
        reply = self._parse(request, text)
        fetched = tuple(self._fetch(ref, reply.raw) for ref in self._refs(reply, images))
        rid = _request_id(response_headers, *self._secrets)
        return APIReply(reply, fetched, rid, attempts, time.perf_counter() - start)

    def chat(self, request: ChatRequest | str, *, images: bool = True) -> APIReply:
        """``POST /v1/chat/completions``; a string is taken as the prompt."""
        if isinstance(request, str):
            request = ChatRequest.from_prompt(request)
        return self.send(request, images=images)

    def images(self, request: ImagesRequest | str) -> APIReply:
        """``POST /v1/images/generations``; a string is taken as the prompt."""
        if isinstance(request, str):
            request = ImagesRequest(prompt=request)
        return self.send(request)

    def edit(self, request: ImageEditRequest) -> APIReply:
        """``POST /v1/images/edits`` (img2img): the init image uploaded as ``multipart/form-data``."""
        if not isinstance(request, ImageEditRequest):
            raise ValidationError("request", request, "must be an ImageEditRequest")
        return self.send(request)

    def _fetch(self, ref: ImageRef, raw: str) -> FetchedImage:
        if ref.data is not None:
            return self._checked(ref.data, ref, raw)
        try:
            _, body, _, _ = self._send("GET", ref.url, IMAGE_HEADERS, None, self._image_budget())
        except APIError as exc:
            raise _image_error(ref, exc, raw) from None
        return self._checked(body, ref, raw)


class AsyncClient(_Base):
    """The same as :class:`Client` with ``async`` methods (``await client.chat(…)``)."""

    _http: Any = None

    def _client(self):
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(**self._http_options())
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _read(self, method: str, url: str, headers: Mapping[str, str], content: bytes | None, budget: _Budget):
        http = self._client()
        what = f"the reply from {url}"
        request = http.build_request(
            method,
            url,
            headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
            content=content,
            timeout=self._timeout(min(self.timeout, budget.seconds)),
        )
        redirects = 0
        while True:
            response = await http.send(request, stream=True)
            try:
                nxt = _redirect(response, redirects, budget, what)
                if nxt is None:
                    body = _Body(response, budget, truncate=not response.is_success, what=what)
                    async for chunk in response.aiter_raw():
                        body.feed(chunk)
                        if body.full:
                            break
                    data = body.bytes()
                    return response.status_code, response.headers, data, _text_of(data, response)
            finally:
                await response.aclose()
            redirects += 1
            request = nxt

    async def _exchange(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | None, budget: _Budget
    ):
        """One try within ``budget`` (the whole of it under one wall-clock limit)."""
        import httpx

        try:
            return await asyncio.wait_for(self._read(method, url, headers, content, budget), budget.seconds)
        except asyncio.TimeoutError:
            raise self._deadline_error(method, url, budget) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as exc:
            if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
                raise self._idle_error(method, url, budget) from None
            if isinstance(exc, httpx.TransportError):
                raise
            raise APIConnectionError(scrub(f"{method} {url}: {type(exc).__name__}: {exc}", *self._secrets)) from None

    async def _send(self, method: str, url: str, headers: Mapping[str, str], content: bytes | None, budget: _Budget):
        import httpx

        attempts = 0
        while True:
            attempts += 1
            retry_after = None
            try:
                status, response_headers, body, text = await self._exchange(method, url, headers, content, budget)
            except httpx.TransportError as exc:
                error: APIError = _transport_error(exc, method, url, *self._secrets)
            else:
                if 200 <= status < 300:
                    return response_headers, body, text, attempts
                error = status_error(status, response_headers, text, *self._secrets)
                if not should_retry_status(status):
                    raise _gave_up(error, attempts, *self._secrets)
                retry_after = retry_after_seconds(response_headers)
            if attempts > self.retry.max_retries:
                raise _gave_up(error, attempts, *self._secrets)
            wait = self.retry.delay(attempts - 1, retry_after)
            logger.info("%s %s failed (%s); retry %d in %.2f s", method, self.scrub(url), error, attempts, wait)
            await asyncio.sleep(wait)

    async def send(self, request: ChatRequest | ImagesRequest | ImageEditRequest, *, images: bool = True) -> APIReply:
        url, headers, content = self._prepare(request)
        start = time.perf_counter()
        budget = self._reply_budget(request)
        response_headers, _, text, attempts = await self._send("POST", url, headers, content, budget)
        reply = self._parse(request, text)
        refs = self._refs(reply, images)
        fetched = tuple(await asyncio.gather(*(self._fetch(ref, reply.raw) for ref in refs)))
        rid = _request_id(response_headers, *self._secrets)
        return APIReply(reply, fetched, rid, attempts, time.perf_counter() - start)

    async def chat(self, request: ChatRequest | str, *, images: bool = True) -> APIReply:
        if isinstance(request, str):
            request = ChatRequest.from_prompt(request)
        return await self.send(request, images=images)

    async def images(self, request: ImagesRequest | str) -> APIReply:
        if isinstance(request, str):
            request = ImagesRequest(prompt=request)
        return await self.send(request)

    async def edit(self, request: ImageEditRequest) -> APIReply:
        if not isinstance(request, ImageEditRequest):
            raise ValidationError("request", request, "must be an ImageEditRequest")
        return await self.send(request)

    async def _fetch(self, ref: ImageRef, raw: str) -> FetchedImage:
        if ref.data is not None:
            return self._checked(ref.data, ref, raw)
        try:
            _, body, _, _ = await self._send("GET", ref.url, IMAGE_HEADERS, None, self._image_budget())
        except APIError as exc:
            raise _image_error(ref, exc, raw) from None
        return self._checked(body, ref, raw)
