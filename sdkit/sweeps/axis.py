"""Sweep axes in A1111's X/Y/Z plot syntax: ``"guidance_scale=1,4,7.5"``, ``"num_inference_steps=5-20 (+5)"``.

Pure parsing, no I/O. A value list is one CSV row (``darkness,"light, green",heat``); numbers also take
ranges: ``1-5`` (inclusive), ``1-5 (+2)`` → 1, 3, 5, ``10-5 (-3)`` → 10, 7 (the step needs its sign),
``1-10 [5]`` → ``int()`` of an even spread → 1, 3, 5, 7, 10 (truncated, not rounded); floats the same:
``0-1 (+0.25)``, ``0-1 [6]``. ``prompt_sr=cat,dog,fox`` searches the first value in the prompt and the
negative prompt and replaces it by each value in both. ``prompt_matrix=base|a|b`` and dynamicprompts
templates (:func:`prompt_axis`) make an axis of whole prompts.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from sdkit.backends.local.schedulers import canonical_scheduler
from sdkit.errors import ValidationError
from sdkit.params import GenerationParams, parse_size
from sdkit.suggestions import did_you_mean

__all__ = [
    "AXIS_PARAMS",
    "Axis",
    "dynamic_prompts",
    "parse_axis",
    "parse_values",
    "prompt_axis",
    "prompt_matrix",
    "split_csv",
]

#: What each axis parameter holds: its value type and the name shown in grid labels.
AXIS_PARAMS: dict[str, tuple[str, str]] = {
    "seed": ("int", "Seed"),
    "num_inference_steps": ("int", "Steps"),
    "guidance_scale": ("float", "CFG"),
    "width": ("int", "Width"),
    "height": ("int", "Height"),
    "size": ("size", "Size"),
    "scheduler": ("scheduler", "Sampler"),
    "model": ("str", "Model"),
    "prompt": ("str", "Prompt"),
    "negative_prompt": ("str", "Negative"),
    "prompt_sr": ("str", "Prompt S/R"),
    "clip_skip": ("int", "Clip skip"),
    "variation_seed": ("int", "Var. seed"),
    "variation_strength": ("float", "Var. strength"),
    "denoising_strength": ("float", "Denoising"),
    "hires_scale": ("float", "Hires"),
    "hires_steps": ("int", "Hires steps"),
    "hires_denoising": ("float", "Hires denoising"),
    "hires_upscaler": ("str", "Upscaler"),
    "lora_weight": ("float", "LoRA weight"),
}

#: Other names people type (A1111's labels, the CLI's flags), case-insensitive.
ALIASES: dict[str, str] = {
    "steps": "num_inference_steps",
    "cfg": "guidance_scale",
    "cfg scale": "guidance_scale",
    "cfg_scale": "guidance_scale",
    "sampler": "scheduler",
    "checkpoint": "model",
    "checkpoint name": "model",
    "negative": "negative_prompt",
    "prompt s/r": "prompt_sr",
    "clip skip": "clip_skip",
    "variation seed": "variation_seed",
    "variation seed strength": "variation_strength",
    "var. strength": "variation_strength",
    "denoising": "denoising_strength",
    "denoising strength": "denoising_strength",
    "strength": "denoising_strength",
    "hires upscale": "hires_scale",
    "hires upscaler": "hires_upscaler",
    "lora weight": "lora_weight",
}

#: Parameters applied first (they set the prompt that Prompt S/R then edits) and last.
_ORDER = {"model": 0, "prompt": 1, "negative_prompt": 2, "prompt_sr": 9, "lora_weight": 10}

# A number is written without spaces inside it (``1 2`` and ``+ 5`` are refused, not read as 12 and 5);
# floats take an exponent (``1e-3``). Spaces may stand around the range's ``-`` and inside its brackets.
_UINT = r"\d+"
_UFLOAT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_INT = rf"[+-]?{_UINT}"
_FLOAT = rf"[+-]?{_UFLOAT}"
_RANGE_INT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(\s*({_INT})\s*\))?\s*")
_COUNT_INT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})\s*\[\s*(\d+)\s*\]\s*")
_RANGE_FLOAT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(\s*({_FLOAT})\s*\))?\s*")
_COUNT_FLOAT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[\s*(\d+)\s*\]\s*")
_NUMBER = {"int": re.compile(_INT), "float": re.compile(_FLOAT)}
MAX_AXIS_VALUES = 1000


def canonical_param(name: str) -> str:
    """``"Steps"`` → ``"num_inference_steps"``; unknown names are refused with the list of known ones."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in AXIS_PARAMS and key not in ("prompt_matrix", "prompt_expand"):
        known = [*AXIS_PARAMS, "prompt_matrix", "prompt_expand"]
        hint = did_you_mean(name, known, aliases=ALIASES)
        raise ValidationError("axis", name, f"unknown parameter; {hint or 'known: ' + ', '.join(known)}")
    return key


