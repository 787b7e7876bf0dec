"""When and how long to wait before trying a request again (pure; the clients do the waiting).

Retried: connection errors, timeouts and the statuses 408, 409, 429 and 5xx. The wait is
exponential (``initial_delay * 2**attempt``, capped at ``max_delay``) with up to ``jitter`` of it
taken off at random, unless the server sent ``Retry-After`` (seconds or an HTTP date) or
``retry-after-ms`` of at most ``max_retry_after`` seconds, which is honoured as given.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sdkit.errors import ValidationError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "INITIAL_RETRY_DELAY",
    "JITTER",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "RETRY_STATUSES",
    "RetryPolicy",
    "retry_after_seconds",
    "should_retry_status",
]

DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
JITTER = 0.25
MAX_RETRY_AFTER = 60.0
RETRY_STATUSES = frozenset({408, 409, 429})


def should_retry_status(status_code: int) -> bool:
    """408, 409, 429 and every 5xx are worth another try."""
    return status_code in RETRY_STATUSES or status_code >= 500


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The server's wait hint: ``retry-after-ms``, ``Retry-After`` seconds or an HTTP date; None if absent."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(email.utils.mktime_tz(parsed) - (time.time() if now is None else now), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` more tries after the first, waits as described in the module docstring."""

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = INITIAL_RETRY_DELAY
    max_delay: float = MAX_RETRY_DELAY
    jitter: float = JITTER
    max_retry_after: float = MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ValidationError("max_retries", self.max_retries, "must be an integer ≥ 0")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValidationError(name, value, "must be a number of seconds ≥ 0")
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise ValidationError("jitter", self.jitter, "must be between 0 and 1")

    def delay(self, attempt: int, retry_after: float | None = None, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None and 0 <= retry_after <= self.max_retry_after:
            return retry_after
        base = min(self.initial_delay * 2**attempt, self.max_delay)
        return base * (1 - self.jitter * (rng or random).random())
