"""PNG files with their parameters: A1111 infotext in ``parameters``, sdkit's record in ``sdkit``.

Every write is atomic (a temporary file in the same folder, then a rename), so an interrupted
run never leaves half a PNG.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .infotext import format_infotext, parse_infotext

if TYPE_CHECKING:
    from PIL.Image import Image

    from .result import GenerationResult

__all__ = ["atomic_write_bytes", "read_png_metadata", "record_infotext", "save_result", "write_png"]

RECORD_KEY = "sdkit"
INFOTEXT_KEY = "parameters"


def record_infotext(record: Mapping[str, Any]) -> str:
    """A1111 infotext for one image's sdkit record."""
    from . import __version__

    p = record["params"]
    size = f"{p['width']}x{p['height']}" if p.get("width") and p.get("height") else None
    model = record.get("model")
    model_name = Path(model).name if model and ("/" in model or os.sep in model) else model
    pairs = {
        "Steps": p["num_inference_steps"],
        "Sampler": record.get("scheduler") or p.get("scheduler"),
        "CFG scale": p["guidance_scale"],
        "Seed": record.get("seed"),
        "Size": size,
        "Model hash": (record.get("model_hash") or "")[:10] or None,
        "Model": model_name,
        "RNG": "CPU" if record.get("generator") == "cpu" else None,
        "Backend": record.get("backend") if record.get("backend") != "local" else None,
        "Version": f"sdkit {record.get('sdkit', __version__)}",
    }
    return format_infotext(p["prompt"], p.get("negative_prompt", ""), pairs)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def png_bytes(image: Image, record: Mapping[str, Any]) -> bytes:
    """PNG bytes of ``image`` carrying ``parameters`` (A1111) and ``sdkit`` (JSON) text chunks."""
    import io

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(INFOTEXT_KEY, record_infotext(record))
    info.add_text(RECORD_KEY, json.dumps(record, sort_keys=True, ensure_ascii=False))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: Image, record: Mapping[str, Any]) -> Path:
    path = Path(path)
    atomic_write_bytes(path, png_bytes(image, record))
    return path


_NUMBERED = re.compile(r"^(\d{5})-")


def _next_number(folder: Path) -> int:
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=-1) + 1


def save_result(result: GenerationResult, folder: str | os.PathLike) -> list[Path]:
    """Write every image of ``result`` as ``NNNNN-SEED.png`` into ``folder``; never overwrites."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = _next_number(folder)
    paths = []
    for item in result:
        seed = "x" if item.seed is None else str(item.seed)
        paths.append(write_png(folder / f"{start + item.index:05d}-{seed}.png", item.image, item.record))
    return paths


def read_png_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parameters stored in an image file.

    Returns a dict with ``text`` (all text chunks), ``parameters`` (A1111 infotext parsed,
    when present) and ``sdkit`` (sdkit's record, when present).
    """
    from PIL import Image

    with Image.open(path) as im:
        text = {k: v for k, v in im.info.items() if isinstance(v, str)}
    out: dict[str, Any] = {"text": text}
    if INFOTEXT_KEY in text:
        out["parameters"] = parse_infotext(text[INFOTEXT_KEY])
    if RECORD_KEY in text:
        try:
            out["sdkit"] = json.loads(text[RECORD_KEY])
        except json.JSONDecodeError:
            out["sdkit"] = None
    return out