def split_csv(text: str) -> list[str]:
    """One CSV row, stripped, empty values dropped: ``'a, "b, c"'`` → ``["a", "b, c"]`` (A1111's reader)."""
    rows = csv.reader(StringIO(text), skipinitialspace=True)
    return [v.strip() for v in itertools.chain.from_iterable(rows) if v.strip()]


def _number(kind: str, text: str) -> int | float:
    """``text`` (stripped) as an int or a float; ValueError unless it is one number with no space inside."""
    text = text.strip()
    if not _NUMBER[kind].fullmatch(text):
        raise ValueError(text)
    return int(text) if kind == "int" else float(text)


def _spread(start: float, stop: float, count: int) -> list[float]:
    """``numpy.linspace`` without numpy: ``count`` evenly spaced values, ``stop`` exact."""
    if count == 1:
        return [start]
    step = (stop - start) / (count - 1)
    return [start + i * step for i in range(count - 1)] + [stop]


def _expand_range(param: str, kind: str, item: str) -> list[int | float] | None:
    """The numbers a range item stands for, or None when ``item`` is not a range."""
    count_re, range_re = (_COUNT_INT, _RANGE_INT) if kind == "int" else (_COUNT_FLOAT, _RANGE_FLOAT)
    if m := count_re.fullmatch(item):
        start, stop, count = _number(kind, m.group(1)), _number(kind, m.group(2)), int(m.group(3))
        if not 1 <= count <= MAX_AXIS_VALUES:
            raise ValidationError(param, item, f"the count in [N] must be between 1 and {MAX_AXIS_VALUES}")
        values = _spread(start, stop, count)
        return [int(v) for v in values] if kind == "int" else [round(v, 10) for v in values]
    m = range_re.fullmatch(item)
    if not m:
        return None
    start, stop = _number(kind, m.group(1)), _number(kind, m.group(2))
    step_text = m.group(3)
    if step_text is not None and step_text.strip()[0] not in "+-":
        raise ValidationError(param, item, f"the step needs its sign: ({'-' if stop < start else '+'}{step_text})")
    step = _number(kind, step_text) if step_text is not None else (1 if kind == "int" else 1.0)
    if step == 0:
        raise ValidationError(param, item, "the step must not be 0")
    if (stop - start) * step < 0:
        raise ValidationError(param, item, f"a step of {step:g} never goes from {start:g} to {stop:g}")
    n = math.floor((stop - start) / step + 1e-9) + 1
    if n > MAX_AXIS_VALUES:
        raise ValidationError(param, item, f"makes {n} values, more than {MAX_AXIS_VALUES}")
    values = [start + i * step for i in range(n)]
    return values if kind == "int" else [round(v, 10) for v in values]


def _typed(param: str, kind: str, item: str) -> Any:
    if kind in ("int", "float"):
        try:
            return _number(kind, item)
        except ValueError:
            what = "an integer" if kind == "int" else "a number"
            if re.search(r"[\d.+-]\s+[\d.]", item.strip()):
                raise ValidationError(param, item, f"has a space inside a number; write {what} without one") from None
            raise ValidationError(param, item, f"must be {what} or a range like 1-5, 1-5 (+2), 1-10 [5]") from None
    if kind == "size":
        return "{}x{}".format(*parse_size(item))
    if kind == "scheduler":
        return canonical_scheduler(item)
    return item


def parse_values(param: str, text: str) -> tuple[Any, ...]:
    """The typed values of one axis: ``parse_values("num_inference_steps", "5-20 (+5)")`` → ``(5, 10, 15, 20)``.

    Errors name the axis and the value at fault.
    """
    param = canonical_param(param)
    if param == "prompt_matrix":
        return tuple(prompt_matrix(text))
    kind = AXIS_PARAMS[param][0]
    items = split_csv(text)
    if not items:
        raise ValidationError(param, text, "the axis has no values")
    values: list[Any] = []
    for item in items:
        expanded = _expand_range(param, kind, item) if kind in ("int", "float") else None
        values.extend(expanded if expanded is not None else [_typed(param, kind, item)])
    if len(values) > MAX_AXIS_VALUES:
        raise ValidationError(param, text, f"makes {len(values)} values, more than {MAX_AXIS_VALUES}")
    if param == "prompt_sr" and len(values) < 1:
        raise ValidationError(param, text, "needs the text to search for first")
    _check_values(param, values)
    return tuple(values)


