"""The ``stability`` backend: Stability AI's Stable Image API in its official format.

``POST {base_url}/v2beta/stable-image/generate/{ultra|core|sd3}`` as ``multipart/form-data``
(``prompt``, ``negative_prompt``, ``aspect_ratio``, ``seed``, ``output_format``; core: ``style_preset``;
sd3: ``model`` and ``mode``, with ``image`` and ``strength`` for image-to-image), ``Authorization:
Bearer``. ``Accept: application/json`` (the default here) → ``{image, seed, finish_reason}``;
``Accept: image/*`` → the image bytes with ``seed`` and ``finish-reason`` headers. ``CONTENT_FILTERED``
is a :class:`~sdkit.ModerationError`; errors ``{id, name, errors}`` map onto the error tree by status.
Relays serve the same paths under a prefix (``https://relay.example/sd``): the base URL carries it.

The service decides the pixel size: ``width``/``height`` only choose the nearest ``aspect_ratio``
(``details["image_sizes"]`` records what came back). The seed the service reports is the one recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from sdkit.backends.providers.backend import DEFAULT_MAX_CONCURRENCY, Made, ProviderBackend
from sdkit.backends.providers.http import ProviderClient, multipart, provider_key, provider_url
from sdkit.backends.relay.limits import Limits
from sdkit.backends.relay.retry import DEFAULT_TIMEOUT
from sdkit.errors import ModerationError, PermissionDeniedError, ReplyError, ValidationError
from sdkit.params import GenerationParams
from sdkit.secret import Secret

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_BASE_URL",
    "MODELS",
    "StabilityBackend",
    "aspect_ratio",
    "stability_fields",
]

DEFAULT_BASE_URL = "https://api.stability.ai"
BASE_URL_VAR = "STABILITY_BASE_URL"
KEY_VAR = "STABILITY_API_KEY"
ASPECT_RATIOS = ("21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium")
#: The models this backend asks for: ``ultra`` and ``core`` are endpoints, the sd3 models go to ``sd3``.
MODELS = ("core", "ultra", *SD3_MODELS)
STYLE_PRESETS = (
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
)
MAX_PROMPT_CHARS = 10_000
MAX_STABILITY_SEED = 4_294_967_294
FILTERED = "CONTENT_FILTERED"


def aspect_ratio(width: int | None, height: int | None) -> str:
    """The service's aspect ratio nearest to ``width``×``height`` (1:1 when the size is left to the model)."""
    if not width or not height:
        return "1:1"
    want = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - want)

    return min(ASPECT_RATIOS, key=distance)


def endpoint_of(model: str) -> str:
    return "sd3" if model in SD3_MODELS else model


def stability_fields(
    params: GenerationParams,
    seed: int,
    *,
    model: str,
    output_format: str = "png",
    style_preset: str | None = None,
    image: bytes | None = None,
    strength: float | None = None,
) -> list[tuple[str, str | bytes]]:
    """The form fields of one request, in the documented order (pure)."""
    fields: list[tuple[str, str | bytes]] = [("prompt", params.prompt)]
    if params.negative_prompt:
        fields.append(("negative_prompt", params.negative_prompt))
    if image is None:
        fields.append(("aspect_ratio", aspect_ratio(params.width, params.height)))
    fields += [("seed", str(seed)), ("output_format", output_format)]
    if style_preset is not None:
        fields.append(("style_preset", style_preset))
    if endpoint_of(model) == "sd3":
        fields.append(("model", model))
        if image is not None:
            fields += [("mode", "image-to-image"), ("image", image), ("strength", f"{strength:g}")]
        else:
            fields.append(("mode", "text-to-image"))
    return fields


