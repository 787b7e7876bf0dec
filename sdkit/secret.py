"""API keys that cannot leak by accident: a wrapper whose repr and str are masked, and a scrubber."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "MIN_SCRUB_LENGTH", "Secret", "public_url", "scrub"]

MASK = "********"
#: Shorter values are not searched for (see :func:`scrub`).
MIN_SCRUB_LENGTH = 8

#: ``Bearer`` and a token as RFC 6750 spells it (``b64token``): it stops at a backslash, a quote or
#: a bracket, so a newline escaped in JSON and a data URI after it are left alone.
_BEARER = re.compile(r"(Bearer[ \t]+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)


class Secret:
    """A secret string. ``str()``, ``repr()`` and f-strings show ``********``; ``reveal()`` gives the value.

    Equality compares values; hashing is not offered (a secret is not a dict key).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a string, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The value itself: only for the Authorization header or an explicit ``include_key``."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self):  # a secret is not pickled with its value
        raise TypeError("a Secret cannot be pickled")


def _forms(value: str) -> list[str]:
    """The value as it may appear in a text: itself, and escaped as in JSON (``\\/``, ``\\uXXXX``)."""
    escaped = json.dumps(value)[1:-1]
    forms = {value, escaped, escaped.replace("/", "\\/"), json.dumps(value, ensure_ascii=False)[1:-1]}
    return sorted(forms, key=len, reverse=True)


def scrub(text: str, *secrets: Secret | str | None, patterns: bool = True) -> str:
    """``text`` with every given secret replaced by ``********``, and with ``patterns`` (default)
    every ``Bearer <token>`` too.

    A secret is also found escaped as in JSON. Values shorter than :data:`MIN_SCRUB_LENGTH` are
    placeholders, not keys (vLLM's ``EMPTY``, ``test``): replacing them would mangle replies
    (base64 images, ids), so they are left alone. ``patterns=False`` replaces the secrets only:
    a reply kept as received stays byte-exact but for the key.
    """
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= MIN_SCRUB_LENGTH:
            for form in _forms(value):
                text = text.replace(form, MASK)
    if not patterns:
        return text
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment (where credentials could hide)."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
