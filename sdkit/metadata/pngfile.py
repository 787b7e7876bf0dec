"""PNG files with their parameters: A1111 infotext in ``parameters``, sdkit's record in ``sdkit``.

Every write is atomic (a temporary file in the same folder, then a rename), so an interrupted
run never leaves half a PNG. Files get the mode an ordinary ``open()`` would give them
(``0o666`` less the umask), not the ``0o600`` of a temporary file.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit import __version__
from sdkit.errors import OutputError
from sdkit.metadata.imagemeta import read_image_metadata
from sdkit.metadata.infotext import a1111_order, format_infotext, parse_infotext

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.result import GenerationResult

__all__ = [
    "atomic_write_bytes",
    "data_uri",
    "png_bytes",
    "read_png_metadata",
    "record_infotext",
    "save_result",
    "write_png",
]


@contextmanager
def output_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into an :class:`OutputError` naming it."""
    try:
        yield
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) and not Path(exc.filename).name.startswith(".") else path
        raise OutputError(
            f"could not write {where}: {exc.strerror or exc}; what was written before is kept, "
            "run again once the folder is writable to resume"
        ) from exc


RECORD_KEY = "sdkit"
INFOTEXT_KEY = "parameters"


def mode_pairs(p: Mapping[str, Any]) -> dict[str, Any]:
    """A1111's keys for variation seeds, img2img and hires fix (only those in use)."""
    pairs: dict[str, Any] = {}
    if p.get("variation_strength"):
        pairs["Variation seed"] = p.get("variation_seed")
        pairs["Variation seed strength"] = p["variation_strength"]
    hires = p.get("hires_scale", 1.0) > 1
    if p.get("init_image"):
        pairs["Denoising strength"] = p.get("denoising_strength", 0.75)
    elif hires:
        pairs["Denoising strength"] = p.get("hires_denoising", 0.5)
    if hires:
        pairs["Hires upscale"] = p["hires_scale"]
        pairs["Hires steps"] = p.get("hires_steps")
        pairs["Hires upscaler"] = p.get("hires_upscaler", "latent").capitalize()
        if p.get("init_image"):
            pairs["Hires denoising"] = p.get("hires_denoising", 0.5)
    return pairs


#: The key of a record's optional mapping of further infotext pairs (``{"Clip skip": 2, "TI hashes": "…"}``).
INFOTEXT_EXTRAS_KEY = "infotext"


def record_infotext(record: Mapping[str, Any], extras: Mapping[str, Any] | None = None) -> str:
    """A1111 infotext for one image's sdkit record.

    Further pairs (``Clip skip``, ``Variation seed``, ``Denoising strength``, ``Hires upscale``,
    ``Lora hashes``, ``TI hashes``, …) come from ``extras`` and from the record's own ``infotext``
    mapping (``extras`` wins); every key lands in A1111's place and spelling (:func:`a1111_order`),
    and a key whose value is None is left out, so a record without them gives the text it always gave.
    """
    p = record["params"]
    size = f"{p['width']}x{p['height']}" if p.get("width") and p.get("height") else None
    model = record.get("model")
    model_name = Path(model).name if model and ("/" in model or os.sep in model) else model
    if model_name and model_name.lower().endswith(".safetensors"):  # A1111 names a checkpoint without it
        model_name = model_name[: -len(".safetensors")]
    pairs = {
        "Steps": p["num_inference_steps"],
        "Sampler": record.get("scheduler") or p.get("scheduler"),
        "CFG scale": p["guidance_scale"],
        "Seed": record.get("seed"),
        "Size": size,
        "Model hash": (record.get("model_hash") or "")[:10] or None,
        "Model": model_name,
        "Clip skip": p["clip_skip"] if (p.get("clip_skip") or 1) > 1 else None,  # A1111 leaves out 1 (the last layer)
        "TI hashes": ", ".join(f"{name}: {h}" for name, h in record["ti_hashes"].items())
        if record.get("ti_hashes")
        else None,
        **mode_pairs(p),
        "Lora hashes": _lora_hashes(record),
        "RNG": "CPU" if record.get("generator") == "cpu" else None,
        "Backend": record.get("backend") if record.get("backend") != "local" else None,
        "Version": f"sdkit {record.get('sdkit', __version__)}",
    }
    pairs.update(record.get(INFOTEXT_EXTRAS_KEY) or {})
    pairs.update(extras or {})
    from sdkit.backends.local.loras import prompt_with_lora_tags

    prompt = prompt_with_lora_tags(p["prompt"], p.get("loras") or ())
    return format_infotext(prompt, p.get("negative_prompt", ""), a1111_order(pairs))


