"""HTTP clients for an OpenAI-style Stable Diffusion API, sync (:class:`Client`) and async
(:class:`AsyncClient`), on httpx (imported when a client first sends).

They only do I/O: the request body comes from :mod:`sdkit.apirequest`, the reply is parsed by
:mod:`sdkit.reply`, the waits come from :mod:`sdkit.retry`. Image URLs in a reply are fetched at
once (they expire), without the API key. Every error is an :class:`~sdkit.APIError` whose text
has the key scrubbed out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .apirequest import ChatRequest, ImagesRequest, endpoint_url, request_headers
from .credentials import resolve_api_key, resolve_base_url
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    ReplyError,
    ValidationError,
    status_error_class,
)
from .reply import (
    ChatCompletion,
    ImageRef,
    ImagesResponse,
    decode_image,
    find_images,
    image_mime,
    parse_chat_reply,
    parse_images_response,
)
from .retry import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, RetryPolicy, retry_after_seconds, should_retry_status
from .secret import Secret, scrub

__all__ = ["APIReply", "AsyncClient", "Client", "FetchedImage", "status_error"]

logger = logging.getLogger("sdkit.client")

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-oneapi-request-id", "openai-request-id")
#: Headers sent when fetching an image URL: never the Authorization header.
IMAGE_HEADERS = {"Accept": "image/*"}


@dataclass(frozen=True, repr=False)
class FetchedImage:
    """An image's bytes (magic number checked), where it was found and, if fetched, its URL."""

    data: bytes
    mime: str
    shape: str
    url: str | None = None

    def __repr__(self) -> str:
        return f"<FetchedImage {self.mime} {len(self.data)} bytes from {self.shape}>"

    def to_pil(self):
        """The image decoded with PIL (RGB or RGBA)."""
        return decode_image(self.data)


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
        """The reply's text exactly as received."""
        return self.reply.raw

    def __repr__(self) -> str:
        return f"<APIReply {len(self.images)} image(s), {self.attempts} attempt(s), {self.elapsed_s:.2f} s>"


def _request_id(headers: Mapping[str, str]) -> str | None:
    lower = {k.lower(): v for k, v in headers.items()}
    return next((lower[h] for h in REQUEST_ID_HEADERS if lower.get(h)), None)


def status_error(
    status_code: int, headers: Mapping[str, str], text: str, *secrets: Secret | str | None
) -> APIStatusError:
    """The exception for a non-2xx reply: the server's ``error.message`` (else its text), the
    request id, and for 429 the ``Retry-After`` hint; every secret scrubbed from message and body."""
    clean = scrub(text, *secrets)
    body: Any = clean
    message = ""
    try:
        body = json.loads(clean)
    except (json.JSONDecodeError, ValueError):
        pass
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
        elif isinstance(err, str):
            message = err
        elif isinstance(body.get("message"), str):
            message = body["message"]
    if not message:
        message = clean.strip()[:300] or "(empty reply)"
    cls = status_error_class(status_code)
    kwargs: dict[str, Any] = {"status_code": status_code, "request_id": _request_id(headers), "body": body}
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


def _transport_error(exc: Exception, method: str, url: str, *secrets: Secret | None) -> APIConnectionError:
    import httpx

    text = scrub(f"{method} {url}: {type(exc).__name__}: {exc}", *secrets)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no reply in time: {text}")
    return APIConnectionError(f"connection failed: {text}")


def _image_error(ref: ImageRef, exc: APIError, raw: str) -> ReplyError:
    return ReplyError(f"the image at {ref.url} could not be fetched: {exc}", raw)


def _checked(data: bytes, ref: ImageRef, raw: str) -> FetchedImage:
    mime = image_mime(data)
    if mime is None:
        where = f"at {ref.url}" if ref.url else f"in the reply ({ref.shape})"
        raise ReplyError(f"the image {where} is not a PNG, JPEG, WebP or GIF (starts {data[:16]!r})", raw)
    return FetchedImage(data=data, mime=mime, shape=ref.shape, url=ref.url)


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
        transport: Any = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._api_key = resolve_api_key(api_key)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ValidationError("timeout", timeout, "must be a number of seconds > 0")
        self.timeout = float(timeout)
        self.connect_timeout = float(min(connect_timeout, timeout))
        if retry is None:
            retry = RetryPolicy() if max_retries is None else RetryPolicy(max_retries=max_retries)
        elif max_retries is not None:
            raise ValidationError("max_retries", max_retries, "give either retry=RetryPolicy(…) or max_retries")
        self.retry = retry
        self.strict = strict
        self._transport = transport
        self._lock = threading.Lock()

    @property
    def has_key(self) -> bool:
        return self._api_key is not None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"<{type(self).__name__} base_url={self.base_url!r} api_key={key} retries={self.retry.max_retries}>"

    def _timeout(self):
        import httpx

        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def _prepare(self, request: ChatRequest | ImagesRequest) -> tuple[str, dict[str, str], bytes]:
        if not isinstance(request, (ChatRequest, ImagesRequest)):
            raise ValidationError("request", request, "must be a ChatRequest or an ImagesRequest")
        url = endpoint_url(self.base_url, request.path)
        return url, request_headers(self._api_key), request.to_json().encode("utf-8")

    def _parse(self, request: ChatRequest | ImagesRequest, text: str) -> ChatCompletion | ImagesResponse:
        """Parse the reply, the key scrubbed first (a relay may echo it): the raw text kept is clean."""
        text = scrub(text, self._api_key)
        try:
            if isinstance(request, ChatRequest):
                return parse_chat_reply(text, strict=self.strict)
            return parse_images_response(text)
        except ReplyError as exc:
            raise ReplyError(str(exc), exc.raw) from None

    def _refs(self, reply: ChatCompletion | ImagesResponse, want_images: bool) -> tuple[ImageRef, ...]:
        refs = find_images(reply) if want_images else ()
        if want_images and not refs:
            quoted = reply.raw if len(reply.raw) <= 300 else reply.raw[:300] + "…"
            raise ReplyError(f"the reply holds no image: {quoted!r}", reply.raw)
        return refs

    def _error_for(self, status: int, headers: Mapping[str, str], text: str) -> APIStatusError:
        return status_error(status, headers, text, self._api_key)


