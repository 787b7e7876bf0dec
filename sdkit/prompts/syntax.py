"""Whether a prompt uses A1111's prompt language at all (pure; no tokenizer)."""

from __future__ import annotations

import re

from sdkit.prompts.attention import parse_attention
from sdkit.prompts.chunks import CHUNK_TOKENS
from sdkit.prompts.networks import lift_networks
from sdkit.prompts.schedule import has_schedule

__all__ = ["ENCODING_VERSION", "is_plain_text", "may_use_prompt_language"]

#: Recorded in sweep cache keys of prompts that sdkit reads differently since it speaks A1111's prompt
#: language (before, weights were literal text and long prompts were cut at 75 tokens).
ENCODING_VERSION = "a1111-1"

_PIECE = re.compile(r"\w+|[^\w\s]")


def is_plain_text(text: str) -> bool:
    """Whether ``text`` uses none of the syntax: no weights, brackets, escapes, BREAK, edits or alternation."""
    if not any(c in text for c in "()[]\\") and "BREAK" not in text:
        return True
    fragments = parse_attention(text)
    return len(fragments) == 1 and fragments[0] == (text, 1.0) and not has_schedule(text)


def may_use_prompt_language(text: str) -> bool:
    """Whether ``text`` may read differently with the prompt language than as plain text cut at 75 tokens:
    any syntax, a network tag, or more words and marks than fit in one chunk (each is at least one token)."""
    if not is_plain_text(text):
        return True
    if "<" in text and lift_networks(text)[1]:
        return True
    return len(_PIECE.findall(text)) > CHUNK_TOKENS
