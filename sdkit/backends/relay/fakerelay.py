"""A fake OpenAI-style Stable Diffusion relay on loopback, for tests, benchmarks and notebooks.

Standard library only (``http.server`` in a thread), bound to 127.0.0.1 on a free port::

    with FakeRelay(delay=0.1) as relay:            # every API reply waits 100 ms
        client = sdkit.Client(relay.url, api_key="sk-test")
        client.chat("a red circle")                 # a 64×64 PNG in the reply, made from the prompt

By default ``POST /v1/chat/completions`` answers with an image in the chosen ``shape`` (one of
:data:`CHAT_SHAPES`) and ``POST /v1/images/generations`` with ``n`` images (``b64_json``, or URLs
when asked). The image is a flat colour drawn from the prompt and, when sent, the ``seed``
(:func:`fake_png`), so tests know the pixels to expect. ``POST /v1/images/edits`` (``multipart/form-data``)
answers with the uploaded ``image`` blended toward that colour by ``strength`` (:func:`fake_edit_png`).
``relay.script(…)`` queues replies that are
used first, in order: any status with or without ``Retry-After``, slow replies, a dropped
connection, garbage bytes, a stream. Every request is recorded in ``relay.requests``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "CHAT_SHAPES",
    "FakeRelay",
    "FakeReply",
    "RecordedRequest",
    "chat_completion",
    "fake_color",
    "fake_edit_png",
    "fake_png",
    "fake_text",
    "image_content",
]

#: Where the default chat reply puts its image(s): each shape a relay was seen to use.
CHAT_SHAPES = (
    "message.images",
    "content-parts",
    "content-parts-image",
    "markdown-data-uri",
    "markdown-url",
    "progress-links",
    "bare-url",
    "bare-base64",
    "data-uri",
    "stream",
)


def fake_color(prompt: str, seed: int | None = None) -> tuple[int, int, int]:
    """The flat RGB colour the fake relay paints for ``prompt`` (and ``seed``)."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]


def fake_png(prompt: str, seed: int | None = None, size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    """The image the fake relay returns for ``prompt``/``seed``: a flat colour, encoded as ``fmt``."""
    from PIL import Image

    image = Image.new("RGB", size, fake_color(prompt, seed))
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    return buf.getvalue()


#: The strength the fake edits endpoint uses when none is sent.
DEFAULT_EDIT_STRENGTH = 0.75


def fake_edit_png(image: bytes, prompt: str, seed: int | None = None, strength: float = DEFAULT_EDIT_STRENGTH,
                  size: tuple[int, int] | None = None) -> bytes:  # fmt: skip
    """What the fake edits endpoint returns: the uploaded ``image`` (resized to ``size``) blended toward the
    flat colour of ``prompt``/``seed`` by ``strength`` (0 = the image, 1 = the colour), as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as f:
        init = f.convert("RGB")
    if size is not None and init.size != size:
        init = init.resize(size, Image.Resampling.LANCZOS)
    out = Image.blend(init, Image.new("RGB", init.size, fake_color(prompt, seed)), strength)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def parse_form(content_type: str, body: bytes) -> dict[str, Any]:
    """A ``multipart/form-data`` body as ``{name: text, or bytes for a file part}`` (later repeats win);
    :class:`ValueError` when it is not one."""
    import email.parser
    import email.policy

    if not content_type.lower().startswith("multipart/form-data"):
        raise ValueError(f"not multipart/form-data: {content_type!r}")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        raise ValueError("the body has no parts")
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise ValueError("a part without a name")
        data = part.get_payload(decode=True) or b""
        form[name] = data if part.get_filename() is not None else data.decode("utf-8")
    return form


_DETAILS = (
    ("golden hour lighting", "soft overcast light", "dramatic rim light", "moonlit night", "neon glow"),
    ("wide angle", "close-up", "aerial view", "eye level", "low angle"),
    ("oil painting", "cinematic photo", "watercolour", "digital art", "35mm film"),
    ("muted palette", "vivid colours", "teal and orange", "pastel tones", "monochrome"),
)


def fake_text(body: Mapping[str, Any]) -> str:
    """What the fake chat model answers: the user's idea with details drawn from it, the system prompt and
    the request's ``seed``, so different seeds give different prompts and the same request the same one."""
    messages = body.get("messages") or [{}]
    idea = str(messages[-1].get("content", "")).strip()
    system = "".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    digest = hashlib.sha256(f"{idea}\x00{system}\x00{body.get('seed')}".encode()).digest()
    details = ", ".join(options[digest[i] % len(options)] for i, options in enumerate(_DETAILS))
    return f"{idea}, {details}, highly detailed, sharp focus"


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def image_content(shape: str, images: Sequence[bytes], urls: Sequence[str] = ()) -> dict[str, Any]:
    """The ``message`` fields (``content`` and maybe ``images``) that carry ``images`` in ``shape``.

    URL shapes need ``urls``: the first ``len(images)`` serve the images; any further ones become
    preview links placed before the final link (``progress-links``, ``bare-url``).
    """
    n = len(images)
    if shape == "message.images":
        return {"content": "", "images": [{"type": "image_url", "image_url": {"url": _data_uri(d)}} for d in images]}
    if shape == "content-parts":
        parts: list[Any] = [{"type": "text", "text": "Here you go."}]
        parts += [{"type": "image_url", "image_url": {"url": _data_uri(d)}} for d in images]
        return {"content": parts}
    if shape == "content-parts-image":
        return {"content": [{"image": u} for u in urls[:n]]}
    if shape == "markdown-data-uri":
        return {"content": "\n".join(f"![image]({_data_uri(d)})" for d in images)}
    if shape == "markdown-url":
        return {"content": "\n".join(f"![image {i}]({u})" for i, u in enumerate(urls[:n]))}
    if shape == "progress-links":
        previews = "".join(f"[预览 {i}]({u})\n" for i, u in enumerate(urls[n:]))
        return {"content": f"排队中… queued\n生成中… generating 45%\n{previews}完成 done\n[点击下载]({urls[n - 1]})"}
    if shape == "bare-url":
        previews = "".join(f"preview: {u}\n" for u in urls[n:])
        return {"content": f"Generating…\n{previews}Done: {urls[n - 1]}"}
    if shape == "bare-base64":
        return {"content": base64.b64encode(images[0]).decode()}
    if shape == "data-uri":
        return {"content": _data_uri(images[0])}
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(CHAT_SHAPES)}")


