"""The one run-folder writer, for sweeps and studies alike.

Every file is written atomically (a temporary file, then a rename: readers see the old file or the new
one, never half), and a write the disk refuses becomes an :class:`~sdkit.metadata.pngfile.OutputError`
naming the file, so a run stops with a clear message and what was written before stays.

The two layouts stay their own: a sweep's folder is a cache (``manifest.json``, ``images/KEY.png``
named by content hash), a study's a record (``manifest.jsonl``, ``images/NNNNN.png``, ``failures.json``,
``replies/``); both write their images, manifests and grids through :class:`RunFolder`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.metadata.pngfile import atomic_write_bytes, output_errors, png_bytes

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.sweeps.sweep import Sweep

__all__ = ["GRID_KEY", "RunFolder", "grid_file_names"]

#: The PNG text chunk of a grid that holds its sweep's description (JSON, see
#: :func:`sdkit.sweeps.grid.sweep_description`).
GRID_KEY = "sdkit-grid"


def grid_file_names(sweep: Sweep) -> list[str]:
    """``grid.png`` for a sweep without a Z axis, else ``grid-z0.png``, ``grid-z1.png``, …"""
    return ["grid.png"] if sweep.z is None else [f"grid-z{i}.png" for i in range(sweep.shape[0])]


class RunFolder:
    """Writes the files of a run into ``path`` (names are relative to it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def mkdir(self, name: str = "") -> Path:
        """The folder ``name`` inside the run (the run itself by default), created if missing; an
        ``OSError`` when it cannot be (the caller knows whether that is a bad ``out`` or a full disk)."""
        path = self.path / name if name else self.path
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, name: str, data: bytes) -> Path:
        """``data`` as file ``name``."""
        path = self.path / name
        with output_errors(path):
            atomic_write_bytes(path, data)
        return path

    def image(self, name: str, image: Image, record: Mapping[str, Any]) -> bytes:
        """``image`` as PNG file ``name`` with A1111 infotext and sdkit's ``record``; returns the bytes written."""
        data = png_bytes(image, record)
        self.write(name, data)
        return data

    def json(self, name: str, data: Any, *, sort_keys: bool = True) -> Path:
        """``data`` as an indented JSON file."""
        text = json.dumps(data, indent=1, ensure_ascii=False, sort_keys=sort_keys) + "\n"
        return self.write(name, text.encode())

    def jsonl(self, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        """One JSON object a line (the whole file rewritten: it is valid at every moment)."""
        text = "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)
        return self.write(name, text.encode())

    def failures(self, name: str, failures: Mapping[int, str]) -> Path:
        """The cells that made no image, with their errors, as a JSON list ordered by cell."""
        return self.json(name, [{"cell": k, "error": v} for k, v in sorted(failures.items())])

    def grids(self, sweep: Sweep, tiles: Sequence[Any], **options: Any) -> list[Path]:
        """The labelled grids of ``sweep`` (``grid.png``, or ``grid-z0.png``, … with a Z axis); ``tiles``
        are one per cell in :meth:`Sweep.cells` order: an image, or the error of a cell that made none.
        ``options`` go to :func:`sdkit.sweeps.grid.sweep_pages`. Each grid carries its sweep's
        description (JSON, :data:`GRID_KEY`) and a title for viewers."""
        import io

        from PIL.PngImagePlugin import PngInfo

        from sdkit.sweeps.grid import sweep_description, sweep_pages, sweep_title

        with output_errors(self.path):
            self.mkdir()
        info = PngInfo()
        info.add_text("Title", sweep_title(sweep))
        info.add_text(GRID_KEY, json.dumps(sweep_description(sweep), sort_keys=True, ensure_ascii=False))
        paths = []
        for name, page in zip(grid_file_names(sweep), sweep_pages(sweep, tiles, **options), strict=True):
            buf = io.BytesIO()
            page.save(buf, format="PNG", compress_level=1, pnginfo=info)  # a preview: fast zlib, ~5x quicker
            paths.append(self.write(name, buf.getvalue()))
        return paths
