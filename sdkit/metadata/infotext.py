"""A1111 infotext: the ``parameters`` text that A1111, Civitai and PNG readers understand.

Pure functions: format a record as infotext and parse infotext back with A1111's own rule
(the last line holds parameters only when it has at least 3 ``key: value`` pairs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["format_infotext", "parse_infotext"]

_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_NEEDS_QUOTES = re.compile(r"[,:\n]")


def _value(v: Any) -> str:
    if isinstance(v, float):
        v = f"{v:g}"
    text = str(v)
    return json.dumps(text, ensure_ascii=False) if _NEEDS_QUOTES.search(text) else text


def format_infotext(prompt: str, negative_prompt: str, pairs: Mapping[str, Any]) -> str:
    """``prompt``, an optional ``Negative prompt:`` line, then ``Key: value, …`` (None values left out)."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{k}: {_value(v)}" for k, v in pairs.items() if v is not None))
    return "\n".join(lines)


def parse_infotext(text: str) -> dict[str, str]:
    """Parse infotext like A1111's ``parse_generation_parameters``.

    Returns ``Prompt``, ``Negative prompt`` and every ``key: value`` of the last line (quoted
    values unquoted), plus ``Size-1``/``Size-2`` split from ``Size``.
    """
    *lines, last = text.strip().split("\n")
    if len(_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:") :].lstrip()
        target.append(line)
    out: dict[str, str] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in _PAIR.findall(last):
        value = value.strip()
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key.strip()] = value
    size = re.fullmatch(r"(\d+)x(\d+)", out.get("Size", ""))
    if size:
        out["Size-1"], out["Size-2"] = size.groups()
    return out
