"""Requests to an OpenAI-style Stable Diffusion API, as pure values.

``ChatRequest`` is ``POST /v1/chat/completions`` with every field of the relay page
(``/work/shared/spec``); ``ImagesRequest`` is ``POST /v1/images/generations``; ``ImageEditRequest`` is
``POST /v1/images/edits`` (img2img: the init image as a ``multipart/form-data`` file part). All validate on
construction, naming the field and the value, and ``to_body()`` gives the JSON body with the
fields in the page's order (model, messages, then only the optional fields that are set).

SD extras (seed, negative_prompt, num_inference_steps, guidance_scale, size) are top-level body
fields that some relays read and others refuse: they are sent only when the caller opts in by
passing an :class:`SDExtras`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdkit.backends.local.embedded import is_embedded
from sdkit.errors import ValidationError
from sdkit.params import is_int
from sdkit.secret import Secret

if TYPE_CHECKING:
    from sdkit.params import GenerationParams

__all__ = [
    "CHAT_PATH",
    "DEFAULT_API_MODEL",
    "EDITS_PATH",
    "IMAGES_PATH",
    "ROLES",
    "ChatRequest",
    "ImageEditRequest",
    "ImagesRequest",
    "Message",
    "SDExtras",
    "api_model",
    "endpoint_url",
    "request_headers",
]

#: The page's optional chat-completions fields, in the order they are sent.
OPTIONAL_CHAT_FIELDS = (
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
)

CHAT_PATH = "/v1/chat/completions"
IMAGES_PATH = "/v1/images/generations"
EDITS_PATH = "/v1/images/edits"
#: The model of the page's example.
DEFAULT_API_MODEL = "stable-diffusion-api"
#: The message roles OpenAI's chat API accepts ("function": its older form of "tool").
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
RESPONSE_FORMATS = ("url", "b64_json")
MAX_STOP = 4


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(name: str, value: object, lo: float, hi: float) -> None:
    if value is None:
        return
    if not _is_number(value):
        raise ValidationError(name, value, "must be a finite number")
    if not lo <= value <= hi:
        raise ValidationError(name, value, f"must be between {lo:g} and {hi:g}")


def _check_min_int(name: str, value: object, lo: int) -> None:
    if value is None:
        return
    if not is_int(value):
        raise ValidationError(name, value, "must be an integer")
    if value < lo:
        raise ValidationError(name, value, f"must be at least {lo}")


def _check_text(name: str, value: object, *, empty_ok: bool = True) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError(name, value, "must be a string")
    if not empty_ok and not value.strip():
        raise ValidationError(name, value, "must not be empty")


def _check_size(name: str, value: object) -> None:
    if value is None:
        return
    parts = value.lower().split("x") if isinstance(value, str) else []
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValidationError(name, value, "must look like WIDTHxHEIGHT, e.g. 512x512")


def api_model(params: GenerationParams, default: str = DEFAULT_API_MODEL) -> str:
    """The model name to send for ``params``: ``params.model``, unless it names an embedded local
    model (the default ``tiny``), which no API serves; then ``default``."""
    return default if is_embedded(params.model) else params.model


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` joined with an endpoint path; a base that already ends in ``/v1`` is not doubled.

    >>> endpoint_url("https://relay.example/v1/", CHAT_PATH)
    'https://relay.example/v1/chat/completions'
    """
    base = base_url.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[len("/v1") :]
    return base + path


def request_headers(api_key: Secret | str | None) -> dict[str, str]:
    """The page's three headers, in the page's order. No key → no Authorization header."""
    headers = {"Accept": "application/json"}
    key = api_key.reveal() if isinstance(api_key, Secret) else api_key
    if key:
        headers["Authorization"] = f"Bearer {key}"
    headers["Content-Type"] = "application/json"
    return headers


@dataclass(frozen=True)
class Message:
    """One chat message. ``content`` is a string, or a list of content parts (dicts)."""

    role: str
    content: str | tuple[Mapping[str, Any], ...]

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValidationError("messages.role", self.role, f"must be one of {', '.join(ROLES)}")
        if isinstance(self.content, list):
            object.__setattr__(self, "content", tuple(self.content))
        if isinstance(self.content, tuple):
            if not all(isinstance(p, Mapping) for p in self.content):
                raise ValidationError("messages.content", self.content, "content parts must be objects")
        elif not isinstance(self.content, str):
            raise ValidationError("messages.content", self.content, "must be a string or a list of content parts")

    def to_dict(self) -> dict[str, Any]:
        content = self.content if isinstance(self.content, str) else [dict(p) for p in self.content]
        return {"role": self.role, "content": content}


