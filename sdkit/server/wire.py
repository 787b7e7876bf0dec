"""The server's side of the wire: request bodies in, reply bodies out, as pure functions.

``sdkit serve`` (:mod:`sdkit.server.routes`) is a thin shell around these: it reads bytes, calls
:func:`parse_chat_request` / :func:`parse_images_request`, queues the generation, and answers
with :func:`chat_completion`, :func:`chat_chunks`, :func:`images_reply` or :func:`error_body`.

Refusals are :class:`~sdkit.errors.InvalidRequestError` naming the field (OpenAI's ``param``):
unparseable JSON and out-of-range values → 400, a missing field or a wrong type → 422,
an unknown model → 404.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sdkit.backends.relay.apirequest import OPTIONAL_CHAT_FIELDS, ROLES
from sdkit.errors import InvalidRequestError, ValidationError
from sdkit.metadata.pngfile import data_uri
from sdkit.params import GenerationParams, is_int, parse_size

__all__ = [
    "CHAT_FIELDS",
    "SD_EXTRAS",
    "IncomingChat",
    "IncomingImages",
    "ServedModel",
    "chat_chunk",
    "chat_chunks",
    "chat_completion",
    "chat_role_chunks",
    "check_work",
    "error_body",
    "image_markdown",
    "images_reply",
    "load_json",
    "models_reply",
    "parse_chat_request",
    "parse_images_request",
    "refusal_message",
    "sse_event",
]

#: The page's chat-completions fields; accepted, checked, and (but for model, messages, n, stream) without effect.
CHAT_FIELDS = ("model", "messages", *OPTIONAL_CHAT_FIELDS, "stream")
#: Stable Diffusion fields some relays read at the top level; honoured here.
SD_EXTRAS = (
    "seed",
    "negative_prompt",
    "num_inference_steps",
    "guidance_scale",
    "size",
    "width",
    "height",
    "batch_size",
    "scheduler",
)
MAX_BATCH_SIZE = 4
#: JSON nesting deeper than this is refused before parsing (a request needs 4 levels).
MAX_JSON_DEPTH = 32
#: The longest prompt (or negative prompt) a server takes, in characters. CLIP reads 77 tokens
#: (~300 characters); the cap keeps one request from filling PNGs, logs and memory.
DEFAULT_MAX_PROMPT_CHARS = 4000
#: Generation work a request may ask for, in pixel-steps (width × height × steps × images),
#: as a multiple of the served model's native size: 50 steps, 4 images at native size.
WORK_STEPS_AT_NATIVE = 50 * 4


@dataclass(frozen=True)
class ServedModel:
    """The model a server serves: ``model`` is what the backend loads (``tiny``, an id, a folder),
    ``id`` the name clients use, ``aliases`` other names accepted for it (the page's
    ``stable-diffusion-api``)."""

    model: str
    id: str
    aliases: tuple[str, ...] = ("stable-diffusion-api",)
    created: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


@dataclass(frozen=True)
class IncomingChat:
    """A parsed chat request: ``choices`` choices of ``params.num_images // choices`` images each."""

    params: GenerationParams
    model: str
    choices: int
    stream: bool
    include_usage: bool = False


@dataclass(frozen=True)
class IncomingImages:
    """A parsed images request."""

    params: GenerationParams
    model: str
    response_format: str


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_depth(body: bytes, limit: int) -> int:
    """How deep the body's arrays and objects nest, counted up to ``limit + 1`` (strings skipped)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return 0
    depth = 0
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return depth
        elif token in (b"]", b"}"):
            depth -= 1
    return 0


def _bad_text(data: Any) -> str | None:
    """The path of the first string (value or key) that is not valid Unicode (a lone surrogate), else None."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else str(key)
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return path or "body"
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


