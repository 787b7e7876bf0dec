"""What a running server holds, handed to every endpoint as one frozen :class:`ServerState`: the job queue,
the image store, the served model and how its name is shown, the keys, and the request limits.
No FastAPI here: these are plain objects, built by :func:`sdkit.server.app.create_app`."""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdkit.backends.base import capabilities
from sdkit.backends.local.embedded import NATIVE_SIZE, is_embedded
from sdkit.errors import ValidationError
from sdkit.params import is_int
from sdkit.server.defaults import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_REQUEST_TIMEOUT_S,
    FALLBACK_NATIVE_SIZE,
    IMAGE_TTL_S,
    MAX_STORED_BYTES,
    MAX_STORED_IMAGES,
)
from sdkit.server.jobqueue import JobQueue
from sdkit.server.wire import DEFAULT_MAX_PROMPT_CHARS, WORK_STEPS_AT_NATIVE, ServedModel

__all__ = ["ImageStore", "Limits", "NativeSize", "ServerState", "scrubber", "served_model"]

_IMAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{22}\.png$")


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the server. ``max_queue`` requests wait (then 429); ``max_images``
    images per request; ``max_body_bytes`` per body (then 413), sent within ``body_timeout_s``
    (then 408); ``max_prompt_chars`` per prompt (then 400); ``max_work`` pixel-steps per request
    (None: the served model's native size at :data:`~sdkit.server.wire.WORK_STEPS_AT_NATIVE` steps);
    ``request_timeout_s`` from arrival to reply (then 504); ``max_store_bytes`` of images handed
    out as URLs."""

    max_queue: int = DEFAULT_MAX_QUEUE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_images: int = DEFAULT_MAX_IMAGES
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    max_work: int | None = None
    max_store_bytes: int = MAX_STORED_BYTES
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S

    def __post_init__(self) -> None:
        for name, value, lo in (
            ("max_queue", self.max_queue, 0),
            ("max_body_bytes", self.max_body_bytes, 1),
            ("max_images", self.max_images, 1),
            ("max_prompt_chars", self.max_prompt_chars, 1),
            ("max_store_bytes", self.max_store_bytes, 1),
            ("max_work", 1 if self.max_work is None else self.max_work, 1),
        ):
            if not is_int(value) or value < lo:
                raise ValidationError(name, value, f"must be an integer ≥ {lo}")
        for name, seconds in (("request_timeout_s", self.request_timeout_s), ("body_timeout_s", self.body_timeout_s)):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ValidationError(name, seconds, "must be a positive number of seconds")


class ImageStore:
    """PNGs handed out as URLs: in memory, under random ids, for ``ttl_s`` seconds, at most
    ``max_items`` of them and ``max_bytes`` in all (the oldest go first). Names are looked up,
    never used as paths."""

    def __init__(
        self, *, ttl_s: float = IMAGE_TTL_S, max_items: int = MAX_STORED_IMAGES, max_bytes: int = MAX_STORED_BYTES
    ) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """The bytes of the PNGs held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def put(self, png: bytes) -> str:
        name = secrets.token_urlsafe(16) + ".png"
        with self._lock:
            self._expire()
            self._items[name] = (time.monotonic() + self.ttl_s, png)
            self._bytes += len(png)
            while len(self._items) > self.max_items or (self._bytes > self.max_bytes and len(self._items) > 1):
                self._pop_oldest()
        return name

    def get(self, name: str) -> bytes | None:
        if not _IMAGE_NAME.match(name):
            return None
        with self._lock:
            self._expire()
            item = self._items.get(name)
        return item[1] if item else None

    def _pop_oldest(self) -> None:
        _, (_, png) = self._items.popitem(last=False)
        self._bytes -= len(png)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items and next(iter(self._items.values()))[0] < now:
            self._pop_oldest()


def served_model(model: str, model_id: str | None) -> ServedModel:
    """The model as clients see it: ``model_id``, or a folder's last part (its full path stays
    private), or a hub id whole."""
    if model_id is None:
        is_path = model.startswith((".", "/", "~")) or (os.sep in model and Path(model).expanduser().exists())
        model_id = Path(model).name if is_path else model
    return ServedModel(model=model, id=model_id, created=int(time.time()))


def scrubber(served: ServedModel) -> Callable[[str], str]:
    """A function that puts the model's public name in place of its local path in a message
    (an error naming ``/home/me/models/x`` is shown to clients as naming ``x``)."""
    forms = {served.model}
    try:
        path = Path(served.model).expanduser()
        forms |= {str(path), str(path.absolute()), str(path.resolve())}
    except (OSError, RuntimeError):  # pragma: no cover - odd paths
        pass
    ordered = sorted((f for f in forms if len(f) > 1 and f != served.id), key=len, reverse=True)

    def scrub(text: str) -> str:
        for form in ordered:
            text = text.replace(form, served.id)
        return text

    return scrub


def _pipe_native_size(pipe: Any) -> int | None:
    """The side a diffusers pipeline draws at by default (UNet sample size × VAE scale), when it says."""
    try:
        return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
    except (AttributeError, TypeError, ValueError):
        return None


class NativeSize:
    """The served model's native side, which sizes left out default to and the work budget scales
    with: read from the loaded pipeline once the queue is ready (backends that declare ``loads``),
    else the embedded models' size or SD 1.x's 512."""

    def __init__(self, queue: JobQueue, model: str) -> None:
        self._queue = queue
        self._model = model
        self._known: int | None = None

    def __call__(self) -> int:
        if self._known is not None:
            return self._known
        fallback = NATIVE_SIZE if is_embedded(self._model) else FALLBACK_NATIVE_SIZE
        if not self._queue.ready.is_set() or self._queue.warmup_error:
            return fallback
        backend = self._queue.backends[0]
        side = None
        if capabilities(backend).loads:
            try:
                side = _pipe_native_size(backend.load(self._model))  # type: ignore[attr-defined]
            except Exception:  # the request will report it
                side = None
        self._known = side or fallback
        return self._known


@dataclass(frozen=True)
class ServerState:
    """Everything an endpoint reads (``request.app.state.sdkit``)."""

    queue: JobQueue
    served: ServedModel
    images: ImageStore
    keys: tuple[bytes, ...] = ()
    limits: Limits = field(default_factory=Limits)
    #: The start of image URLs (a tunnel's address, say); None: the address the server is bound to.
    public_url: str | None = None
    native_size: Callable[[], int] = field(default=lambda: FALLBACK_NATIVE_SIZE)
    #: Puts the model's public name in place of its local path in messages shown to clients.
    scrub: Callable[[str], str] = field(default=lambda text: text)

    def work_budget(self) -> int:
        """The most pixel-steps one request may ask for."""
        if self.limits.max_work is not None:
            return self.limits.max_work
        return self.native_size() ** 2 * WORK_STEPS_AT_NATIVE