def _as_message(index: int, item: object) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"role", "content"})
        if unknown:
            raise ValidationError(f"messages[{index}]", dict(item), f"unknown key {unknown[0]!r}")
        if "role" not in item or "content" not in item:
            raise ValidationError(f"messages[{index}]", dict(item), "needs both role and content")
        return Message(item["role"], item["content"])
    raise ValidationError(f"messages[{index}]", item, "must be a Message or a {role, content} mapping")


@dataclass(frozen=True)
class SDExtras:
    """Stable Diffusion fields some relays read at the top level of the body. Only those set are sent."""

    seed: int | None = None
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    size: str | None = None

    def __post_init__(self) -> None:
        if self.seed is not None:
            if not is_int(self.seed):
                raise ValidationError("seed", self.seed, "must be an integer")
            if not 0 <= self.seed <= 2**32 - 1:
                raise ValidationError("seed", self.seed, "must be between 0 and 4294967295")
        _check_text("negative_prompt", self.negative_prompt)
        if self.num_inference_steps is not None:
            _check_min_int("num_inference_steps", self.num_inference_steps, 1)
            if self.num_inference_steps > 100:
                raise ValidationError("num_inference_steps", self.num_inference_steps, "must be between 1 and 100")
        _check_range("guidance_scale", self.guidance_scale, 0, 100)
        _check_size("size", self.size)

    @classmethod
    def from_params(cls, params: GenerationParams, *, seed: int | None = None) -> SDExtras:
        """The extras that carry ``params`` (seed ``seed`` if given, else ``params.seed``)."""
        size = f"{params.width}x{params.height}" if params.width and params.height else None
        return cls(
            seed=params.seed if seed is None else seed,
            negative_prompt=params.negative_prompt or None,
            num_inference_steps=params.num_inference_steps,
            guidance_scale=params.guidance_scale,
            size=size,
        )

    def to_fields(self) -> dict[str, Any]:
        names = ("seed", "negative_prompt", "num_inference_steps", "guidance_scale", "size")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass(frozen=True)
