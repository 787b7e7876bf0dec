"""A1111's long prompts: weighted tokens in chunks of 75, each encoded alone by the text encoder.

- Tokens fill a chunk up to 75 (the text encoder's 77 less its start and end tokens), then a new chunk begins.
- ``BREAK`` ends the chunk it is in (the rest is padding) and starts a new one.
- When a chunk fills up and its last comma is at most ``backtrack`` tokens from the end, the tokens after that
  comma move to the next chunk, so a phrase is not cut in two (A1111's "padding from the last comma",
  20 tokens by default).
- A textual-inversion embedding of several vectors is never split between chunks.
- An empty prompt is one empty chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sdkit.prompts.attention import BREAK, BREAK_WEIGHT

__all__ = ["CHUNK_TOKENS", "COMMA_BACKTRACK", "Chunk", "chunk_fragments"]

CHUNK_TOKENS = 75
COMMA_BACKTRACK = 20

#: Reads a text into pieces of token ids; a piece (an embedding's vectors) is never split.
Tokenize = Callable[[str], Sequence[Sequence[int]]]


@dataclass(frozen=True)
class Chunk:
    """Up to 75 token ids (no start or end token) and the weight of each."""

    tokens: tuple[int, ...]
    weights: tuple[float, ...]


def chunk_fragments(
    fragments: Sequence[tuple[str, float]],
    tokenize: Tokenize,
    *,
    comma_id: int | None = None,
    size: int = CHUNK_TOKENS,
    backtrack: int = COMMA_BACKTRACK,
) -> tuple[Chunk, ...]:
    """Weighted fragments (from :func:`~sdkit.prompts.parse_attention`) as chunks of at most ``size`` tokens."""
    chunks: list[Chunk] = []
    ids: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close() -> None:
        nonlocal ids, weights, last_comma
        chunks.append(Chunk(tuple(ids), tuple(weights)))
        ids, weights, last_comma = [], [], -1

    for text, weight in fragments:
        if text == BREAK and weight == BREAK_WEIGHT:
            close()
            continue
        for piece in tokenize(text):
            piece = list(piece)
            if len(ids) + len(piece) > size:
                if len(piece) == 1 and last_comma >= 0 and len(ids) - last_comma <= backtrack:
                    keep = last_comma + 1
                    moved_ids, moved_weights = ids[keep:], weights[keep:]
                    ids, weights = ids[:keep], weights[:keep]
                    close()
                    ids, weights = moved_ids, moved_weights
                else:
                    close()
            for token in piece[:size]:  # an embedding longer than a chunk is cut (no model has one)
                ids.append(token)
                weights.append(weight)
                if token == comma_id:
                    last_comma = len(ids) - 1
    if ids or not chunks:
        close()
    return tuple(chunks)
