"""Init images for img2img, kept by content: ``GenerationParams.init_image`` holds ``"sha256:<hex>"``.

A path, an ``http(s)://`` or ``data:`` URL or a PIL image given as ``init_image`` is read once at the boundary,
turned to RGB and stored under the sha256 of its pixels (width, height, then the RGB bytes), so the same picture
in PNG or WebP gives the same key, parameters stay JSON and cache keys change exactly when the picture does.
The store is this process's memory plus ``<cache>/init-images/<hex>.png`` (``$SDKIT_CACHE_DIR`` or the platform's
cache folder), so ``verify`` in another process on this machine finds the picture again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

from sdkit.errors import ValidationError

__all__ = ["KEY_PREFIX", "init_image_key", "init_image_png", "load_init_image", "store_init_image"]

KEY_PREFIX = "sha256:"
_KEY = re.compile(r"sha256:[0-9a-f]{64}")
URL_TIMEOUT_S = 30.0
MAX_URL_BYTES = 50 * 2**20
_memory: dict[str, Any] = {}


def _folder() -> Path:
    from sdkit.backends.local.embedded import cache_dir

    return cache_dir() / "init-images"


def pixel_sha256(image: Any) -> str:
    """sha256 of an RGB image's size and pixels (hex)."""
    h = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def store_init_image(image: Any) -> str:
    """Keep ``image`` (a PIL image) and return its key ``"sha256:<hex>"``."""
    rgb = image.convert("RGB")
    rgb.load()
    digest = pixel_sha256(rgb)
    key = KEY_PREFIX + digest
    _memory[key] = rgb
    path = _folder() / f"{digest}.png"
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            rgb.save(tmp, format="PNG")
            os.replace(tmp, path)
        except OSError:  # a read-only cache: the picture stays in memory for this process
            pass
    return key


def _open(field: str, value: object, data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValidationError(field, value, f"is not an image PIL can read ({exc})") from None
    return image


def _fetch(value: str) -> bytes:
    if value.startswith("data:"):
        head, _, payload = value.partition(",")
        try:
            return base64.b64decode(payload, validate=True) if head.endswith(";base64") else payload.encode()
        except ValueError:
            raise ValidationError("init_image", value[:40] + "…", "a data: URL with bad base64") from None
    import httpx

    try:
        reply = httpx.get(value, timeout=URL_TIMEOUT_S, follow_redirects=True)
        reply.raise_for_status()
    except httpx.HTTPError as exc:
        raise ValidationError("init_image", value, f"could not be downloaded ({exc})") from None
    if len(reply.content) > MAX_URL_BYTES:
        raise ValidationError("init_image", value, f"is larger than {MAX_URL_BYTES // 2**20} MB")
    return reply.content


def init_image_key(value: object) -> str:
    """The key for an ``init_image`` value: a key passes as it is (known or not: see :func:`load_init_image`);
    a PIL image, a path or a URL is read and stored. Anything else is refused naming the field."""
    if isinstance(value, str) and value.startswith(KEY_PREFIX):
        if not _KEY.fullmatch(value):
            raise ValidationError("init_image", value, "a key must be 'sha256:' and 64 lower-case hex digits")
        return value
    if hasattr(value, "convert") and hasattr(value, "tobytes"):  # a PIL image
        return store_init_image(value)
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, str) and text.startswith(("http://", "https://", "data:")):
            return store_init_image(_open("init_image", text[:80], _fetch(text)))
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValidationError("init_image", text, "no such file (give a path, an http(s) URL or a PIL image)")
        return store_init_image(_open("init_image", text, path.read_bytes()))
    raise ValidationError("init_image", value, "must be a path, an http(s) URL, a PIL image or a 'sha256:' key")


def has_init_image(key: str) -> bool:
    return key in _memory or (_folder() / f"{key[len(KEY_PREFIX) :]}.png").is_file()


def load_init_image(key: str) -> Any:
    """The RGB PIL image stored under ``key``; a :class:`ValidationError` when this machine has never seen it."""
    if key in _memory:
        return _memory[key]
    path = _folder() / f"{key[len(KEY_PREFIX) :]}.png"
    if path.is_file():
        from PIL import Image

        with Image.open(path) as f:
            image = f.convert("RGB")
        if KEY_PREFIX + pixel_sha256(image) == key:
            _memory[key] = image
            return image
    raise ValidationError(
        "init_image", key, "no picture with this key on this machine: give the image itself (path, URL or PIL image)"
    )


def init_image_png(key: str) -> bytes:
    """The picture stored under ``key`` as PNG bytes (what an API that takes an image file is sent)."""
    buf = io.BytesIO()
    load_init_image(key).save(buf, format="PNG")
    return buf.getvalue()


INPUTS = "inputs"


def save_init_images(keys: Any, folder: str | os.PathLike) -> list[Path]:
    """Copy the init images named by ``keys`` into ``folder/inputs/<hex>.png`` (a run folder carries its inputs)."""
    written = []
    for key in dict.fromkeys(k for k in keys if k):
        path = Path(folder) / INPUTS / f"{key[len(KEY_PREFIX) :]}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            load_init_image(key).save(path, format="PNG")
        written.append(path)
    return written


def load_folder_inputs(folder: str | os.PathLike) -> list[str]:
    """Make the pictures in ``folder/inputs`` known (each checked against its name); their keys."""
    from PIL import Image

    keys = []
    for path in sorted((Path(folder) / INPUTS).glob("*.png")):
        with Image.open(path) as f:
            image = f.convert("RGB")
        if pixel_sha256(image) == path.stem:
            keys.append(store_init_image(image))
    return keys