def chat_completion(message: Mapping[str, Any], *, model: str = "stable-diffusion-api") -> dict[str, Any]:
    """A ``chat.completion`` reply with one choice holding ``message`` (as on the relay page)."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1677652288,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
    }


def _sse(message: Mapping[str, Any], *, pieces: int = 3) -> bytes:
    """``message`` as server-sent ``chat.completion.chunk`` events, content cut in ``pieces``."""
    content = message.get("content") or ""
    step = max(1, -(-len(content) // pieces))
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1677652288}
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    for i in range(0, len(content), step):
        events.append({**head, "choices": [{"index": 0, "delta": {"content": content[i : i + step]}}]})
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


@dataclass(frozen=True)
class FakeReply:
    """One scripted reply. ``drop`` closes the connection without answering; ``raw`` is written
    to the socket as-is instead of an HTTP response."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    delay: float = 0.0
    drop: bool = False
    raw: bytes | None = None

    @classmethod
    def json(cls, obj: Any, *, status: int = 200, headers: Mapping[str, str] | None = None, delay: float = 0.0):
        hdrs = (("Content-Type", "application/json"), *(headers or {}).items())
        return cls(status=status, body=json.dumps(obj).encode(), headers=hdrs, delay=delay)

    @classmethod
    def chat(cls, content: Any, *, delay: float = 0.0, **message: Any) -> FakeReply:
        """A ``chat.completion`` whose message has ``content`` (and any other fields, e.g. ``images``)."""
        return cls.json(chat_completion({"content": content, **message}), delay=delay)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "",
        *,
        retry_after: float | str | None = None,
        request_id: str | None = "req-fake",
        delay: float = 0.0,
    ) -> FakeReply:
        """An OpenAI-style error body ``{"error": {message, type, param, code}}``."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if request_id:
            headers["x-request-id"] = request_id
        body = {"error": {"message": message or f"fake error {status}", "type": "fake", "param": None, "code": status}}
        return cls.json(body, status=status, headers=headers, delay=delay)

    @classmethod
    def dropped(cls, *, delay: float = 0.0) -> FakeReply:
        """Close the connection without a reply."""
        return cls(drop=True, delay=delay)

    @classmethod
    def garbage(cls, *, http: bool = True) -> FakeReply:
        """A 200 whose body is not JSON (``http=True``), or bytes that are not HTTP at all."""
        junk = b"\x00\xff\xfe<html>not json\x1b[0m\x89"
        return cls(body=junk) if http else cls(raw=junk + b"\r\n\r\n")

    @classmethod
    def stream(cls, message: Mapping[str, Any], *, pieces: int = 3, delay: float = 0.0) -> FakeReply:
        return cls(body=_sse(message, pieces=pieces), headers=(("Content-Type", "text/event-stream"),), delay=delay)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float = field(default=0.0)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def form(self) -> dict[str, Any]:
        """The ``multipart/form-data`` fields: text as ``str``, files as ``bytes``."""
        return parse_form(self.headers.get("content-type", ""), self.body)


Script = FakeReply | Callable[[RecordedRequest], FakeReply]


class FakeRelay:
    """A loopback relay; a context manager (``with FakeRelay() as relay: relay.url``).

    ``delay`` seconds are waited before every API reply (``POST``), on top of a reply's own delay.
    ``shape`` picks where the default chat reply puts its image. ``api_key``, when given, is
    required: other keys get a 401 whose message echoes the key sent (as real relays do), so tests
    can check the client scrubs it. ``previews`` adds that many preview links before the final one
    in the link shapes. A chat request for one of ``text_models`` (default ``fake-text``) gets text back
    (:func:`fake_text`): a loopback chat model for prompt ideas.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        shape: str = "markdown-data-uri",
        api_key: str | None = None,
        image_size: tuple[int, int] = (64, 64),
        previews: int = 2,
        text_models: Sequence[str] = ("fake-text",),
    ) -> None:
        if shape not in CHAT_SHAPES:
            raise ValueError(f"unknown shape {shape!r}; known: {', '.join(CHAT_SHAPES)}")
        self.delay = delay
        self.shape = shape
        self.api_key = api_key
        self.image_size = image_size
        self.previews = previews
        self.text_models = tuple(text_models)
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._queue: deque[Script] = deque()
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # --- life cycle ---
    def start(self) -> FakeRelay:
        relay = self

        class Handler(_Handler):
            pass

        Handler.relay = relay
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._server.handle_error = lambda request, client_address: None  # a client that hung up is fine
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-relay", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the base URL: the client adds ``/v1/…``); kept after the relay stops."""
        if self._url is None:
            raise RuntimeError("the relay was never started; use it as a context manager")
        return self._url

    # --- scripting ---
    def script(self, *replies: Script) -> None:
        """Queue replies (or functions of the request returning one), used before the default."""
        with self._lock:
            self._queue.extend(replies)

    def host(self, data: bytes, name: str | None = None) -> str:
        """Serve ``data`` at a URL of this relay (``GET /files/NAME``); returns the URL."""
        name = name or hashlib.sha256(data).hexdigest()[:16] + ".png"
        with self._lock:
            self._files[name] = data
        return f"{self.url}/files/{name}"

    @property
    def api_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    # --- default replies ---
    def default_reply(self, request: RecordedRequest) -> FakeReply:
        if request.method == "GET":
            name = request.path.rsplit("/", 1)[-1]
            data = self._files.get(name) if request.path.startswith("/files/") else None
            if data is None:
                return FakeReply.error(404, f"no file {request.path}")
            return FakeReply(body=data, headers=(("Content-Type", "image/png"),))
        if self.api_key is not None:
            sent = request.headers.get("authorization", "")
            if sent != f"Bearer {self.api_key}":
                return FakeReply.error(401, f"Incorrect API key provided: {sent.removeprefix('Bearer ')}")
        if request.path.endswith("/images/edits"):
            return self._edits_reply(request)
        try:
            body = request.json()
        except ValueError:
            return FakeReply.error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return FakeReply.error(400, "the body must be an object")
        if request.path.endswith("/chat/completions"):
            return self._chat_reply(body)
        if request.path.endswith("/images/generations"):
            return self._images_reply(body)
        return FakeReply.error(404, f"no route {request.path}")

    def _size(self, body: Mapping[str, Any]) -> tuple[int, int]:
        size = body.get("size")
        if isinstance(size, str) and "x" in size:
            w, h = size.lower().split("x")
            return int(w), int(h)
        return self.image_size

    def _chat_reply(self, body: Mapping[str, Any]) -> FakeReply:
        if body.get("model") in self.text_models:
            return FakeReply.json(chat_completion({"content": fake_text(body)}, model=body["model"]))
        messages = body.get("messages") or [{}]
        prompt = str(messages[-1].get("content", ""))
        seed = body.get("seed")
        n = 1
        images = [fake_png(prompt, seed if seed is None else seed + i, self._size(body)) for i in range(n)]
        urls = [self.host(d) for d in images]
        urls += [self.host(fake_png(f"preview {i} {prompt}", seed, (8, 8))) for i in range(self.previews)]
        if self.shape == "stream" or body.get("stream"):
            shape = "markdown-data-uri" if self.shape == "stream" else self.shape
            return FakeReply.stream(image_content(shape, images, urls))
        return FakeReply.json(chat_completion(image_content(self.shape, images, urls), model=body.get("model", "")))

    def _images_reply(self, body: Mapping[str, Any]) -> FakeReply:
        prompt = str(body.get("prompt", ""))
        seed = body.get("seed")
        n = body.get("n") or 1
        items = []
        for i in range(n):
            data = fake_png(prompt, None if seed is None else seed + i, self._size(body))
            if body.get("response_format") == "url":
                items.append({"url": self.host(data), "revised_prompt": prompt})
            else:
                items.append({"b64_json": base64.b64encode(data).decode()})
        return FakeReply.json({"created": 1677652288, "data": items})

    def _edits_reply(self, request: RecordedRequest) -> FakeReply:
        """``/v1/images/edits``: a multipart form with an ``image`` file part; ``n`` images (b64_json or URLs),
        each the image blended toward the prompt's colour by ``strength`` (the seed, when sent, moves the colour)."""
        try:
            form = request.form()
            image = form.get("image")
            if not isinstance(image, bytes):
                return FakeReply.error(400, "image: a file part is required")
            prompt = form.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                return FakeReply.error(400, "prompt is required")
            seed = int(form["seed"]) if "seed" in form else None
            strength = float(form.get("strength", DEFAULT_EDIT_STRENGTH))
            n = int(form.get("n", 1))
            size = self._size(form) if "size" in form else None
            items = []
            for i in range(n):
                data = fake_edit_png(image, prompt, None if seed is None else seed + i, strength, size)
                if form.get("response_format") == "url":
                    items.append({"url": self.host(data), "revised_prompt": prompt})
                else:
                    items.append({"b64_json": base64.b64encode(data).decode()})
        except (ValueError, OSError) as exc:  # not a form, a field that is not a number, an image PIL cannot read
            return FakeReply.error(400, f"bad edits request: {exc}")
        return FakeReply.json({"created": 1677652288, "data": items})

    def _next(self, request: RecordedRequest) -> FakeReply:
        with self._lock:
            self.requests.append(request)
            scripted = self._queue.popleft() if self._queue and request.method == "POST" else None
        if scripted is None:
            return self.default_reply(request)
        return scripted(request) if callable(scripted) else scripted


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connecting at once (benchmarks) must not be refused


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stalls
    relay: FakeRelay

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        relay = self.relay
        with relay._lock:
            relay._in_flight += 1
            relay.max_in_flight = max(relay.max_in_flight, relay._in_flight)
        answered = False

        def leave() -> None:
            nonlocal answered
            if not answered:
                answered = True
                with relay._lock:
                    relay._in_flight -= 1

        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                at=time.monotonic(),
            )
            reply = relay._next(request)
            wait = reply.delay + (relay.delay if self.command == "POST" else 0.0)
            if wait and relay._stopping.wait(wait):
                self.close_connection = True
                return
            leave()  # in flight = received and not yet answered
            if reply.drop:
                self.close_connection = True
                return
            if reply.raw is not None:
                self.wfile.write(reply.raw)
                self.close_connection = True
                return
            self.send_response(reply.status)
            for key, value in reply.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        finally:
            leave()
