"""A1111's "stealth" infotext: parameters hidden in the lowest bit of the pixels, so that they survive
sites that strip PNG text chunks (the stealth-pnginfo extension for A1111; NovelAI writes the same).

The layout, as that extension documents and writes it: the bits are read column by column (down the
first column, then the second, …), from the alpha channel (one bit a pixel) or from red, green and
blue (three bits a pixel). First a 15-byte signature (``stealth_pnginfo`` or ``stealth_pngcomp`` in
alpha, ``stealth_rgbinfo`` or ``stealth_rgbcomp`` in colour; ``comp`` means gzip), then the length of
the data in bits as a 32-bit big-endian number, then the data: UTF-8 infotext.

Pure functions over Pillow images; no numpy.
"""

from __future__ import annotations

import gzip
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["read_stealth_infotext", "write_stealth_infotext"]

_SIGNATURES = {
    "alpha": {b"stealth_pnginfo": False, b"stealth_pngcomp": True},
    "rgb": {b"stealth_rgbinfo": False, b"stealth_rgbcomp": True},
}
_SIGNATURE_BITS = 15 * 8
_LENGTH_BITS = 32
#: Even bytes → "0", odd → "1": the lowest bits of a run of channel values as a string of binary digits.
_LOW_BIT = bytes(0x30 + (i & 1) for i in range(256))


def _channel_bytes(image: Image, mode: str, columns: int) -> bytes:
    """The channel values the ``mode`` reads, column by column, of the first ``columns`` columns."""
    from PIL import Image as PILImage

    part = image.crop((0, 0, min(columns, image.width), image.height))
    part = part.getchannel("A") if mode == "alpha" else part.convert("RGB")
    return part.transpose(PILImage.Transpose.TRANSPOSE).tobytes()


def _bits_to_bytes(digits: bytes) -> bytes:
    return int(digits, 2).to_bytes(len(digits) // 8, "big") if digits else b""


def _read(image: Image, mode: str) -> str | None:
    per_pixel = 1 if mode == "alpha" else 3
    head_bits = _SIGNATURE_BITS + _LENGTH_BITS
    if image.width * image.height * per_pixel < head_bits:
        return None
    head = _channel_bytes(image, mode, math.ceil(head_bits / per_pixel / image.height))
    digits = head.translate(_LOW_BIT)
    compressed = _SIGNATURES[mode].get(_bits_to_bytes(digits[:_SIGNATURE_BITS]))
    if compressed is None:
        return None
    length = int(digits[_SIGNATURE_BITS:head_bits], 2)
    if length % 8 or head_bits + length > image.width * image.height * per_pixel:
        return None
    total = head_bits + length
    digits = _channel_bytes(image, mode, math.ceil(total / per_pixel / image.height)).translate(_LOW_BIT)
    data = _bits_to_bytes(digits[head_bits:total])
    try:
        return (gzip.decompress(data) if compressed else data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError):
        return None


def read_stealth_infotext(image: Image) -> str | None:
    """The infotext hidden in ``image``'s lowest bits (alpha first, then colour), or None when there is none."""
    modes = ("alpha", "rgb") if image.mode == "RGBA" else ("rgb",) if image.mode == "RGB" else ()
    for mode in modes:
        if (text := _read(image, mode)) is not None:
            return text
    return None


def write_stealth_infotext(image: Image, text: str, *, mode: str = "alpha", compressed: bool = True) -> Image:
    """A copy of ``image`` with ``text`` hidden in its lowest bits as the stealth-pnginfo extension writes
    it (``mode`` ``"alpha"`` makes an RGBA image, ``"rgb"`` keeps RGB). Raises ValueError when it does not fit."""
    from PIL import Image as PILImage

    if mode not in _SIGNATURES:
        raise ValueError(f"mode must be 'alpha' or 'rgb', not {mode!r}")
    signature = next(sig for sig, comp in _SIGNATURES[mode].items() if comp == compressed)
    data = text.encode("utf-8")
    data = gzip.compress(data, mtime=0) if compressed else data
    payload = signature + (len(data) * 8).to_bytes(4, "big") + data
    bits = [b >> (7 - i) & 1 for b in payload for i in range(8)]
    out = image.convert("RGBA" if mode == "alpha" else "RGB")
    bands = list(out.split())
    channels = [3] if mode == "alpha" else [0, 1, 2]
    if len(bits) > out.width * out.height * len(channels):
        raise ValueError(f"{len(bits)} bits do not fit in a {out.width}x{out.height} image")
    # work on the transposed image so that its rows are the original's columns
    flat = [bytearray(b.transpose(PILImage.Transpose.TRANSPOSE).tobytes()) for b in bands]
    for i, bit in enumerate(bits):
        pixel, channel = divmod(i, len(channels))
        values = flat[channels[channel]]
        values[pixel] = values[pixel] & 0xFE | bit
    size = (out.height, out.width)
    bands = [PILImage.frombytes("L", size, bytes(v)).transpose(PILImage.Transpose.TRANSPOSE) for v in flat]
    return PILImage.merge(out.mode, bands)
