"""How many tokens a prompt takes, as A1111's counter shows it (``42/75``, then ``80/150`` in two chunks)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sdkit.prompts.attention import parse_attention
from sdkit.prompts.chunks import CHUNK_TOKENS, chunk_fragments
from sdkit.prompts.networks import lift_networks
from sdkit.prompts.schedule import prompt_schedule

__all__ = ["TokenCount", "comma_id", "count_tokens", "count_with", "token_pieces"]


@dataclass(frozen=True)
class TokenCount:
    """``tokens`` the text encoder reads (start and end tokens not counted) in ``chunks`` of 75."""

    tokens: int
    chunks: int

    @property
    def limit(self) -> int:
        """Tokens that fit before another chunk begins (75 per chunk)."""
        return self.chunks * CHUNK_TOKENS

    @property
    def label(self) -> str:
        """``"1 chunk"``, ``"2 chunks"``."""
        return f"{self.chunks} chunk{'s' if self.chunks != 1 else ''}"

    def __str__(self) -> str:
        return f"{self.tokens}/{self.limit}"


def comma_id(tokenizer: Any) -> int | None:
    """The id of CLIP's end-of-word comma (``,</w>``), which A1111's chunking backs up to; None if it has none."""
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    return comma if isinstance(comma, int) and comma != tokenizer.unk_token_id else None


def token_pieces(tokenizer: Any, text: str) -> list[list[int]]:
    """``text``'s token ids without start and end tokens, one piece each (what :func:`chunk_fragments` takes)."""
    if not text.strip():
        return []
    return [[t] for t in tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids]


def count_with(tokenizer: Any, prompt: str, *, steps: int = 20) -> TokenCount:
    """Count ``prompt`` with a loaded CLIP tokenizer: network tags left out, weights' syntax not counted,
    BREAK and long prompts in chunks; with prompt editing, the step whose text is longest."""
    comma = comma_id(tokenizer)

    def tokenize(text: str) -> list[list[int]]:
        return token_pieces(tokenizer, text)

    text = lift_networks(prompt)[0] if "<" in prompt else prompt
    best = TokenCount(0, 1)
    for entry in prompt_schedule(text, steps):
        chunks = chunk_fragments(parse_attention(entry.text), tokenize, comma_id=comma)
        count = TokenCount(sum(len(c.tokens) for c in chunks), len(chunks))
        if (count.chunks, count.tokens) > (best.chunks, best.tokens):
            best = count
    return best


def count_tokens(prompt: str, model: str = "tiny", *, steps: int = 20) -> TokenCount:
    """Tokens and chunks of ``prompt`` for ``model`` (an embedded model, a local diffusers folder or a
    cached hub id; only its tokenizer is read).

    >>> str(count_tokens("a red circle on a blue background"))  # doctest: +SKIP
    '7/75'
    """
    return count_with(_tokenizer(model), prompt, steps=steps)


@functools.lru_cache(maxsize=4)
def _tokenizer(model: str) -> Any:
    from sdkit.backends.local.pipeline import model_folder
    from sdkit.errors import ModelError

    folder, _ = model_folder(model)
    if folder is None:
        raise ModelError(f"model={model!r}: its tokenizer is not on this machine (download the model first)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True)
