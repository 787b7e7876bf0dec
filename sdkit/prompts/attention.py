"""A1111's emphasis syntax: ``(x)``, ``[x]``, ``(x:w)`` and ``BREAK``, read into weighted fragments.

Implemented from the behaviour A1111 documents (its wiki, "Attention/emphasis"), not from its code:

- ``(x)`` multiplies the weight of ``x`` by 1.1, ``[x]`` divides it by 1.1, ``(x:w)`` multiplies it by ``w``;
  nested brackets multiply;
- a bracket left open closes at the end of the text; a closing bracket with nothing open is text;
- ``\\(``, ``\\)``, ``\\[``, ``\\]`` and ``\\\\`` are the literal characters;
- ``BREAK`` (upper case, a word of its own) ends the current 75-token chunk: it comes back as
  ``("BREAK", BREAK_WEIGHT)``;
- neighbouring fragments of equal weight are merged.
"""

from __future__ import annotations

import re

__all__ = ["BREAK", "BREAK_WEIGHT", "EMPHASIS", "parse_attention", "plain_text"]

EMPHASIS = 1.1
BREAK = "BREAK"
#: The weight that marks a ``BREAK`` entry (no real fragment has a negative weight from brackets alone).
BREAK_WEIGHT = -1.0

_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]                          # an escaped bracket or backslash: literal
  | \\                                    # a lone backslash: literal
  | \(                                    # opens emphasis
  | \[                                    # opens de-emphasis
  | :\s*(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+))\s*\)   # ":1.3)" closes the innermost "(" with a weight
  | \)
  | \]
  | [^\\()\[\]:]+                         # plain text
  | :                                     # a colon that is not a weight
    """,
    re.VERBOSE,
)
_BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*")


def parse_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(fragment, weight)`` pairs the way A1111 reads emphasis.

    >>> parse_attention("a (red:1.5) [circle]")
    [('a ', 1.0), ('red', 1.5), (' ', 1.0), ('circle', 0.9090909090909091)]
    >>> parse_attention("(unnecessary)(parens)")
    [('unnecessaryparens', 1.1)]
    """
    parts: list[list] = []  # [text, weight] lists, weights multiplied in place as brackets close
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for part in parts[start:]:
            if part[1] != BREAK_WEIGHT or part[0] != BREAK:
                part[1] *= factor

    for match in _TOKEN.finditer(text):
        token = match.group(0)
        weight = match.group("weight")
        if token.startswith("\\") and len(token) == 2:
            parts.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(parts))
        elif token == "[":
            square_open.append(len(parts))
        elif weight is not None and round_open:
            multiply(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            multiply(round_open.pop(), EMPHASIS)
        elif token == "]" and square_open:
            multiply(square_open.pop(), 1 / EMPHASIS)
        else:
            pieces = _BREAK_SPLIT.split(token)
            for i, piece in enumerate(pieces):
                if i:
                    parts.append([BREAK, BREAK_WEIGHT])
                if piece:
                    parts.append([piece, 1.0])
    for start in reversed(round_open):
        multiply(start, EMPHASIS)
    for start in reversed(square_open):
        multiply(start, 1 / EMPHASIS)
    return _merge(parts)


def _merge(parts: list[list]) -> list[tuple[str, float]]:
    merged: list[list] = []
    for text, weight in parts:
        is_break = text == BREAK and weight == BREAK_WEIGHT
        if merged and not is_break and merged[-1][1] == weight and not _is_break(merged[-1]):
            merged[-1][0] += text
        else:
            merged.append([text, weight])
    if not merged:
        return [("", 1.0)]
    return [(text, weight) for text, weight in merged]


def _is_break(part: list) -> bool:
    return part[0] == BREAK and part[1] == BREAK_WEIGHT


def plain_text(text: str) -> str:
    """``text`` with the emphasis syntax taken out (what a model without it would read), BREAKs as spaces."""
    return "".join(" " if w == BREAK_WEIGHT and t == BREAK else t for t, w in parse_attention(text))