class ChatRequest:
    """``POST /v1/chat/completions``, every field of the page plus ``stream`` and opt-in SD extras.

    Build one from a prompt with :meth:`from_prompt`. Setting both ``temperature`` and ``top_p``
    warns (the page advises changing one, not both) but is allowed.
    """

    messages: tuple[Message, ...]
    model: str = DEFAULT_API_MODEL
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | tuple[str, ...] | None = None
    max_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: Mapping[str, float] | None = None
    user: str | None = None
    stream: bool = False
    extras: SDExtras | None = None

    path = CHAT_PATH

    def __post_init__(self) -> None:
        _check_text("model", self.model, empty_ok=False)
        messages = self.messages
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise ValidationError("messages", messages, "must be a list of {role, content} messages")
        if not messages:
            raise ValidationError("messages", messages, "must not be empty")
        object.__setattr__(self, "messages", tuple(_as_message(i, m) for i, m in enumerate(messages)))
        _check_range("temperature", self.temperature, 0, 2)
        _check_range("top_p", self.top_p, 0, 1)
        _check_min_int("n", self.n, 1)
        self._check_stop()
        _check_min_int("max_tokens", self.max_tokens, 1)
        _check_range("presence_penalty", self.presence_penalty, -2, 2)
        _check_range("frequency_penalty", self.frequency_penalty, -2, 2)
        self._check_logit_bias()
        _check_text("user", self.user)
        if not isinstance(self.stream, bool):
            raise ValidationError("stream", self.stream, "must be true or false")
        if self.extras is not None and not isinstance(self.extras, SDExtras):
            raise ValidationError("extras", self.extras, "must be an SDExtras")
        if self.temperature is not None and self.top_p is not None:
            warnings.warn(
                "temperature and top_p are both set; the API's advice is to alter one of them, not both",
                UserWarning,
                stacklevel=3,
            )

    def _check_stop(self) -> None:
        stop = self.stop
        if stop is None or isinstance(stop, str):
            return
        if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
            if not 1 <= len(stop) <= MAX_STOP:
                raise ValidationError("stop", stop, f"must be a string or a list of 1 to {MAX_STOP} strings")
            object.__setattr__(self, "stop", tuple(stop))
            return
        raise ValidationError("stop", stop, f"must be a string or a list of up to {MAX_STOP} strings")

    def _check_logit_bias(self) -> None:
        bias = self.logit_bias
        if bias is None:
            return
        if not isinstance(bias, Mapping):
            raise ValidationError("logit_bias", bias, "must be a mapping of token id to a bias")
        clean: dict[str, float] = {}
        for token, value in bias.items():
            if not (is_int(token) or (isinstance(token, str) and token.isdigit())):
                raise ValidationError("logit_bias", bias, f"token {token!r} is not a token id")
            _check_range(f"logit_bias[{token}]", value, -100, 100)
            clean[str(token)] = value
        object.__setattr__(self, "logit_bias", clean)

    @classmethod
    def from_prompt(cls, prompt: str, *, model: str = DEFAULT_API_MODEL, **fields: Any) -> ChatRequest:
        """The SD prompt as one user message, as in the page's example."""
        _check_text("prompt", prompt, empty_ok=False)
        return cls(messages=(Message("user", prompt),), model=model, **fields)

    @classmethod
    def from_params(
        cls, params: GenerationParams, *, model: str | None = None, sd_extras: bool = False, **fields: Any
    ) -> ChatRequest:
        """A request for ``params`` (the prompt as the user message); SD extras only with ``sd_extras``."""
        extras = SDExtras.from_params(params) if sd_extras else None
        return cls.from_prompt(params.prompt, model=model or api_model(params), extras=extras, **fields)

    @property
    def prompt(self) -> str:
        """The text of the last user message (the SD prompt)."""
        for m in reversed(self.messages):
            if m.role == "user":
                if isinstance(m.content, str):
                    return m.content
                return " ".join(str(p.get("text", "")) for p in m.content if p.get("type") == "text")
        return ""

    def to_body(self) -> dict[str, Any]:
        """The JSON body: model, messages, then the optional fields that are set, then SD extras."""
        body: dict[str, Any] = {"model": self.model, "messages": [m.to_dict() for m in self.messages]}
        for name in OPTIONAL_CHAT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                body[name] = list(value) if isinstance(value, tuple) else value
        if self.logit_bias is not None:
            body["logit_bias"] = dict(self.logit_bias)
        if self.stream:
            body["stream"] = True
        if self.extras is not None:
            body.update(self.extras.to_fields())
        return body

    def to_json(self) -> str:
        """The body as the page writes it: ``{"model": "…", "messages": [{"role": "user", "content": "…"}]}``."""
        return json.dumps(self.to_body(), ensure_ascii=False)


@dataclass(frozen=True)
class ImagesRequest:
    """``POST /v1/images/generations``: model, prompt, n, size, response_format, user (+ opt-in SD extras)."""

    prompt: str
    model: str = DEFAULT_API_MODEL
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    user: str | None = None
    extras: SDExtras | None = field(default=None)

    path = IMAGES_PATH

    def __post_init__(self) -> None:
        _check_text("prompt", self.prompt, empty_ok=False)
        _check_text("model", self.model, empty_ok=False)
        _check_min_int("n", self.n, 1)
        _check_size("size", self.size)
        if self.response_format is not None and self.response_format not in RESPONSE_FORMATS:
            raise ValidationError("response_format", self.response_format, "must be 'url' or 'b64_json'")
        _check_text("user", self.user)
        if self.extras is not None and not isinstance(self.extras, SDExtras):
            raise ValidationError("extras", self.extras, "must be an SDExtras")

    @classmethod
    def from_params(
        cls,
        params: GenerationParams,
        *,
        model: str | None = None,
        sd_extras: bool = False,
        n: int | None = None,
        seed: int | None = None,
        **fields: Any,
    ) -> ImagesRequest:
        """A request for ``params``: its size in ``size``, ``n`` images (default ``params.num_images``;
        left out when 1); seed (default ``params.seed``), steps, guidance and negative prompt only
        with ``sd_extras``."""
        size = f"{params.width}x{params.height}" if params.width and params.height else None
        extras = None
        if sd_extras:
            full = SDExtras.from_params(params, seed=seed)
            extras = SDExtras(full.seed, full.negative_prompt, full.num_inference_steps, full.guidance_scale)
        n = params.num_images if n is None else n
        n = n if n != 1 else None  # one image is every relay's default: leave n out
        return cls(prompt=params.prompt, model=model or api_model(params), n=n, size=size, extras=extras, **fields)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": self.prompt}
        for name in ("n", "size", "response_format", "user"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.extras is not None:
            for key, value in self.extras.to_fields().items():
                body.setdefault(key, value)
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_body(), ensure_ascii=False)


