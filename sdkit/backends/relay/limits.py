"""How much a relay may send the client: the bounds on every reply and image, in one place.

A relay is someone else's server. Whatever it sends (a gzip bomb, a ``Content-Length`` of 2 GB, a
stream that never ends, a byte a minute, a PNG declaring 30000×30000 pixels), the client stops
at one of these limits with an :class:`~sdkit.SdkitError` naming the limit and how to raise it.
The time for one whole request is the client's ``timeout``; a streamed reply gets
``stream_timeout`` instead (its chunks still each arrive within ``timeout``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdkit.errors import ValidationError

__all__ = [
    "DEFAULT_MAX_IMAGES",
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_MAX_REPLY_BYTES",
    "DEFAULT_STREAM_TIMEOUT",
    "ERROR_BODY_BYTES",
    "Limits",
]

MiB = 1024 * 1024
#: A reply's body after decompression (a chat reply carries its images as base64).
DEFAULT_MAX_REPLY_BYTES = 64 * MiB
#: One image, fetched from a URL or decoded from the reply.
DEFAULT_MAX_IMAGE_BYTES = 32 * MiB
#: Width × height of one image (8192×8192), checked from its header before it is decoded.
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192
#: Images taken from one reply.
DEFAULT_MAX_IMAGES = 16
#: Redirects followed for one request.
DEFAULT_MAX_REDIRECTS = 5
#: Seconds for a whole streamed reply (``stream=True``).
DEFAULT_STREAM_TIMEOUT = 600.0
#: How much of an error reply (non-2xx) is read; the rest is dropped.
ERROR_BODY_BYTES = 64 * 1024


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError(name, value, "must be an integer ≥ 1")


@dataclass(frozen=True)
class Limits:
    """The client's bounds on what a relay sends; ``Client(limits=Limits(max_reply_bytes=256 * 2**20))``."""

    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_images: int = DEFAULT_MAX_IMAGES
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("max_reply_bytes", "max_image_bytes", "max_image_pixels", "max_images"):
            _positive_int(name, getattr(self, name))
        if not isinstance(self.max_redirects, int) or isinstance(self.max_redirects, bool) or self.max_redirects < 0:
            raise ValidationError("max_redirects", self.max_redirects, "must be an integer ≥ 0")
        value = self.stream_timeout
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
            raise ValidationError("stream_timeout", value, "must be a finite number of seconds > 0")

    @staticmethod
    def hint(name: str) -> str:
        """How to raise the limit ``name``, for error messages."""
        if name == "timeout":
            return "raise it with Client(timeout=…)"
        return f"raise it with Client(limits=Limits({name}=…))"