def _check_values(param: str, values: Sequence[Any]) -> None:
    """Refuse values that GenerationParams would refuse, naming the axis, before any work."""
    if param in ("prompt_sr", "prompt", "size", "scheduler"):
        if param == "prompt" and any(not v.strip() for v in values):
            raise ValidationError(param, "", "a prompt must not be empty")
        return
    probe = GenerationParams("probe", seed=0, variation_seed=0)  # variation_strength needs a variation seed
    for v in values:
        try:
            probe.replace(**({"loras": (("probe", v),)} if param == "lora_weight" else {param: v}))
        except ValidationError as exc:
            raise ValidationError(param, v, exc.reason) from None


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Axis:
    """One sweep axis: the parameter it sets, its values in order, and a label per value.

    Build it with :func:`parse_axis` (``Axis.parse("guidance_scale=1,4,7.5")``) or directly with typed
    values. ``param`` is a :data:`AXIS_PARAMS` name; ``prompt_sr`` values are the search text first,
    then its replacements (the first value leaves the prompt as it is).
    """

    param: str
    values: tuple[Any, ...]
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        param = canonical_param(self.param)
        if param == "prompt_matrix":
            raise ValidationError("axis", self.param, "build a prompt matrix axis with prompt_axis(text, 'matrix')")
        if param == "prompt_expand":
            raise ValidationError("axis", self.param, "build a prompt_expand axis with expand_axis(expand_prompt(…))")
        object.__setattr__(self, "param", param)
        values = tuple(self.values)
        if not values:
            raise ValidationError(param, values, "the axis has no values")
        _check_values(param, values)
        object.__setattr__(self, "values", values)
        labels = tuple(self.labels) or tuple(self.default_label(v) for v in values)
        if len(labels) != len(values):
            raise ValidationError(param, labels, f"{len(labels)} labels for {len(values)} values")
        object.__setattr__(self, "labels", labels)

    @classmethod
    def parse(cls, text: str) -> Axis:
        return parse_axis(text)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def name(self) -> str:
        """The name shown in labels and legends (``CFG``, ``Steps``, …)."""
        return AXIS_PARAMS[self.param][1]

    def default_label(self, value: Any) -> str:
        if self.param in ("prompt_sr", "prompt"):
            return str(value)
        return f"{self.name}: {_format(value)}"

    @property
    def text(self) -> str:
        """The axis in A1111 syntax, e.g. ``guidance_scale=1,4,7.5`` (values CSV-quoted where needed)."""
        buf = StringIO()
        csv.writer(buf, lineterminator="").writerow([_format(v) for v in self.values])
        return f"{self.param}={buf.getvalue()}"

    def apply(self, params: GenerationParams, value: Any) -> GenerationParams:
        """``params`` with this axis set to ``value``."""
        if self.param == "size":
            width, height = parse_size(value)
            return params.replace(width=width, height=height)
        if self.param == "prompt_sr":
            search = self.values[0]
            if search not in params.prompt and search not in params.negative_prompt:
                raise ValidationError(
                    "prompt_sr", search, f"is in neither the prompt {params.prompt!r} nor the negative prompt"
                )
            return params.replace(
                prompt=params.prompt.replace(search, value),
                negative_prompt=params.negative_prompt.replace(search, value),
            )
        if self.param == "lora_weight":
            return _with_lora_weight(params, value)
        return params.replace(**{self.param: value})

    @property
    def order(self) -> int:
        """When this axis is applied relative to the others (prompt first, Prompt S/R last)."""
        return _ORDER.get(self.param, 5)

    def to_dict(self) -> dict[str, Any]:
        return {"param": self.param, "values": list(self.values), "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Axis:
        return cls(data["param"], tuple(data["values"]), tuple(data.get("labels", ())))


_LORA_TAG = re.compile(r"(<lora:[^<>:]+)(?::[^<>:]*)?>", re.IGNORECASE)


def _with_lora_weight(params: GenerationParams, weight: float) -> GenerationParams:
    """``params`` with the weight of its one LoRA set: the one in ``loras``, else the prompt's one
    ``<lora:NAME:W>`` tag (rewritten in place). Refused when there is not exactly one."""
    tags = _LORA_TAG.findall(params.prompt)
    if len(params.loras) + len(tags) != 1:
        found = [name for name, _ in params.loras] + [t[len("<lora:") :] for t in tags]
        raise ValidationError(
            "lora_weight",
            weight,
            f"sets the weight of one LoRA, in loras or as a <lora:NAME:W> tag in the prompt; found {found or 'none'}",
        )
    if params.loras:
        return params.replace(loras=((params.loras[0][0], weight),))
    return params.replace(prompt=_LORA_TAG.sub(lambda m: f"{m.group(1)}:{_format(float(weight))}>", params.prompt))


def parse_axis(text: str) -> Axis:
    """``"num_inference_steps=5-20 (+5)"`` → ``Axis("num_inference_steps", (5, 10, 15, 20))``.

    ``PARAM=VALUES`` where PARAM is one of :data:`AXIS_PARAMS` (or ``steps``, ``cfg``, ``sampler``,
    ``prompt_matrix``), VALUES one CSV row with ranges for numbers.
    """
    if not isinstance(text, str) or "=" not in text:
        raise ValidationError("axis", text, "must look like PARAM=VALUES, e.g. guidance_scale=1,4,7.5")
    name, _, values = text.partition("=")
    param = canonical_param(name)
    if param == "prompt_matrix":
        return prompt_axis(values, "matrix")
    if param == "prompt_expand":
        raise ValidationError(
            "prompt_expand",
            values.strip(),
            "is made by a chat model first: sdkit sweep/study do it (--chat-model, a study's 'expand' key), "
            "or build the axis with sdkit.expand_prompt and expand_axis",
        )
    return Axis(param, parse_values(param, values))


def prompt_matrix(text: str) -> list[str]:
    """A1111's prompt matrix: ``"a cat|in snow|at night"`` → the first part with every subset of the others
    appended (2**(n-1) prompts, in A1111's order: subset ``i`` holds part ``k`` when bit ``k`` of ``i`` is set).
    """
    parts = [p.strip().strip(",").strip() for p in text.split("|")]
    base, options = parts[0], parts[1:]
    if len(options) > 10:
        raise ValidationError("prompt_matrix", text, f"{len(options)} options make {2 ** len(options)} prompts")
    prompts = []
    for i in range(2 ** len(options)):
        chosen = [opt for k, opt in enumerate(options) if i >> k & 1]
        prompts.append(", ".join(p for p in [base, *chosen] if p))
    if any(not p for p in prompts):
        raise ValidationError("prompt_matrix", text, "the first part must not be empty")
    return prompts


def _matrix_labels(text: str) -> list[str]:
    options = [p.strip().strip(",").strip() for p in text.split("|")][1:]
    labels = []
    for i in range(2 ** len(options)):
        chosen = [opt for k, opt in enumerate(options) if i >> k & 1]
        labels.append(" + ".join(chosen) if chosen else "(base)")
    return labels


def dynamic_prompts(
    template: str,
    *,
    mode: str = "combinatorial",
    count: int | None = None,
    seed: int | None = None,
    wildcards: str | None = None,
) -> list[str]:
    """Expand a dynamicprompts template (``"a {red|blue} {cat|dog}"``, ``__wildcard__``) with the
    dynamicprompts library: every combination (``combinatorial``, up to ``count``) or ``count`` random
    draws with ``seed`` (``random``). ``wildcards`` is a folder of wildcard files.
    """
    if mode not in ("combinatorial", "random"):
        raise ValidationError("mode", mode, "must be combinatorial or random")
    if count is not None and (not isinstance(count, int) or not 1 <= count <= MAX_AXIS_VALUES):
        raise ValidationError("count", count, f"must be between 1 and {MAX_AXIS_VALUES}")
    try:
        from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
        from dynamicprompts.wildcards import WildcardManager
    except ImportError:  # pragma: no cover - a core dependency
        from sdkit.errors import MissingDependencyError

        raise MissingDependencyError("dynamicprompts", "all") from None

    manager = WildcardManager(Path(wildcards)) if wildcards else WildcardManager()
    try:
        if mode == "combinatorial":
            generator = CombinatorialPromptGenerator(wildcard_manager=manager)
            prompts = generator.generate(template, max_prompts=count or MAX_AXIS_VALUES)
        else:
            generator = RandomPromptGenerator(wildcard_manager=manager, seed=seed)
            prompts = generator.generate(template, num_images=count or 1)
    except Exception as exc:  # the library's parse errors have no common base
        raise ValidationError("prompt", template, f"not a valid dynamicprompts template: {exc}") from None
    prompts = [str(p).strip() for p in prompts]
    if not prompts or any(not p for p in prompts):
        raise ValidationError("prompt", template, "the template expands to an empty prompt")
    return prompts


def prompt_axis(
    template: str,
    mode: str = "combinatorial",
    *,
    count: int | None = None,
    seed: int | None = None,
    wildcards: str | None = None,
) -> Axis:
    """An axis of whole prompts: ``mode="matrix"`` (A1111 prompt matrix, labelled by the parts added),
    or a dynamicprompts template, ``"combinatorial"`` or ``"random"`` (with ``count`` and ``seed``)."""
    if mode == "matrix":
        return Axis("prompt", tuple(prompt_matrix(template)), tuple(_matrix_labels(template)))
    return Axis("prompt", tuple(dynamic_prompts(template, mode=mode, count=count, seed=seed, wildcards=wildcards)))
