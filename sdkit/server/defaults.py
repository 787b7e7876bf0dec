"""The server's defaults and limits, in one place (``create_app``'s, ``run_server``'s and the image store's)."""

from __future__ import annotations

__all__ = [
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_IMAGES",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_PORT",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "FALLBACK_NATIVE_SIZE",
    "IMAGE_TTL_S",
    "MAX_STORED_BYTES",
    "MAX_STORED_IMAGES",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Requests that may wait for a busy worker (then 429 with ``Retry-After``).
DEFAULT_MAX_QUEUE = 32
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_IMAGES = 4
#: Seconds a request may take, waiting and generating, before it is stopped and answered 504.
DEFAULT_REQUEST_TIMEOUT_S = 300.0
#: Seconds a client has to send a request's headers, and then its body, before it is dropped.
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
#: Seconds an image handed out as a URL is kept, and how many are kept at most.
IMAGE_TTL_S = 3600.0
MAX_STORED_IMAGES = 256
#: The image store's cap in bytes (the oldest images go first).
MAX_STORED_BYTES = 128 << 20
#: Native side assumed for a model whose pipeline does not say (SD 1.x).
FALLBACK_NATIVE_SIZE = 512