def load_json(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 naming what is wrong: not JSON, nested deeper
    than ``max_depth``, or holding a string that is not valid Unicode (``"\\ud800"``)."""
    if _json_depth(body, max_depth) > max_depth:
        raise InvalidRequestError(
            None, None, f"the body nests arrays or objects deeper than {max_depth} levels", code="invalid_json"
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(None, None, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise InvalidRequestError(None, None, "the body nests too deeply", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(None, None, "the body must be a JSON object", status=422, code="invalid_type")
    if (path := _bad_text(data)) is not None:
        raise InvalidRequestError(
            path, None, "is not valid Unicode text (it holds a lone surrogate such as \\ud800)", code="invalid_text"
        )
    return data


def check_work(params: GenerationParams, *, max_work: int, native_size: int) -> None:
    """Refuse (400, naming the field) a request whose width × height × steps × images is over
    ``max_work`` pixel-steps; sizes left out count as the model's ``native_size``."""
    width = params.width or native_size
    height = params.height or native_size
    per_step = width * height * params.num_images
    work = per_step * params.num_inference_steps
    if work <= max_work:
        return
    if per_step > max_work:
        field, value = ("size", f"{width}x{height}") if params.num_images == 1 else ("n", params.num_images)
        reason = (
            f"{width}x{height} × {params.num_images} image(s) is over this server's work budget of "
            f"{max_work} pixel-steps even at 1 step; ask for a smaller size or fewer images"
        )
    else:
        field, value = "num_inference_steps", params.num_inference_steps
        reason = (
            f"must be at most {max_work // per_step} at {width}x{height} × {params.num_images} image(s): "
            f"this server's work budget is {max_work} pixel-steps (width × height × steps × images)"
        )
    raise InvalidRequestError(field, value, reason, code="over_budget")


def _check_prompt(field: str, text: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise InvalidRequestError(
            field, None, f"is {len(text)} characters long; this server takes at most {max_chars}", code="too_long"
        )


# --- checks ---------------------------------------------------------------------------------


def _wrong_type(field: str, value: object, expected: str) -> InvalidRequestError:
    return InvalidRequestError(
        field, value, f"must be {expected}, not {_json_type(value)}", status=422, code="invalid_type"
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _number(data: Mapping[str, Any], field: str, lo: float, hi: float) -> None:
    value = data.get(field)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _wrong_type(field, value, "a number")
    if not lo <= value <= hi:
        raise InvalidRequestError(field, value, f"must be between {lo:g} and {hi:g}")


def _integer(data: Mapping[str, Any], field: str, lo: int, hi: int | None = None) -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if not is_int(value):
        raise _wrong_type(field, value, "an integer")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidRequestError(field, value, f"must be {bound}")
    return value


def _string(data: Mapping[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise _wrong_type(field, value, "a string")
    return value


def _model(data: Mapping[str, Any], served: ServedModel, *, required: bool) -> str:
    value = data.get("model")
    if value is None:
        if required:
            raise InvalidRequestError("model", None, "is required", status=422, code="missing_required_parameter")
        return served.id
    if not isinstance(value, str):
        raise _wrong_type("model", value, "a string")
    if value not in served.names:
        raise InvalidRequestError(
            "model",
            value,
            f"the model {value!r} does not exist; this server serves {', '.join(repr(n) for n in served.names)}",
            status=404,
            code="model_not_found",
        )
    return value


def _text_of(content: object, field: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                raise _wrong_type(f"{field}[{j}]", part, "an object")
            if part.get("type", "text") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise _wrong_type(f"{field}[{j}].text", text, "a string")
                texts.append(text)
        return "\n".join(texts)
    raise _wrong_type(field, content, "a string or an array of content parts")


def _prompt_from_messages(messages: object, max_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> str:
    """The last user message's text (the page puts the SD prompt there)."""
    if messages is None:
        raise InvalidRequestError("messages", None, "is required", status=422, code="missing_required_parameter")
    if not isinstance(messages, list):
        raise _wrong_type("messages", messages, "an array")
    if not messages:
        raise InvalidRequestError("messages", messages, "must not be empty")
    prompt = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _wrong_type(f"messages[{i}]", message, "an object")
        role = message.get("role")
        if not isinstance(role, str):
            raise _wrong_type(f"messages[{i}].role", role, "a string")
        if role not in ROLES:
            raise InvalidRequestError(f"messages[{i}].role", role, f"must be one of {', '.join(ROLES)}")
        content = message.get("content")
        if role == "user":
            prompt = _text_of(content, f"messages[{i}].content")
            _check_prompt(f"messages[{i}].content", prompt, max_chars)
        elif content is not None:
            _text_of(content, f"messages[{i}].content")
    if prompt is None:
        raise InvalidRequestError("messages", None, "must contain a user message (its content is the prompt)")
    if not prompt.strip():
        raise InvalidRequestError("messages", prompt, "the last user message (the prompt) is empty")
    return prompt


def _check_chat_fields(data: Mapping[str, Any]) -> None:
    """The page's fields that do not change an image, checked as OpenAI checks them."""
    _number(data, "temperature", 0, 2)
    _number(data, "top_p", 0, 1)
    _number(data, "presence_penalty", -2, 2)
    _number(data, "frequency_penalty", -2, 2)
    _integer(data, "max_tokens", 1)
    _string(data, "user")
    stop = data.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _wrong_type("stop", stop, "a string or an array of strings")
        if len(stop) > 4:
            raise InvalidRequestError("stop", stop, "must hold at most 4 strings")
    bias = data.get("logit_bias")
    if bias is not None:
        if not isinstance(bias, dict):
            raise _wrong_type("logit_bias", bias, "an object")
        for token, value in bias.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _wrong_type(f"logit_bias.{token}", value, "a number")
            if not -100 <= value <= 100:
                raise InvalidRequestError(f"logit_bias.{token}", value, "must be between -100 and 100")


def _size(data: Mapping[str, Any]) -> tuple[int | None, int | None]:
    size = _string(data, "size")
    width = _integer(data, "width", 1)
    height = _integer(data, "height", 1)
    if size is not None and size.strip().lower() != "auto":
        try:
            return parse_size(size)
        except ValidationError as exc:
            raise InvalidRequestError("size", size, exc.reason) from None
    return width, height


def _params(
    data: Mapping[str, Any], prompt: str, served: ServedModel, num_images: int, max_prompt_chars: int
) -> GenerationParams:
    """GenerationParams from the SD extras; its own checks, reported with the field's wire name."""
    width, height = _size(data)
    fields: dict[str, Any] = {"prompt": prompt, "model": served.model, "num_images": num_images}
    fields["width"], fields["height"] = width, height
    for name in ("seed", "num_inference_steps"):
        if (value := _integer(data, name, 0)) is not None:
            fields[name] = value
    if data.get("guidance_scale") is not None:
        _number(data, "guidance_scale", -math.inf, math.inf)
        fields["guidance_scale"] = data["guidance_scale"]
    for name in ("negative_prompt", "scheduler"):
        if (value := _string(data, name)) is not None:
            _check_prompt(name, value, max_prompt_chars)
            fields[name] = value
    try:
        return GenerationParams(**fields)
    except ValidationError as exc:
        field = {"num_images": "n"}.get(exc.field, exc.field)
        raise InvalidRequestError(field, exc.value, exc.reason) from None


def parse_chat_request(
    data: Mapping[str, Any],
    served: ServedModel,
    *,
    max_images: int = 4,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
) -> IncomingChat:
    """A chat-completions body → what to generate. ``n`` is the number of choices, ``batch_size``
    the images in each; at most ``max_images`` images in all, prompts of ``max_prompt_chars``."""
    model = _model(data, served, required=True)
    prompt = _prompt_from_messages(data.get("messages"), max_prompt_chars)
    _check_chat_fields(data)
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _wrong_type("stream", stream, "a boolean")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _wrong_type("stream_options", options, "an object")
    include_usage = bool(options and options.get("include_usage"))
    n = _integer(data, "n", 1) or 1
    batch = _integer(data, "batch_size", 1, MAX_BATCH_SIZE) or 1
    if n * batch > max_images:
        field = "n" if batch == 1 else "batch_size"
        raise InvalidRequestError(field, n * batch, f"n × batch_size must be at most {max_images} on this server")
    params = _params(data, prompt, served, n * batch, max_prompt_chars)
    return IncomingChat(params=params, model=model, choices=n, stream=stream, include_usage=include_usage)


def parse_images_request(
    data: Mapping[str, Any],
    served: ServedModel,
    *,
    max_images: int = 4,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
) -> IncomingImages:
    """An images-generations body → what to generate."""
    model = _model(data, served, required=False)
    prompt = data.get("prompt")
    if prompt is None:
        raise InvalidRequestError("prompt", None, "is required", status=422, code="missing_required_parameter")
    if not isinstance(prompt, str):
        raise _wrong_type("prompt", prompt, "a string")
    if not prompt.strip():
        raise InvalidRequestError("prompt", prompt, "must not be empty")
    _check_prompt("prompt", prompt, max_prompt_chars)
    _string(data, "user")
    fmt = _string(data, "response_format") or "url"
    if fmt not in ("url", "b64_json"):
        raise InvalidRequestError("response_format", fmt, "must be 'url' or 'b64_json'")
    n = _integer(data, "n", 1) or 1
    if n > max_images:
        raise InvalidRequestError("n", n, f"must be at most {max_images} on this server")
    params = _params(data, prompt, served, n, max_prompt_chars)
    return IncomingImages(params=params, model=model, response_format=fmt)


# --- replies --------------------------------------------------------------------------------


def image_markdown(png: bytes) -> str:
    """``![image](data:image/png;base64,…)``: how a chat reply carries an image."""
    return f"![image]({data_uri(png)})"


def _usage(prompt_tokens: int) -> dict[str, int]:
    # No text is generated: the images are not counted as completion tokens.
    return {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}


def _choice_contents(pngs: Sequence[bytes], choices: int) -> list[str]:
    per = max(1, len(pngs) // choices)
    return ["\n".join(image_markdown(p) for p in pngs[i * per : (i + 1) * per]) for i in range(choices)]


def chat_completion(
    *, id: str, created: int, model: str, pngs: Sequence[bytes], choices: int, prompt_tokens: int
) -> dict[str, Any]:
    """The ``chat.completion`` reply: choice ``i`` holds its share of the images as markdown data URIs."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            for i, content in enumerate(_choice_contents(pngs, choices))
        ],
        "usage": _usage(prompt_tokens),
    }


def chat_chunk(*, id: str, created: int, model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` event body."""
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def chat_role_chunks(*, id: str, created: int, model: str, choices: int) -> list[dict[str, Any]]:
    """The first events of a stream: each choice's role, sent before the images are ready."""
    return [
        chat_chunk(
            id=id,
            created=created,
            model=model,
            choices=[{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        )
        for i in range(choices)
    ]


def chat_chunks(
    *,
    id: str,
    created: int,
    model: str,
    pngs: Sequence[bytes],
    choices: int,
    prompt_tokens: int,
    include_usage: bool = False,
) -> list[dict[str, Any]]:
    """The rest of a stream once the images are made: each choice's content in one delta
    (clients collect every delta), its ``finish_reason``, and the usage chunk when asked."""
    events = []
    for i, content in enumerate(_choice_contents(pngs, choices)):
        events.append(
            chat_chunk(
                id=id,
                created=created,
                model=model,
                choices=[{"index": i, "delta": {"content": content}, "finish_reason": None}],
            )
        )
        events.append(
            chat_chunk(
                id=id, created=created, model=model, choices=[{"index": i, "delta": {}, "finish_reason": "stop"}]
            )
        )
    if include_usage:
        events.append(chat_chunk(id=id, created=created, model=model, choices=[], usage=_usage(prompt_tokens)))
    return events


def sse_event(data: Mapping[str, Any] | str) -> bytes:
    """One server-sent event: ``data: …`` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def images_reply(*, created: int, items: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The images reply: ``{"created", "data": [{"url"} | {"b64_json"}, …]}``."""
    return {"created": created, "data": [dict(item) for item in items]}


def models_reply(served: ServedModel) -> dict[str, Any]:
    """``GET /v1/models``: the served model under each of its names."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": served.created, "owned_by": "sdkit"} for name in served.names
        ],
    }


#: OpenAI's error ``type`` for each status the server sends.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error JSON: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def refusal_message(exc: InvalidRequestError) -> str:
    """The message of a refused request: names the field, never echoes a long value."""
    if exc.field is None:
        return exc.reason
    return f"Invalid value for '{exc.field}': {exc.reason}"
