"""Generation parameters: one frozen, validated type with diffusers' names."""

from __future__ import annotations

import dataclasses
import functools
import math
import secrets
from dataclasses import dataclass
from typing import Any

from sdkit.backends.local.schedulers import canonical_scheduler
from sdkit.errors import ValidationError
from sdkit.suggestions import did_you_mean

__all__ = ["MAX_SEED", "GenerationParams", "parse_size"]

MAX_SEED = 2**32 - 1
MIN_SIDE = 64
MAX_SIDE = 2048
MAX_STEPS = 500
MAX_GUIDANCE = 100.0
MAX_IMAGES = 64
MAX_CLIP_SKIP = 12
DEFAULT_MODEL = "tiny"

#: Names people type for fields (A1111's, the CLI's flags, other tools'): refused, the field suggested.
FIELD_ALIASES = {
    "cfg": "guidance_scale",
    "cfg_scale": "guidance_scale",
    "steps": "num_inference_steps",
    "sampler": "scheduler",
    "sampler_name": "scheduler",
    "negative": "negative_prompt",
    "n": "num_images",
    "batch_size": "num_images",
    "checkpoint": "model",
    "clip_stop_at_last_layers": "clip_skip",
}


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (``True`` and ``False`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(field: str, value: object, lo: int, hi: int) -> None:
    if not is_int(value):
        raise ValidationError(field, value, "must be an integer")
    if not lo <= value <= hi:
        raise ValidationError(field, value, f"must be between {lo} and {hi}")


def _check_side(field: str, value: object) -> None:
    if value is None:
        return
    _check_int(field, value, MIN_SIDE, MAX_SIDE)
    if value % 8:
        raise ValidationError(field, value, "must be a multiple of 8")


MAX_LORA_WEIGHT = 10.0


def _check_loras(value: object) -> tuple[tuple[str, float], ...]:
    """``loras`` as a tuple of ``(name, float weight)``; pairs may come as lists (JSON) or a dict."""
    if isinstance(value, dict):
        value = tuple(value.items())
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValidationError("loras", value, "must be a sequence of (name, weight) pairs")
    out: list[tuple[str, float]] = []
    for item in value:
        if isinstance(item, (str, bytes)) or not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValidationError("loras", item, "each entry must be a (name, weight) pair")
        name, weight = item
        if not isinstance(name, str) or not name.strip() or name != name.strip() or any(c in name for c in "<>:"):
            raise ValidationError(
                "loras", name, "a LoRA name must be a non-empty name without spaces at its ends, < > or :"
            )
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight):
            raise ValidationError(f"loras[{name}]", weight, "the weight must be a finite number")
        if abs(weight) > MAX_LORA_WEIGHT:
            raise ValidationError(
                f"loras[{name}]", weight, f"the weight must be between -{MAX_LORA_WEIGHT:g} and {MAX_LORA_WEIGHT:g}"
            )
        if any(name == seen for seen, _ in out):
            raise ValidationError("loras", name, "named twice; give each LoRA once")
        out.append((name, float(weight)))
    return tuple(out)


def parse_size(text: str) -> tuple[int, int]:
    """``"512x768"`` → ``(512, 768)``; a single number means a square."""
    raw = text.strip().lower()
    parts = raw.split("x") if "x" in raw else [raw, raw]
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ValidationError("size", text, "must look like WIDTHxHEIGHT, e.g. 512x512") from None
    _check_side("width", width)
    _check_side("height", height)
    return width, height


#: Fields added after records and cache keys existed: left out of :meth:`GenerationParams.to_dict` at these values.
OMITTED_AT_DEFAULT: dict[str, Any] = {
    "variation_seed": None,
    "variation_strength": 0.0,
    "init_image": None,
    "denoising_strength": 0.75,
    "hires_scale": 1.0,
    "hires_steps": None,
    "hires_denoising": 0.5,
    "hires_upscaler": "latent",
    "clip_skip": None,
    "loras": (),
}
HIRES_UPSCALERS = ("latent", "lanczos")
MAX_HIRES_SCALE = 4.0


def _check_fraction(field: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValidationError(field, value, "must be a number between 0 and 1")
    if not 0 <= value <= 1:
        raise ValidationError(field, value, "must be between 0 and 1")
    return float(value)


def _check_modes(p: GenerationParams) -> None:
    """Variation seed, img2img and hires fix fields (issue 16)."""
    if p.variation_seed is not None:
        _check_int("variation_seed", p.variation_seed, 0, MAX_SEED)
    object.__setattr__(p, "variation_strength", _check_fraction("variation_strength", p.variation_strength))
    if p.init_image is not None:
        from sdkit.initimage import init_image_key

        object.__setattr__(p, "init_image", init_image_key(p.init_image))
    object.__setattr__(p, "denoising_strength", _check_fraction("denoising_strength", p.denoising_strength))
    s = p.hires_scale
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s):
        raise ValidationError("hires_scale", s, "must be a number")
    if not 1 <= s <= MAX_HIRES_SCALE:
        raise ValidationError("hires_scale", s, f"must be between 1 (off) and {MAX_HIRES_SCALE:g}")
    object.__setattr__(p, "hires_scale", float(s))
    if p.hires_steps is not None:
        _check_int("hires_steps", p.hires_steps, 1, MAX_STEPS)
    object.__setattr__(p, "hires_denoising", _check_fraction("hires_denoising", p.hires_denoising))
    up = p.hires_upscaler
    if not isinstance(up, str) or up.strip().lower() not in HIRES_UPSCALERS:
        hint = did_you_mean(str(up), HIRES_UPSCALERS) if isinstance(up, str) else ""
        raise ValidationError(
            "hires_upscaler", up, f"must be one of {', '.join(HIRES_UPSCALERS)}" + (f"; {hint}" if hint else "")
        )
    object.__setattr__(p, "hires_upscaler", up.strip().lower())
    if p.variation_strength > 0 and p.variation_seed is None:
        raise ValidationError("variation_strength", p.variation_strength, "needs a variation_seed")
    if p.variation_strength > 0 and p.init_image is not None:
        raise ValidationError(
            "variation_strength", p.variation_strength, "variation seeds are for txt2img, not img2img"
        )


def _refuse_unknown_fields(cls):
    """Turn ``GenerationParams(prompt, cfg=7)``'s TypeError into a :class:`ValidationError` naming the
    field and the one meant; the generated ``__init__`` (its signature, frozen fields) stays as it is."""
    generated = cls.__init__
    names = [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(generated)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not args and "prompt" not in kwargs:
            raise ValidationError("prompt", None, "is required")
        for key in kwargs:
            if key not in names:
                raise _unknown_field(key, kwargs[key], names)
        generated(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


def _unknown_field(key: str, value: object, names: list[str]) -> ValidationError:
    hint = did_you_mean(key, names, aliases=FIELD_ALIASES)
    return ValidationError(key, value, f"unknown parameter; {hint or 'known: ' + ', '.join(sorted(names))}")


@_refuse_unknown_fields
@dataclass(frozen=True, repr=False)
class GenerationParams:
    """Everything that decides an image, validated on construction.

    ``seed`` left out is drawn at random and kept, so every result can be made again.
    Image ``i`` of ``num_images`` uses seed ``seed + i`` (A1111's rule).
    ``width``/``height`` left out mean the model's native size; ``scheduler`` left out
    means the model's own scheduler.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    num_inference_steps: int = 20
    guidance_scale: float = 7.5
    width: int | None = None
    height: int | None = None
    scheduler: str | None = None
    num_images: int = 1
    model: str = DEFAULT_MODEL
    # Fields added later are left out of to_dict() and repr at their defaults (OMITTED_AT_DEFAULT), so cache
    # keys and records made before they existed still match.
    clip_skip: int | None = None
    variation_seed: int | None = None
    variation_strength: float = 0.0
    init_image: str | None = None
    denoising_strength: float = 0.75
    hires_scale: float = 1.0
    hires_steps: int | None = None
    hires_denoising: float = 0.5
    hires_upscaler: str = "latent"
    #: LoRAs to apply, as ``(name, weight)`` pairs (A1111's ``<lora:NAME:WEIGHT>``); a name is looked up in
    #: the backend's LoRA folders. Left out of :meth:`to_dict` when empty, so older records and cache keys hold.
    loras: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise ValidationError("prompt", self.prompt, "must be a string")
        if not self.prompt.strip():
            raise ValidationError("prompt", self.prompt, "must not be empty")
        if not isinstance(self.negative_prompt, str):
            raise ValidationError("negative_prompt", self.negative_prompt, "must be a string")
        if self.seed is None:
            object.__setattr__(self, "seed", secrets.randbelow(MAX_SEED + 1))
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_int("num_inference_steps", self.num_inference_steps, 1, MAX_STEPS)
        g = self.guidance_scale
        if not isinstance(g, (int, float)) or isinstance(g, bool) or not math.isfinite(g):
            raise ValidationError("guidance_scale", g, "must be a finite number")
        if not 0 <= g <= MAX_GUIDANCE:
            raise ValidationError("guidance_scale", g, f"must be between 0 and {MAX_GUIDANCE:g}")
        object.__setattr__(self, "guidance_scale", float(g))
        _check_side("width", self.width)
        _check_side("height", self.height)
        if self.scheduler is not None:
            object.__setattr__(self, "scheduler", canonical_scheduler(self.scheduler))
        _check_int("num_images", self.num_images, 1, MAX_IMAGES)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValidationError("model", self.model, f"must be a model id, a folder or {DEFAULT_MODEL!r}")
        if self.clip_skip is not None:
            _check_int("clip_skip", self.clip_skip, 1, MAX_CLIP_SKIP)
        _check_modes(self)
        object.__setattr__(self, "loras", _check_loras(self.loras))

    def __repr__(self) -> str:
        """The dataclass repr, less the later fields at their defaults (as in :meth:`to_dict`)."""
        shown = (
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name not in OMITTED_AT_DEFAULT or getattr(self, f.name) != OMITTED_AT_DEFAULT[f.name]
        )
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seed of every image: ``seed``, ``seed + 1``, … (wrapping at 2**32)."""
        return tuple((self.seed + i) % (MAX_SEED + 1) for i in range(self.num_images))

    def replace(self, **changes: Any) -> GenerationParams:
        """A copy with ``changes`` applied and validated again."""
        return dataclasses.replace(self, **changes)

    def for_image(self, index: int) -> GenerationParams:
        """The parameters that make image ``index`` alone (its seed, one image)."""
        return self.replace(seed=self.seeds[index], num_images=1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; fields added later are left out while they hold their defaults."""
        data = dataclasses.asdict(self)
        for name, default in OMITTED_AT_DEFAULT.items():
            if data.get(name, default) == default and name in data:
                del data[name]
        if "loras" in data:
            data["loras"] = [[name, weight] for name, weight in self.loras]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        """Build from a mapping; unknown keys are refused by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise _unknown_field(unknown[0], data[unknown[0]], sorted(names))
        if "prompt" not in data:
            raise ValidationError("prompt", None, "is required")
        return cls(**data)
