"""Prompt ideas through the relay's Chat interface: a short idea → detailed Stable Diffusion prompts.

``POST {base_url}/v1/chat/completions`` with a text model, a system prompt asking for an SD-style
prompt (:data:`DEFAULT_SYSTEM_PROMPT`, editable) and the idea as the user message; ``n`` expansions are
``n`` requests, the i-th sending ``seed: i`` (OpenAI's chat ``seed``; relays may ignore it). Each
:class:`Expansion` keeps the chat model, the system prompt and the raw replies (key scrubbed), so a
sweep or study that used it records where its prompts came from; ``cache`` (a folder) keeps them
by :func:`expansion_key`, so asking again costs nothing.

The axis ``prompt_expand=N`` (:func:`expand_axis`) turns the base prompt into N expansions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdkit.errors import ReplyError, ValidationError
from sdkit.secret import Secret, public_url

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_SYSTEM_PROMPT",
    "MAX_EXPANSIONS",
    "Expansion",
    "expand_axis",
    "expand_prompt",
    "expansion_key",
]

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You write prompts for Stable Diffusion. Turn the user's idea into one detailed image prompt: the "
    "subject first, then setting, composition, lighting, colour palette, style and quality tags, as "
    "comma-separated phrases, under 60 words. Reply with the prompt only, no quotes, no explanation."
)
MAX_EXPANSIONS = 16


@dataclass(frozen=True)
class Expansion:
    """What one ``expand_prompt`` asked and got: ``prompts[i]`` from ``raw_replies[i]``."""

    idea: str
    prompts: tuple[str, ...]
    model: str
    system_prompt: str
    base_url: str
    temperature: float | None = None
    raw_replies: tuple[str, ...] = field(default=(), repr=False)

    @property
    def key(self) -> str:
        return expansion_key(
            self.idea, len(self.prompts), self.model, self.system_prompt, self.base_url, self.temperature
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "idea": self.idea,
            "prompts": list(self.prompts),
            "model": self.model,
            "system_prompt": self.system_prompt,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "raw_replies": list(self.raw_replies),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Expansion:
        try:
            return cls(
                idea=str(data["idea"]),
                prompts=tuple(str(p) for p in data["prompts"]),
                model=str(data["model"]),
                system_prompt=str(data["system_prompt"]),
                base_url=str(data["base_url"]),
                temperature=data.get("temperature"),
                raw_replies=tuple(str(r) for r in data.get("raw_replies", ())),
            )
        except (KeyError, TypeError) as exc:
            raise ValidationError("expansion", dict(data), f"is not an expansion record: {exc}") from None


def expansion_key(
    idea: str, n: int, model: str, system_prompt: str, base_url: str, temperature: float | None = None
) -> str:
    """The content hash an expansion is cached under (the base URL without credentials)."""
    what = {"idea": idea, "n": n, "model": model, "system": system_prompt, "url": public_url(base_url)}
    if temperature is not None:
        what["temperature"] = temperature
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def _clean(text: str) -> str:
    """The prompt in a reply: its first non-empty paragraph, quotes and a 'Prompt:' label taken off."""
    lines = [line.strip() for line in text.strip().splitlines()]
    para = next((line for line in lines if line), "")
    for label in ("prompt:", "Prompt:", "PROMPT:"):
        para = para.removeprefix(label).strip()
    return para.strip("\"'“”`").strip()


def expand_prompt(
    idea: str,
    *,
    model: str = DEFAULT_CHAT_MODEL,
    n: int = 1,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    temperature: float | None = None,
    base_url: str | None = None,
    api_key: Secret | str | None = None,
    client: Any = None,
    cache: str | Path | None = None,
) -> Expansion:
    """``n`` detailed SD prompts for ``idea`` from the chat ``model`` (see the module docstring).

    ``base_url``/``api_key`` default to ``SDKIT_BASE_URL``/``SDKIT_API_KEY``; or pass a ready
    :class:`~sdkit.Client`. With ``cache`` (a folder) an expansion asked before is read from there.
    """
    from sdkit.backends.relay.apirequest import ChatRequest, Message, SDExtras
    from sdkit.backends.relay.client import Client

    if not isinstance(idea, str) or not idea.strip():
        raise ValidationError("idea", idea, "must be a short text such as 'a lighthouse'")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_EXPANSIONS:
        raise ValidationError("n", n, f"must be between 1 and {MAX_EXPANSIONS}")
    if not isinstance(model, str) or not model.strip():
        raise ValidationError("model", model, "must be a chat model name")
    if not isinstance(system_prompt, str) or not system_prompt.strip():
        raise ValidationError("system_prompt", system_prompt, "must be a text")
    owns = client is None
    client = client or Client(base_url, api_key)
    try:
        key = expansion_key(idea, n, model, system_prompt, client.base_url, temperature)
        path = Path(cache) / f"{key}.json" if cache is not None else None
        if path is not None and path.is_file():
            try:
                return Expansion.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, ValidationError):
                pass  # a damaged cache entry is asked for again
        prompts, raws = [], []
        for i in range(n):
            request = ChatRequest(
                messages=(Message("system", system_prompt), Message("user", idea.strip())),
                model=model,
                temperature=temperature,
                extras=SDExtras(seed=i),
            )
            reply = client.chat(request, images=False)
            text = _clean(reply.reply.content)
            if not text:
                raise ReplyError(f"the chat model {model!r} sent no text for {idea!r}", reply.raw)
            prompts.append(text)
            raws.append(reply.raw)
        expansion = Expansion(
            idea=idea.strip(),
            prompts=tuple(prompts),
            model=model,
            system_prompt=system_prompt,
            base_url=client.scrub(public_url(client.base_url)),
            temperature=temperature,
            raw_replies=tuple(raws),
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(expansion.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return expansion
    finally:
        if owns:
            client.close()


def expand_axis(expansion: Expansion):
    """A ``prompt`` axis of the expansion's prompts, labelled ``idea 1``, ``idea 2``, …"""
    from sdkit.sweeps.axis import Axis

    return Axis("prompt", expansion.prompts, tuple(f"idea {i + 1}" for i in range(len(expansion.prompts))))


