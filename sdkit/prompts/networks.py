"""Extra-network tags in a prompt: ``<lora:NAME:W>``, ``<lyco:…>``, ``<hypernet:NAME:W>``.

As in A1111, a tag is taken out of the text (the text encoder never reads it) and comes back as a
:class:`NetworkTag`. ``<lora:NAME>`` means weight 1; ``<lora:NAME:TE:UNET>`` gives the text encoder and the
UNet their own weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sdkit.errors import ValidationError

__all__ = ["KINDS", "NetworkTag", "lift_networks"]

#: Tag kinds A1111 users write; ``lyco`` is read as ``lora`` (A1111 merged LyCORIS into its LoRA support).
KINDS = {"lora": "lora", "lyco": "lora", "hypernet": "hypernet"}
_TAG = re.compile(r"<(\w+):([^>]+)>")


@dataclass(frozen=True)
class NetworkTag:
    """One ``<kind:name:weight>`` tag; ``unet_weight`` is the weight for the UNet when the tag gives two."""

    kind: str
    name: str
    weight: float = 1.0
    unet_weight: float | None = None

    def __str__(self) -> str:
        extra = f":{self.unet_weight:g}" if self.unet_weight is not None else ""
        return f"<{self.kind}:{self.name}:{self.weight:g}{extra}>"


def lift_networks(text: str, *, field: str = "prompt") -> tuple[str, tuple[NetworkTag, ...]]:
    """``text`` without its network tags, and the tags in the order written.

    Tags of other kinds (``<foo:bar>``) are left in the text, as A1111 does. A weight that is not a number
    is a :class:`ValidationError` naming the tag.

    >>> lift_networks("a cat <lora:hexagon:0.5>")
    ('a cat ', (NetworkTag(kind='lora', name='hexagon', weight=0.5, unet_weight=None),))
    """
    tags: list[NetworkTag] = []

    def take(match: re.Match) -> str:
        kind = KINDS.get(match.group(1).lower())
        if kind is None:
            return match.group(0)
        args = [a.strip() for a in match.group(2).split(":")]
        name = args[0]
        if not name:
            raise ValidationError(field, match.group(0), "names no network: write <lora:NAME:WEIGHT>")
        weights = [_weight(field, match.group(0), a) for a in args[1:3]]
        tags.append(NetworkTag(kind, name, weights[0] if weights else 1.0, weights[1] if len(weights) > 1 else None))
        return ""

    stripped = _TAG.sub(take, text)
    return stripped, tuple(tags)


def _weight(field: str, tag: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValidationError(field, tag, f"weight {raw!r} is not a number: write e.g. <lora:NAME:0.8>")
    return value
