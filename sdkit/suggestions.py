"""Close names for a mistyped one: models, schedulers, parameters, axes, study keys.

One helper on :func:`difflib.get_close_matches`, case-insensitive, with an optional table of
other names people type (``cfg`` for ``guidance_scale``).

>>> did_you_mean("Eular a", ["Euler", "Euler a", "DDIM"])
"did you mean 'Euler a' or 'Euler'?"
>>> did_you_mean("cfg", ["guidance_scale", "seed"], aliases={"cfg": "guidance_scale"})
"did you mean 'guidance_scale'?"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["close_names", "did_you_mean"]

#: How alike a name must be (difflib's ratio) to be suggested.
CUTOFF = 0.6
MOST = 3


def close_names(
    word: object, choices: Iterable[str], *, aliases: Mapping[str, str] | None = None, n: int = MOST
) -> list[str]:
    """Up to ``n`` of ``choices`` that ``word`` probably meant, best first (case-insensitive;
    an entry of ``aliases`` — lower-case name → one of the choices — counts as a match)."""
    if not isinstance(word, str):
        return []
    key = " ".join(word.split()).lower()
    by_lower = {c.lower(): c for c in choices}
    alias_targets = {k.lower(): v for k, v in (aliases or {}).items() if v in by_lower.values()}
    if key in by_lower:  # only the case differs: that is the one
        return [by_lower[key]]
    if key in alias_targets:
        return [alias_targets[key]]
    candidates = [*by_lower, *alias_targets]
    matches = difflib.get_close_matches(key, candidates, n=n, cutoff=CUTOFF)
    # best first; equally close ones in the order given (difflib puts them in reverse alphabetical order)
    matches.sort(key=lambda m: (-difflib.SequenceMatcher(None, key, m).ratio(), candidates.index(m)))
    found = [by_lower.get(match) or alias_targets[match] for match in matches]
    return list(dict.fromkeys(found))[:n]


def did_you_mean(
    word: object, choices: Iterable[str], *, aliases: Mapping[str, str] | None = None, n: int = MOST
) -> str:
    """``"did you mean 'tiny'?"`` (or ``'a' or 'b'``), or ``""`` when nothing is close."""
    names = close_names(word, choices, aliases=aliases, n=n)
    if not names:
        return ""
    return f"did you mean {' or '.join(repr(name) for name in names)}?"
