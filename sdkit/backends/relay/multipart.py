"""``multipart/form-data`` bodies, for the requests that upload an image (``/v1/images/edits``, Stability's API).

Standard library only; the body is built in memory (an init image is small) so a retry sends the same bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FilePart", "multipart"]


@dataclass(frozen=True, repr=False)
class FilePart:
    """A file in a form: its name, bytes and media type."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"

    def __repr__(self) -> str:
        return f"<FilePart {self.filename!r} {self.content_type} {len(self.data)} bytes>"


def _quote(text: str) -> str:
    """A name for a Content-Disposition parameter (quotes and line breaks escaped, as browsers do)."""
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


Field = tuple[str, "str | bytes | FilePart"]


def multipart(fields: Sequence[Field], *, boundary: str | None = None) -> tuple[str, bytes]:
    """``multipart/form-data`` of ``fields`` in order: text values as form fields, a :class:`FilePart` as a file,
    plain bytes as a file named after the field. Returns (the Content-Type header, the body)."""
    boundary = boundary or "sdkit-" + secrets.token_hex(12)
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, bytes):
            value = FilePart(name, value)
        if isinstance(value, FilePart):
            disposition = f'form-data; name="{_quote(name)}"; filename="{_quote(value.filename)}"'
            out += f"Content-Disposition: {disposition}\r\n".encode()
            out += f"Content-Type: {value.content_type}\r\n\r\n".encode() + value.data + b"\r\n"
        else:
            out += f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
            out += str(value).encode() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)