class StabilityBackend(ProviderBackend):
    """Images from Stability AI (or a relay serving its format).

    ``model``: ``core`` (default), ``ultra`` or an sd3 model (``sd3.5-large``, ``sd3.5-large-turbo``,
    ``sd3.5-medium``), used when ``params.model`` names an embedded model; any other ``params.model`` is
    asked for as it is. ``accept``: ``"json"`` (the image in base64 in a JSON reply, archived as such)
    or ``"image"`` (the bytes). ``image`` (a path or bytes) and ``strength`` (0–1) make sd3 requests
    image-to-image. The key comes from ``api_key``, ``STABILITY_API_KEY`` or ``SDKIT_API_KEY``; the base
    URL from ``base_url``, ``STABILITY_BASE_URL`` or :data:`DEFAULT_BASE_URL`.
    """

    name = "stability"
    default_model = "core"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: Secret | str | None = None,
        *,
        model: str | None = None,
        output_format: str = "png",
        accept: str = "json",
        style_preset: str | None = None,
        image: str | bytes | None = None,
        strength: float | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValidationError("output_format", output_format, f"must be one of {', '.join(OUTPUT_FORMATS)}")
        if accept not in ("json", "image"):
            raise ValidationError("accept", accept, "must be 'json' or 'image'")
        if style_preset is not None and style_preset not in STYLE_PRESETS:
            raise ValidationError("style_preset", style_preset, f"must be one of {', '.join(STYLE_PRESETS)}")
        if model is not None and model not in MODELS:
            raise ValidationError("model", model, f"must be one of {', '.join(MODELS)}")
        if isinstance(image, str):
            path = Path(image)
            if not path.is_file():
                raise ValidationError("image", image, "is not a file")
            image = path.read_bytes()
        if image is not None and not isinstance(image, bytes):
            raise ValidationError("image", image, "must be a path or bytes")
        if (image is None) != (strength is None):
            raise ValidationError("strength", strength, "image-to-image needs both image and strength")
        if strength is not None and not (isinstance(strength, (int, float)) and 0 <= strength <= 1):
            raise ValidationError("strength", strength, "must be between 0 and 1")
        client = ProviderClient(
            provider_url(base_url, BASE_URL_VAR, DEFAULT_BASE_URL),
            provider_key(api_key, KEY_VAR),
            timeout=timeout,
            max_retries=max_retries,
            limits=limits,
        )
        super().__init__(client, model=model, max_concurrency=max_concurrency)
        self.output_format = output_format
        self.accept = accept
        self.style_preset = style_preset
        self.image = image
        self.strength = None if strength is None else float(strength)

    def identity(self) -> dict[str, Any]:
        ident = {**self._base_identity(), "output_format": self.output_format}
        if self.style_preset is not None:
            ident["style_preset"] = self.style_preset
        if self.image is not None:
            ident["image_sha256"] = hashlib.sha256(self.image).hexdigest()
            ident["strength"] = self.strength
        return ident

    def check_one(self, params: GenerationParams) -> None:
        model = self.remote_model(params)
        if model not in MODELS:
            raise ValidationError("model", model, f"Stability's models: {', '.join(MODELS)}")
        if len(params.prompt) > MAX_PROMPT_CHARS:
            raise ValidationError("prompt", params.prompt[:40] + "…", f"is longer than {MAX_PROMPT_CHARS} characters")
        if any(seed > MAX_STABILITY_SEED for seed in params.seeds):
            raise ValidationError("seed", params.seed, f"Stability takes seeds up to {MAX_STABILITY_SEED}")
        if self.style_preset is not None and endpoint_of(model) != "core":
            raise ValidationError("style_preset", self.style_preset, f"only the core model takes it, not {model}")
        if self.image is not None and endpoint_of(model) != "sd3":
            raise ValidationError("image", "(bytes)", f"image-to-image is sent to the sd3 models, not {model}")

    def url_for(self, model: str) -> str:
        return f"{self.client.base_url}/v2beta/stable-image/generate/{endpoint_of(model)}"

    def make_one(self, params: GenerationParams, seed: int) -> Made:
        model = self.remote_model(params)
        fields = stability_fields(
            params,
            seed,
            model=model,
            output_format=self.output_format,
            style_preset=self.style_preset,
            image=self.image,
            strength=self.strength,
        )
        content_type, body = multipart(fields)
        headers = {"Accept": "application/json" if self.accept == "json" else "image/*", "Content-Type": content_type}
        key = self.client.key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            reply = self.client.request("POST", self.url_for(model), headers, body)
        except PermissionDeniedError as exc:
            if isinstance(exc.body, dict) and exc.body.get("name") == "content_moderation":
                raise ModerationError(
                    f"Stability refused the prompt (content_moderation): {exc.message}",
                    reason="content_moderation",
                    request_id=exc.request_id,
                    raw=json.dumps(exc.body),
                ) from None
            raise
        if self.accept == "image":
            data, reported, finish, raw = reply.body, reply.header("seed"), reply.header("finish-reason"), reply.body
        else:
            try:
                obj = json.loads(reply.text)
                data = base64.b64decode(obj["image"], validate=True)
                reported, finish = obj.get("seed"), obj.get("finish_reason")
            except (ValueError, KeyError, TypeError) as exc:
                raise ReplyError(
                    f"Stability's reply is not {{image, seed, finish_reason}}: {exc}", reply.text
                ) from None
            raw = reply.text
        if finish == FILTERED:
            raise ModerationError(
                f"Stability filtered the image for {params.prompt[:60]!r} (finish_reason {FILTERED})",
                reason=FILTERED,
                request_id=reply.request_id,
                raw=reply.text if self.accept == "json" else "",
            )
        try:
            got = int(reported) if reported is not None else None
        except (TypeError, ValueError):
            got = None
        return Made(
            data=data,
            seed=got if got is not None else (seed or None),
            raw=(raw,),
            request_id=reply.request_id,
            attempts=reply.attempts,
            elapsed_s=reply.elapsed_s,
            extra={"finish_reason": finish, "aspect_ratio": aspect_ratio(params.width, params.height)},
        )