#: The axis that asks a chat model for N versions of the base prompt.
EXPAND_PARAM = "prompt_expand"
#: Where a sweep or study folder keeps its expansions (``KEY.json``, the record of model and replies).
EXPANSIONS_DIR = "expansions"


def expand_count(text: object) -> int | None:
    """N for an axis written ``prompt_expand=N``; None for any other axis."""
    if not isinstance(text, str) or "=" not in text:
        return None
    name, _, value = text.partition("=")
    if name.strip().lower().replace(" ", "_") != EXPAND_PARAM:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        raise ValidationError(
            EXPAND_PARAM, value.strip(), "must be a number of expansions, e.g. prompt_expand=3"
        ) from None
    if not 1 <= n <= MAX_EXPANSIONS:
        raise ValidationError(EXPAND_PARAM, n, f"must be between 1 and {MAX_EXPANSIONS}")
    return n


def resolve_expand_axes(
    axes: Mapping[str, Any], prompt: str, *, cache: str | Path | None, offline: bool = False, **options: Any
) -> tuple[dict[str, Any], Expansion | None]:
    """``axes`` with a ``prompt_expand=N`` axis replaced by the prompt axis of N expansions of ``prompt``
    (asked with ``options`` of :func:`expand_prompt`, kept in ``cache``), and that expansion. ``offline``:
    only from the cache (``verify``); a missing expansion is a ValidationError."""
    out = dict(axes)
    found = [(name, n) for name, text in axes.items() if (n := expand_count(text)) is not None]
    if not found:
        return out, None
    if len(found) > 1:
        raise ValidationError(EXPAND_PARAM, [name for name, _ in found], "only one axis can be prompt_expand")
    name, n = found[0]
    if offline:
        expansion = _cached(cache, prompt, n)
        if expansion is None:
            raise ValidationError(
                EXPAND_PARAM, n, f"its expansions are not in {cache}; run the study again to make them"
            )
    else:
        expansion = expand_prompt(prompt, n=n, cache=cache, **{k: v for k, v in options.items() if v is not None})
    out[name] = expand_axis(expansion)
    return out, expansion


def _cached(cache: str | Path | None, idea: str, n: int) -> Expansion | None:
    if cache is None or not Path(cache).is_dir():
        return None
    for path in sorted(Path(cache).glob("*.json")):
        try:
            expansion = Expansion.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError):
            continue
        if expansion.idea == idea.strip() and len(expansion.prompts) == n and path.stem == expansion.key:
            return expansion
    return None
