"""Who may use the server: API keys (``--api-key``, ``$SDKIT_SERVER_API_KEYS``), checked as Bearer tokens in
constant time, and the warning for a server that listens beyond this machine without one. Pure: no FastAPI."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence

from sdkit.errors import ValidationError

__all__ = ["API_KEYS_ENV", "authorized", "check_keys", "exposure_warning", "is_loopback", "keys_from_env"]

#: Comma-separated API keys the server accepts (``--api-key`` adds to them).
API_KEYS_ENV = "SDKIT_SERVER_API_KEYS"


def keys_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys in ``$SDKIT_SERVER_API_KEYS`` (comma-separated, blanks dropped)."""
    raw = (os.environ if environ is None else environ).get(API_KEYS_ENV, "")
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_keys: Sequence[str]) -> str | None:
    """A warning when the server would listen beyond this machine with no key, else None."""
    if api_keys or is_loopback(host):
        return None
    return (
        f"sdkit serve is listening on {host} without an API key: anyone who can reach this port can use "
        f"the GPU. Set --api-key or ${API_KEYS_ENV}."
    )


def check_keys(api_keys: Iterable[str]) -> tuple[bytes, ...]:
    """The keys as bytes, each checked (never shown in the error: it is a secret)."""
    keys = tuple(api_keys)
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key):
            raise ValidationError(f"api_keys[{i}]", "<hidden>", "must be a non-empty string without spaces")
    return tuple(k.encode() for k in keys)


def authorized(header: str | None, keys: Sequence[bytes]) -> bool:
    """Whether an ``Authorization`` header carries one of ``keys`` as a Bearer token.
    Every key is compared in constant time, so the reply time does not tell which matched."""
    if not keys:
        return True
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    given = token.strip().encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key)
    return ok
