"""A1111 infotext: the ``parameters`` text that A1111, Civitai and PNG readers understand.

Pure functions: format a record as infotext and parse infotext back with A1111's own rule
(the last line holds parameters only when it has at least 3 ``key: value`` pairs).

A1111 writes its keys in a fixed order (:data:`A1111_KEYS`), then the extra parameters of
extensions and features (hires fix, LoRA and embedding hashes, …; :data:`A1111_EXTRA_KEYS` in the
order A1111 adds them, others after them in the order given), then ``Version`` and ``User``;
:func:`a1111_order` puts any mapping of pairs in that order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["A1111_EXTRA_KEYS", "A1111_KEYS", "a1111_order", "format_infotext", "format_value", "parse_infotext"]

_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_NEEDS_QUOTES = re.compile(r"[,:\n]")
_IMAGE_SIZE = re.compile(r"(\d+)x(\d+)")

#: The keys A1111 always places first, in its order (``create_infotext``; absent values are left out).
A1111_KEYS: tuple[str, ...] = (
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Face restoration",
    "Size",
    "Model hash",
    "Model",
    "FP8 weight",
    "Cache FP16 weight for LoRA",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "Denoising strength",
    "Conditional mask weight",
    "Clip skip",
    "ENSD",
    "Token merging ratio",
    "Token merging ratio hr",
    "Init image hash",
    "RNG",
    "NGMS",
    "Tiling",
)

#: Extra parameters A1111 adds after those, in the order it adds them (hires fix when the job is set
#: up, then LoRA hashes when networks load, then embedding hashes when the prompt is encoded).
A1111_EXTRA_KEYS: tuple[str, ...] = (
    "Hires prompt",
    "Hires negative prompt",
    "Hires upscale",
    "Hires resize",
    "Hires steps",
    "Hires upscaler",
    "Lora hashes",
    "TI hashes",
)

#: The keys A1111 always places last.
_LAST_KEYS = ("Version", "User")
_RANK = {k: i for i, k in enumerate((*A1111_KEYS, *A1111_EXTRA_KEYS))}


def a1111_order(pairs: Mapping[str, Any]) -> dict[str, Any]:
    """``pairs`` in A1111's order: its fixed keys, its known extras, other keys as given, then Version, User."""
    known = sorted((k for k in pairs if k in _RANK), key=_RANK.__getitem__)
    others = [k for k in pairs if k not in _RANK and k not in _LAST_KEYS]
    last = [k for k in _LAST_KEYS if k in pairs]
    return {k: pairs[k] for k in (*known, *others, *last)}


def format_value(v: Any) -> str:
    """A value as A1111 writes it: a whole float without its ``.0`` (``7``), any other float at full
    precision (``12.3456789``), a text with ``,``, ``:`` or a newline quoted as JSON."""
    if isinstance(v, float):
        v = str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    text = str(v)
    return json.dumps(text, ensure_ascii=False) if _NEEDS_QUOTES.search(text) else text


def format_infotext(prompt: str, negative_prompt: str, pairs: Mapping[str, Any]) -> str:
    """``prompt``, an optional ``Negative prompt:`` line, then ``Key: value, …`` (None values left out),
    the whole text stripped as A1111 does. Keys are written in the order given (see :func:`a1111_order`)."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{k}: {format_value(v)}" for k, v in pairs.items() if v is not None))
    return "\n".join(lines).strip()


def parse_infotext(text: str) -> dict[str, str]:
    """Parse infotext like A1111's ``parse_generation_parameters``.

    Returns ``Prompt``, ``Negative prompt`` and every ``key: value`` of the last line (quoted
    values unquoted), plus ``KEY-1``/``KEY-2`` split from a ``WxH`` value (``Size-1``, ``Size-2``).
    As in A1111, each line is stripped before it is read, so a ``Negative prompt:`` line that starts
    with whitespace is still the negative prompt.
    """
    *lines, last = text.strip().split("\n")
    if len(_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    texts = {"Prompt": "", "Negative prompt": ""}
    target = "Prompt"
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            target = "Negative prompt"
            line = line[len("Negative prompt:") :].strip()
        # A1111 joins with a newline only once its text is not empty: leading blank lines drop out
        texts[target] += ("\n" if texts[target] else "") + line
    out: dict[str, str] = dict(texts)
    for key, value in _PAIR.findall(last):
        value = value.strip()
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        key = key.strip()
        out[key] = value
        if isinstance(value, str) and (size := _IMAGE_SIZE.fullmatch(value)):
            out[f"{key}-1"], out[f"{key}-2"] = size.groups()
    return out