@dataclass(frozen=True, repr=False)
class ImageEditRequest:
    """``POST /v1/images/edits`` as OpenAI's images API takes it (``multipart/form-data``): ``image`` (a PNG file
    part), ``prompt``, ``model``, ``n``, ``size``, ``response_format``, ``user``; then img2img's ``strength``
    (sent whenever set: without it a relay uses its own default and a strength sweep would send one request)
    and the opt-in SD extras (seed, negative_prompt, num_inference_steps, guidance_scale) as form fields.

    ``image`` is the PNG bytes; ``image_key`` the ``"sha256:…"`` key it came from (for display only).
    """

    image: bytes
    prompt: str
    model: str = DEFAULT_API_MODEL
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    user: str | None = None
    strength: float | None = None
    extras: SDExtras | None = None
    image_key: str | None = None

    path = EDITS_PATH

    def __post_init__(self) -> None:
        if not isinstance(self.image, bytes) or not self.image.startswith(b"\x89PNG\r\n\x1a\n"):
            shown = f"({len(self.image)} bytes)" if isinstance(self.image, bytes) else self.image
            raise ValidationError("image", shown, "must be the PNG bytes of the init image")
        _check_text("prompt", self.prompt, empty_ok=False)
        _check_text("model", self.model, empty_ok=False)
        _check_min_int("n", self.n, 1)
        _check_size("size", self.size)
        if self.response_format is not None and self.response_format not in RESPONSE_FORMATS:
            raise ValidationError("response_format", self.response_format, "must be 'url' or 'b64_json'")
        _check_text("user", self.user)
        _check_range("strength", self.strength, 0, 1)
        if self.extras is not None and not isinstance(self.extras, SDExtras):
            raise ValidationError("extras", self.extras, "must be an SDExtras")

    def __repr__(self) -> str:
        return f"<ImageEditRequest {self.model!r} {self.prompt[:40]!r} image={self.image_key or len(self.image)}>"

    @classmethod
    def from_params(
        cls,
        params: GenerationParams,
        *,
        model: str | None = None,
        sd_extras: bool = False,
        n: int | None = None,
        seed: int | None = None,
        **fields: Any,
    ) -> ImageEditRequest:
        """The img2img request for ``params`` (which must have an ``init_image``): the picture as PNG, its
        ``denoising_strength`` as ``strength``, size and ``n`` as :meth:`ImagesRequest.from_params` sends them."""
        if params.init_image is None:
            raise ValidationError("init_image", None, "an images/edits request needs an init image")
        from sdkit.initimage import init_image_png

        base = ImagesRequest.from_params(params, model=model, sd_extras=sd_extras, n=n, seed=seed)
        return cls(
            image=init_image_png(params.init_image),
            prompt=base.prompt,
            model=base.model,
            n=base.n,
            size=base.size,
            strength=params.denoising_strength,
            extras=base.extras,
            image_key=params.init_image,
            **fields,
        )

    def to_fields(self) -> list[tuple[str, Any]]:
        """The text form fields, in the order sent (the image part goes first, before these)."""
        out: list[tuple[str, Any]] = [("prompt", self.prompt), ("model", self.model)]
        for name in ("n", "size", "response_format", "user", "strength"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, value))
        if self.extras is not None:
            out += [(k, v) for k, v in self.extras.to_fields().items() if k != "size" or self.size is None]
        return [(k, json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in out]

    def to_body(self) -> dict[str, Any]:
        """The form as a dict for display: the image as ``"@image.png"`` (curl's notation), then the text fields."""
        return {"image": "@image.png", **dict(self.to_fields())}

    def to_multipart(self, boundary: str | None = None) -> tuple[str, bytes]:
        """(Content-Type, body) of the ``multipart/form-data`` request."""
        from sdkit.backends.relay.multipart import FilePart, multipart

        return multipart(
            [("image", FilePart("image.png", self.image, "image/png")), *self.to_fields()], boundary=boundary
        )
