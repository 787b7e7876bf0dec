"""Replies from an OpenAI-style Stable Diffusion API, parsed into typed values; images found in them.

Pure functions: text in, frozen dataclasses out. Anything that cannot be used raises
:class:`~sdkit.ReplyError` carrying the reply's raw text, never a ``KeyError``.

Where the image is (``/work/shared/spec/README.md``), tried in this order:

1. ``message.images[]``: ``{"image_url": {"url": …}}`` with a data URI or an https URL;
2. ``content`` as a list of parts: ``{"type": "image_url", "image_url": {"url": …}}`` or ``{"image": …}``;
3. markdown images in the text: ``![…](data:image/png;base64,…)`` or ``![…](https://…)`` (all of them);
4. markdown links and bare URLs, often after progress text: the *final* one (previews come first);
5. a data URI anywhere in the text, or the whole text as bare base64 (PNG/JPEG/WebP/GIF magic sniffed);
6. otherwise no image: :func:`find_images` returns an empty tuple and the caller raises.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdkit.backends.relay.limits import DEFAULT_MAX_IMAGE_PIXELS, Limits
from sdkit.errors import ReplyError, ReplyTooLargeError

__all__ = [
    "ChatChoice",
    "ChatCompletion",
    "ChatMessage",
    "ImageData",
    "ImageRef",
    "ImagesResponse",
    "Usage",
    "check_image",
    "collect_stream",
    "decode_base64_image",
    "decode_image",
    "find_images",
    "image_mime",
    "image_size",
    "parse_chat_completion",
    "parse_chat_reply",
    "parse_images_response",
    "reply_images",
]

#: How much of a reply an error message quotes (the whole text stays on ``ReplyError.raw``).
QUOTE_CHARS = 300


def _quote(raw: str) -> str:
    return raw if len(raw) <= QUOTE_CHARS else raw[:QUOTE_CHARS] + f"… ({len(raw)} characters)"


# --- typed replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ChatMessage:
    """``role`` and ``content`` (a string, or a tuple of content parts); ``images`` as the relay sent them."""

    role: str
    content: str | tuple[Any, ...] | None
    images: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ChatChoice:
    index: int
    message: ChatMessage
    finish_reason: str | None


@dataclass(frozen=True, repr=False)
class ChatCompletion:
    """A ``chat.completion`` (or a collected stream of ``chat.completion.chunk``). ``raw`` is the reply's text."""

    id: str | None
    object: str | None
    created: int | None
    model: str | None
    choices: tuple[ChatChoice, ...]
    usage: Usage | None
    raw: str

    def __repr__(self) -> str:
        return f"<ChatCompletion id={self.id!r} {len(self.choices)} choice(s), {len(self.raw)} characters>"

    @property
    def content(self) -> str:
        """The text of the first choice (content parts' text joined)."""
        content = self.choices[0].message.content if self.choices else None
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))


@dataclass(frozen=True)
class ImageData:
    url: str | None
    b64_json: str | None
    revised_prompt: str | None


@dataclass(frozen=True, repr=False)
class ImagesResponse:
    created: int | None
    data: tuple[ImageData, ...]
    raw: str

    def __repr__(self) -> str:
        return f"<ImagesResponse {len(self.data)} image(s), {len(self.raw)} characters>"


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError, a 5000-digit number, deep nesting
        raise ReplyError(f"the reply is not JSON ({exc.__class__.__name__}: {exc}): {_quote(raw)!r}", raw) from None