class Client(_Base):
    """A synchronous client. Use as a context manager, or call :meth:`close`.

    ``base_url`` and ``api_key`` default to ``SDKIT_BASE_URL``/``SDKIT_API_KEY`` (then the
    ``OPENAI_…`` pair, then Colab's secrets, then a hidden prompt in a notebook).
    ``api_key=""`` sends no Authorization header. Thread-safe: one client can serve many threads.
    """

    _http: Any = None

    def _client(self):
        with self._lock:  # generate_many's threads share one connection pool
            if self._http is None:
                import httpx

                self._http = httpx.Client(timeout=self._timeout(), transport=self._transport, follow_redirects=True)
            return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, url: str, headers: Mapping[str, str], content: bytes | None):
        """One request with retries; returns (response, attempts) for a 2xx reply, raises otherwise."""
        import httpx

        http = self._client()
        attempts = 0
        while True:
            attempts += 1
            retry_after = None
            try:
                response = http.request(method, url, headers=dict(headers), content=content)
            except httpx.TransportError as exc:
                error: APIError = _transport_error(exc, method, url, self._api_key)
            else:
                if response.is_success:
                    return response, attempts
                error = self._error_for(response.status_code, response.headers, response.text)
                if not should_retry_status(response.status_code):
                    raise _gave_up(error, attempts, self._api_key)
                retry_after = retry_after_seconds(response.headers)
            if attempts > self.retry.max_retries:
                raise _gave_up(error, attempts, self._api_key)
            wait = self.retry.delay(attempts - 1, retry_after)
            logger.info("%s %s failed (%s); retry %d in %.2f s", method, url, error, attempts, wait)
            time.sleep(wait)

    def send(self, request: ChatRequest | ImagesRequest, *, images: bool = True) -> APIReply:
        """Send ``request``; with ``images`` (default) find the reply's images and fetch their URLs,
        raising :class:`~sdkit.ReplyError` when there are none."""
        url, headers, content = self._prepare(request)
        start = time.perf_counter()
        response, attempts = self._send("POST", url, headers, content)
        reply = self._parse(request, response.text)
        fetched = tuple(self._fetch(ref, reply.raw) for ref in self._refs(reply, images))
        return APIReply(reply, fetched, _request_id(response.headers), attempts, time.perf_counter() - start)

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

    def _fetch(self, ref: ImageRef, raw: str) -> FetchedImage:
        if ref.data is not None:
            return _checked(ref.data, ref, raw)
        try:
            response, _ = self._send("GET", ref.url, IMAGE_HEADERS, None)
        except APIError as exc:
            raise _image_error(ref, exc, raw) from None
        return _checked(response.content, ref, raw)


class AsyncClient(_Base):
    """The same as :class:`Client` with ``async`` methods (``await client.chat(…)``)."""

    _http: Any = None

    def _client(self):
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=self._timeout(), transport=self._transport, follow_redirects=True)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, method: str, url: str, headers: Mapping[str, str], content: bytes | None):
        import asyncio

        import httpx

        http = self._client()
        attempts = 0
        while True:
            attempts += 1
            retry_after = None
            try:
                response = await http.request(method, url, headers=dict(headers), content=content)
            except httpx.TransportError as exc:
                error: APIError = _transport_error(exc, method, url, self._api_key)
            else:
                if response.is_success:
                    return response, attempts
                error = self._error_for(response.status_code, response.headers, response.text)
                if not should_retry_status(response.status_code):
                    raise _gave_up(error, attempts, self._api_key)
                retry_after = retry_after_seconds(response.headers)
            if attempts > self.retry.max_retries:
                raise _gave_up(error, attempts, self._api_key)
            wait = self.retry.delay(attempts - 1, retry_after)
            logger.info("%s %s failed (%s); retry %d in %.2f s", method, url, error, attempts, wait)
            await asyncio.sleep(wait)

    async def send(self, request: ChatRequest | ImagesRequest, *, images: bool = True) -> APIReply:
        import asyncio

        url, headers, content = self._prepare(request)
        start = time.perf_counter()
        response, attempts = await self._send("POST", url, headers, content)
        reply = self._parse(request, response.text)
        refs = self._refs(reply, images)
        fetched = tuple(await asyncio.gather(*(self._fetch(ref, reply.raw) for ref in refs)))
        return APIReply(reply, fetched, _request_id(response.headers), attempts, time.perf_counter() - start)

    async def chat(self, request: ChatRequest | str, *, images: bool = True) -> APIReply:
        if isinstance(request, str):
            request = ChatRequest.from_prompt(request)
        return await self.send(request, images=images)

    async def images(self, request: ImagesRequest | str) -> APIReply:
        if isinstance(request, str):
            request = ImagesRequest(prompt=request)
        return await self.send(request)

    async def _fetch(self, ref: ImageRef, raw: str) -> FetchedImage:
        if ref.data is not None:
            return _checked(ref.data, ref, raw)
        try:
            response, _ = await self._send("GET", ref.url, IMAGE_HEADERS, None)
        except APIError as exc:
            raise _image_error(ref, exc, raw) from None
        return _checked(response.content, ref, raw)