def _lora_hashes(record: Mapping[str, Any]) -> str | None:
    """A1111's ``Lora hashes`` value, ``name: hash, …`` (None without LoRAs)."""
    hashes = record.get("lora_hashes") or {}
    return ", ".join(f"{name}: {h}" for name, h in hashes.items()) or None


@cache
def _umask_by_swapping() -> int:
    # os.umask can only be read by setting it: done once per process, and only where /proc cannot tell.
    # Between the two calls another thread creating a file would get umask 0, hence once, cached.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status)."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("Umask:"):
                        return int(line.split()[1], 8)
        except (OSError, ValueError, IndexError):
            pass
    return _umask_by_swapping()


def file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~_umask()


def _write_temp(folder: Path, name: str, data: bytes) -> str:
    """A complete temporary copy of ``data`` in ``folder`` with the ordinary file mode; returns its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
            os.chmod(tmp, file_mode())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    tmp = _write_temp(path.parent, path.name, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _claim(tmp: str, path: Path) -> bool:
    """Give ``tmp`` the name ``path`` only if no file has it (atomically); False when taken."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: reserve the name, then replace the placeholder
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, file_mode()))
        except FileExistsError:
            return False
        os.replace(tmp, path)
        return True


def _write_numbered(folder: Path, number: int, stem: str, data: bytes) -> tuple[Path, int]:
    """Write ``data`` as ``NNNNN-STEM.png`` in ``folder`` under the first free number from ``number``
    on. The name is claimed atomically (a hard link), so writers in other processes never overwrite
    each other's files. Returns the path and the number used."""
    tmp = _write_temp(folder, f"{number:05d}-{stem}.png", data)
    try:
        while not _claim(tmp, path := folder / f"{number:05d}-{stem}.png"):
            number += 1
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path, number


def png_bytes(
    image: Image,
    record: Mapping[str, Any] | None = None,
    *,
    compress_level: int = 6,
    infotext_extras: Mapping[str, Any] | None = None,
) -> bytes:
    """PNG bytes of ``image``; with a ``record``, carrying ``parameters`` (A1111, with ``infotext_extras``:
    see :func:`record_infotext`) and ``sdkit`` (JSON) text chunks. ``compress_level`` 1 encodes previews ~5x
    faster, a little larger."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if record is not None:
        info.add_text(INFOTEXT_KEY, record_infotext(record, infotext_extras))
        info.add_text(RECORD_KEY, json.dumps(record, sort_keys=True, ensure_ascii=False))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()


def data_uri(image: Image | bytes) -> str:
    """A ``data:image/png;base64,…`` URI of an image (or of PNG bytes), for HTML and chat replies."""
    png = image if isinstance(image, bytes) else png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def write_png(path: str | os.PathLike, image: Image, record: Mapping[str, Any]) -> Path:
    path = Path(path)
    atomic_write_bytes(path, png_bytes(image, record))
    return path


_NUMBERED = re.compile(r"^(\d{5})-")


def _next_number(folder: Path) -> int:
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=-1) + 1


def save_result(result: GenerationResult, folder: str | os.PathLike) -> list[Path]:
    """Write every image of ``result`` as ``NNNNN-SEED.png`` into ``folder``; never overwrites, even with
    other processes saving into the same folder at the same time (names are claimed atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    number = _next_number(folder)
    paths = []
    for item in result:
        seed = "x" if item.seed is None else str(item.seed)
        path, number = _write_numbered(folder, number, seed, png_bytes(item.image, item.record))
        paths.append(path)
        number += 1
    return paths


def read_png_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """What :func:`~sdkit.read_image_metadata` reads, as a plain dict: ``text`` (all text chunks),
    ``parameters`` (A1111 infotext parsed, when present) and ``sdkit`` (sdkit's record, when present;
    None when it is not valid JSON)."""
    meta = read_image_metadata(path)
    out: dict[str, Any] = {"text": dict(meta.raw)}
    if INFOTEXT_KEY in meta.raw and meta.source != "fooocus":  # Fooocus writes JSON there, not infotext
        out["parameters"] = parse_infotext(meta.raw[INFOTEXT_KEY])
    if RECORD_KEY in meta.raw:
        out["sdkit"] = dict(meta.record) if meta.record is not None else None
    return out