def _text(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    return raw


class _Fields:
    """Reads fields from a JSON object, raising ReplyError that names the missing or wrong one."""

    def __init__(self, obj: object, where: str, raw: str) -> None:
        if not isinstance(obj, dict):
            raise ReplyError(f"{where} must be a JSON object, got {type(obj).__name__}: {_quote(raw)!r}", raw)
        self.obj, self.where, self.raw = obj, where, raw

    def get(self, name: str, kind: type | tuple[type, ...], *, required: bool) -> Any:
        """The field's value; a missing or mistyped one raises when ``required``, else gives None."""
        value = self.obj.get(name)
        if value is None:
            if required:
                raise ReplyError(f"the reply has no {self.where}.{name}: {_quote(self.raw)!r}", self.raw)
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            if not required:  # an optional field of an odd type (a float ``created``) is dropped, not fatal
                return None
            raise ReplyError(
                f"{self.where}.{name} has the wrong type ({type(value).__name__}): {_quote(self.raw)!r}", self.raw
            )
        return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _error_in_body(obj: object, raw: str) -> None:
    """A 200 reply whose body is ``{"error": …}`` (some relays do that) is an error."""
    if isinstance(obj, dict) and isinstance(obj.get("error"), (dict, str)) and "choices" not in obj:
        err = obj["error"]
        message = err.get("message") if isinstance(err, dict) else err
        raise ReplyError(f"the reply is an error: {message}", raw)


def _usage(obj: Any, raw: str, *, required: bool) -> Usage | None:
    if obj is None:
        if required:
            raise ReplyError(f"the reply has no usage: {_quote(raw)!r}", raw)
        return None
    f = _Fields(obj, "usage", raw)
    return Usage(
        prompt_tokens=f.get("prompt_tokens", int, required=required) or 0,
        completion_tokens=f.get("completion_tokens", int, required=required) or 0,
        total_tokens=f.get("total_tokens", int, required=required) or 0,
    )


def _content(value: Any, raw: str) -> str | tuple[Any, ...] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return tuple(value)
    raise ReplyError(f"message.content must be a string or a list of parts: {_quote(raw)!r}", raw)


def _message(obj: Any, raw: str) -> ChatMessage:
    f = _Fields(obj, "choices[].message", raw)
    images = f.get("images", list, required=False) or ()
    return ChatMessage(
        role=f.get("role", str, required=False) or "assistant",
        content=_content(obj.get("content"), raw),
        images=tuple(images),
    )


def parse_chat_completion(raw: str | bytes, *, strict: bool = False) -> ChatCompletion:
    """Parse a ``chat.completion`` reply.

    ``choices`` and each choice's ``message`` are always required. The page also marks ``id``,
    ``object``, ``created`` and ``usage`` required; many relays leave some out, so they are only
    checked with ``strict=True`` (else missing ones are None).
    """
    raw = _text(raw)
    obj = _loads(raw)
    _error_in_body(obj, raw)
    top = _Fields(obj, "reply", raw)
    choices_raw = top.get("choices", list, required=True)
    if not choices_raw:
        raise ReplyError(f"the reply has no choices: {_quote(raw)!r}", raw)
    choices = []
    for i, c in enumerate(choices_raw):
        cf = _Fields(c, f"choices[{i}]", raw)
        index = cf.get("index", int, required=False)
        message = _message(cf.get("message", dict, required=True), raw)
        choices.append(
            ChatChoice(
                index=i if index is None else index,
                message=message,
                finish_reason=cf.get("finish_reason", str, required=False),
            )
        )
    return ChatCompletion(
        id=top.get("id", str, required=strict),
        object=top.get("object", str, required=strict),
        created=top.get("created", int, required=strict),
        model=top.get("model", str, required=False),
        choices=tuple(choices),
        usage=_usage(obj.get("usage"), raw, required=strict),
        raw=raw,
    )


def collect_stream(lines: str | bytes | Iterable[str]) -> ChatCompletion:
    """Collect server-sent ``chat.completion.chunk`` events into one :class:`ChatCompletion`.

    Every delta is joined before anything is parsed (some relays send a whole data URI in one
    delta, others split it). ``data: [DONE]`` ends the stream; comments and other fields are skipped.
    """
    if isinstance(lines, (str, bytes)):
        raw = _text(lines)
        lines = raw.splitlines()
    else:
        lines = list(lines)
        raw = "\n".join(lines)
    first: dict[str, Any] = {}
    roles: dict[int, str] = {}
    texts: dict[int, list[str]] = {}
    parts: dict[int, list[Any]] = {}
    images: dict[int, list[Any]] = {}
    finish: dict[int, str | None] = {}
    usage = None
    seen = False
    data_lines: list[str] = []

    def flush() -> None:
        nonlocal usage, seen
        if not data_lines:
            return
        data = "\n".join(data_lines)
        data_lines.clear()
        if data.strip() == "[DONE]":
            return
        chunk = _loads(data)
        _error_in_body(chunk, raw)
        f = _Fields(chunk, "chunk", raw)
        seen = True
        for key in ("id", "object", "created", "model"):
            first.setdefault(key, chunk.get(key))
        if isinstance(chunk.get("usage"), dict):
            usage = _usage(chunk["usage"], raw, required=False)
        for c in f.get("choices", list, required=False) or ():
            cf = _Fields(c, "chunk.choices[]", raw)
            index = cf.get("index", int, required=False) or 0
            delta = cf.get("delta", dict, required=False) or cf.get("message", dict, required=False) or {}
            if isinstance(delta.get("role"), str):
                roles[index] = delta["role"]
            content = delta.get("content")
            if isinstance(content, str):
                texts.setdefault(index, []).append(content)
            elif isinstance(content, list):
                parts.setdefault(index, []).extend(content)
            if isinstance(delta.get("images"), list):
                images.setdefault(index, []).extend(delta["images"])
            if cf.get("finish_reason", str, required=False):
                finish[index] = c["finish_reason"]
            texts.setdefault(index, [])

    for line in lines:
        line = line.rstrip("\r")
        if not line:
            flush()
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
        # comments (":…"), event:, id:, retry: carry nothing we need
    flush()
    if not seen:
        raise ReplyError(f"the stream carried no chunks: {_quote(raw)!r}", raw)
    choices = []
    for index in sorted(texts):
        text = "".join(texts[index])
        content: str | tuple[Any, ...] | None = text
        if parts.get(index):
            content = tuple(parts[index]) + (({"type": "text", "text": text},) if text else ())
        choices.append(
            ChatChoice(
                index=index,
                message=ChatMessage(roles.get(index, "assistant"), content, tuple(images.get(index, ()))),
                finish_reason=finish.get(index),
            )
        )
    if not choices:
        raise ReplyError(f"the stream carried no choices: {_quote(raw)!r}", raw)
    created = first.get("created")
    return ChatCompletion(
        id=first.get("id") if isinstance(first.get("id"), str) else None,
        object="chat.completion",
        created=created if isinstance(created, int) else None,
        model=first.get("model") if isinstance(first.get("model"), str) else None,
        choices=tuple(choices),
        usage=usage,
        raw=raw,
    )


def parse_chat_reply(raw: str | bytes, *, strict: bool = False) -> ChatCompletion:
    """A JSON ``chat.completion`` or a server-sent event stream, whichever ``raw`` is."""
    text = _text(raw)
    head = text.lstrip()[:6]
    if head.startswith(("data:", ":", "event:", "id:")):
        return collect_stream(text)
    return parse_chat_completion(text, strict=strict)


def parse_images_response(raw: str | bytes) -> ImagesResponse:
    """Parse ``{created, data: [{url | b64_json, revised_prompt?}]}``."""
    raw = _text(raw)
    obj = _loads(raw)
    _error_in_body(obj, raw)
    top = _Fields(obj, "reply", raw)
    items = top.get("data", list, required=True)
    data = []
    for i, item in enumerate(items):
        f = _Fields(item, f"data[{i}]", raw)
        url = f.get("url", str, required=False)
        b64 = f.get("b64_json", str, required=False)
        if not url and not b64:
            raise ReplyError(f"data[{i}] has neither url nor b64_json: {_quote(raw)!r}", raw)
        data.append(ImageData(url=url, b64_json=b64, revised_prompt=f.get("revised_prompt", str, required=False)))
    if not data:
        raise ReplyError(f"the reply has no images (empty data): {_quote(raw)!r}", raw)
    return ImagesResponse(created=top.get("created", int, required=False), data=tuple(data), raw=raw)


# --- image bytes -------------------------------------------------------------------------------


def image_mime(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg``, ``image/webp`` or ``image/gif`` by magic number; None otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None


_B64_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")


def _looks_like_image(head: str) -> bool:
    """Whether base64 starting with ``head`` can be an image: its first 12 bytes decoded and sniffed."""
    compact = re.sub(r"\s+", "", head)[:16]
    if len(compact) < 16:
        return True  # too short to tell: decide on the whole text
    try:
        data = base64.urlsafe_b64decode(compact.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        return False
    return image_mime(data) is not None


def decode_base64_image(text: str) -> bytes | None:
    """Bytes of an image given as base64 (standard or URL-safe, padding optional, whitespace ignored),
    or None when ``text`` is not base64 of a PNG/JPEG/WebP/GIF."""
    text = text.strip()
    if len(text) < 16 or not _B64_CHARS.match(text[:256]) or not _looks_like_image(text[:256]):
        return None  # sniffed from the first bytes before the whole text is decoded
    if not _B64_CHARS.match(text):
        return None
    compact = re.sub(r"\s+", "", text)
    compact += "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            data = base64.urlsafe_b64decode(compact)
        else:
            data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if image_mime(data) else None


_DATA_URI = re.compile(r"data:(image/[\w.+-]+)?;base64,([A-Za-z0-9+/=_\-\s]+)", re.IGNORECASE)


def _decode_data_uri(uri: str) -> bytes | None:
    m = _DATA_URI.match(uri.strip())
    return decode_base64_image(m.group(2)) if m else None


def _bomb(exc: Exception, where: str, max_pixels: int) -> ReplyTooLargeError:
    """PIL's DecompressionBombError (raised by ``Image.open`` itself past twice its own limit) in sdkit's terms."""
    from PIL import Image

    found = re.search(r"\((\d+) pixels\)", str(exc))
    count = f"{found.group(1)} pixels" if found else "too many pixels"
    pil = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    if pil is not None and max_pixels >= pil:
        return ReplyTooLargeError(
            f"the image {where} declares {count}, more than PIL decodes (2 × PIL.Image.MAX_IMAGE_PIXELS = {pil}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS as well",
            limit="max_image_pixels",
            value=max_pixels,
        )
    return ReplyTooLargeError(
        f"the image {where} declares {count}, more than max_image_pixels={max_pixels}; "
        f"{Limits.hint('max_image_pixels')}",
        limit="max_image_pixels",
        value=max_pixels,
    )


def _open(data: bytes, where: str, max_pixels: int):
    """The image opened lazily (header read, pixels not decoded); PIL's errors as ReplyError."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, where, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ReplyError(f"the image {where} cannot be decoded: {exc}", "") from None


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height read from the image's header, its pixels not decoded."""
    with _open(data, "given", DEFAULT_MAX_IMAGE_PIXELS) as image:
        return image.size


def _check_pixels(size: tuple[int, int], max_pixels: int, where: str) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ReplyTooLargeError(
            f"the image {where} is {width}×{height} = {width * height} pixels, more than "
            f"max_image_pixels={max_pixels}; {Limits.hint('max_image_pixels')}",
            limit="max_image_pixels",
            value=max_pixels,
        )


def check_image(data: bytes, *, max_bytes: int, max_pixels: int, where: str = "") -> str:
    """The image's MIME type once its magic number, byte count and pixel count (from its header,
    before anything is decoded) are checked; ReplyError (ReplyTooLargeError for a limit) otherwise."""
    where = where or "in the reply"
    if len(data) > max_bytes:
        raise ReplyTooLargeError(
            f"the image {where} is {len(data)} bytes, more than max_image_bytes={max_bytes}; "
            f"{Limits.hint('max_image_bytes')}",
            limit="max_image_bytes",
            value=max_bytes,
        )
    mime = image_mime(data)
    if mime is None:
        raise ReplyError(f"the image {where} is not a PNG, JPEG, WebP or GIF (starts {data[:16]!r})")
    with _open(data, where, max_pixels) as image:
        _check_pixels(image.size, max_pixels, where)
    return mime


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
    """A PIL image from bytes checked by magic number (RGB or RGBA), refused before decoding when it
    declares more than ``max_pixels`` pixels. Raises ReplyError otherwise."""
    if image_mime(data) is None:
        head = data[:40]
        raise ReplyError(f"the bytes are not a PNG, JPEG, WebP or GIF image (start: {head!r})", _text(head))
    from PIL import Image

    image = _open(data, "to decode", max_pixels)
    _check_pixels(image.size, max_pixels, "to decode")
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, "to decode", max_pixels) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ReplyError(f"the image cannot be decoded: {exc}", "") from None
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
    return image


# --- finding images ----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ImageRef:
    """An image found in a reply: its bytes (``data``) or a ``url`` to fetch at once.

    ``shape`` says where it was found: ``message.images``, ``content-parts``, ``markdown-image``,
    ``link``, ``data-uri``, ``base64`` or ``images-api``.
    """

    shape: str
    data: bytes | None = None
    url: str | None = None

    def __repr__(self) -> str:
        what = f"{len(self.data)} bytes" if self.data is not None else repr(self.url)
        return f"<ImageRef {self.shape} {what}>"


def _ref(shape: str, target: str) -> ImageRef | None:
    target = target.strip()
    if target.lower().startswith("data:"):
        data = _decode_data_uri(target)
        return ImageRef(shape, data=data) if data else None
    if target.lower().startswith(("http://", "https://")):
        return ImageRef(shape, url=target)
    data = decode_base64_image(target)
    return ImageRef(shape, data=data) if data else None


def _url_of(item: Any) -> str | None:
    """The URL in ``{"image_url": {"url": …}}``, ``{"image_url": "…"}``, ``{"url": …}``, ``{"image": …}``
    or a plain string."""
    if isinstance(item, str):
        return item
    if not isinstance(item, Mapping):
        return None
    for key in ("image_url", "url", "image", "b64_json"):
        value = item.get(key)
        if isinstance(value, Mapping):
            value = value.get("url")
        if isinstance(value, str) and value:
            if key == "b64_json" and not value.startswith("data:"):
                value = "data:image/png;base64," + value
            return value
    return None


# Linear time on any text (a relay's reply can be megabytes of ``![`` or ``[``): no part can run
# past a bracket or parenthesis that may open the next candidate.
_MD_IMAGE = re.compile(r"!\[[^\[\]]*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_MD_LINK = re.compile(r"(?<!!)\[[^\[\]]*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_BARE_URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+")
_IMAGE_EXT = re.compile(r"\.(png|jpe?g|webp|gif)(?:$|[?#])", re.IGNORECASE)


#: A text with more ``[`` than this is not searched for markdown (shapes 3 and 4): the search is
#: linear but costs about a microsecond a bracket, and no real reply holds that many.
MAX_MARKDOWN_BRACKETS = 100_000


def _images_in_text(text: str) -> list[ImageRef]:
    """Shapes 3–5 in a text: markdown images (all), else the final link or bare URL, else a data URI
    anywhere, else the whole text as base64."""
    markdown = text.count("[") <= MAX_MARKDOWN_BRACKETS
    found = [r for m in _MD_IMAGE.finditer(text) if (r := _ref("markdown-image", m.group(1)))] if markdown else []
    if found:
        return found
    rest = _MD_IMAGE.sub(" ", text) if markdown else text
    links: list[tuple[int, str]] = [(m.start(), m.group(1)) for m in _MD_LINK.finditer(rest)] if markdown else []
    bare_text = _MD_LINK.sub(lambda m: " " * len(m.group(0)), rest) if markdown else text
    bare = (m for m in _BARE_URL.finditer(bare_text))
    last_link: tuple[int, str] | None = None  # the final link, and the final one that names an image file
    last_image: tuple[int, str] | None = None
    for pos, url in itertools.chain(links, ((m.start(), m.group(0).rstrip(".,;:!?，。")) for m in bare)):
        if not url.lower().startswith(("http://", "https://")):
            continue
        if last_link is None or pos > last_link[0]:
            last_link = (pos, url)
        if (last_image is None or pos > last_image[0]) and _IMAGE_EXT.search(url):
            last_image = (pos, url)
    if last_link is not None:
        return [ImageRef("link", url=(last_image or last_link)[1])]
    uris = [data for m in _DATA_URI.finditer(text) if (data := decode_base64_image(m.group(2)))]
    if uris:
        return [ImageRef("data-uri", data=d) for d in uris]
    data = decode_base64_image(text)
    return [ImageRef("base64", data=data)] if data else []


def _images_in_message(message: ChatMessage) -> list[ImageRef]:
    found = [r for item in message.images if (url := _url_of(item)) and (r := _ref("message.images", url))]
    if found:
        return found
    content = message.content
    if isinstance(content, tuple):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif (url := _url_of(part)) and (r := _ref("content-parts", url)):
                found.append(r)
        return found or _images_in_text("\n".join(texts))
    if isinstance(content, str):
        return _images_in_text(content)
    return []


def find_images(reply: ChatCompletion | ImagesResponse) -> tuple[ImageRef, ...]:
    """Every image of a reply, in order, each as bytes or a URL (see the module's docstring).

    For a chat reply each choice is searched; an empty tuple means the reply holds no image.
    """
    if isinstance(reply, ImagesResponse):
        refs = []
        for item in reply.data:
            if item.b64_json:
                data = _decode_data_uri(item.b64_json) or decode_base64_image(item.b64_json)
                if data is None:
                    raise ReplyError("a b64_json image is not base64 of a PNG, JPEG, WebP or GIF", reply.raw)
                refs.append(ImageRef("images-api", data=data))
            elif item.url:
                ref = _ref("images-api", item.url)
                if ref is None:
                    raise ReplyError(f"an image url is neither http(s) nor an image data URI: {item.url[:80]!r}", "")
                refs.append(ref)
        return tuple(refs)
    return tuple(r for choice in reply.choices for r in _images_in_message(choice.message))


def reply_images(raw: str | bytes, kind: str) -> list[bytes]:
    """The images a stored reply carries itself (base64, data URIs; linked ones are left out), parsed as
    the reply of backend ``kind`` (``"images"``: the Images API, else a chat completion). A study's
    verify checks its archived replies with this."""
    parsed = parse_images_response(raw) if kind == "images" else parse_chat_reply(raw)
    return [ref.data for ref in find_images(parsed) if ref.data is not None]
