"""Running a :class:`~sdkit.sweeps.sweep.Sweep` on any backend, with an on-disk cache that makes re-runs free.

Each image is keyed by a content hash of (backend, parameters, batching) — see :func:`cache_key` — and
written atomically to ``OUT/images/KEY.png`` the moment the backend hands it over. A second run finds
those files and makes nothing again; a run that was interrupted makes only what is missing. A failed
image is recorded with its error and the sweep goes on; failures are not cached, so the next run
tries them again. ``OUT/manifest.json`` says what each image is, where it sits and how it went.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.errors import SdkitError
from sdkit.metadata.pngfile import OutputError, atomic_write_bytes, output_errors, write_png

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.backends.base import Backend
    from sdkit.params import GenerationParams
    from sdkit.result import GenerationResult
    from sdkit.sweeps.sweep import Cell, Sweep

__all__ = ["CellResult", "SweepResult", "backend_identity", "cache_key", "resume_seed", "run_sweep"]

MANIFEST = "manifest.json"
IMAGES = "images"
#: The PNG text chunk of a grid that holds its sweep's description (JSON, see
#: :func:`sdkit.sweeps.grid.sweep_description`).
GRID_KEY = "sdkit-grid"


def backend_identity(backend: Backend) -> dict[str, Any]:
    """What about ``backend`` decides the pixels it makes (see :func:`sdkit.backends.base.identity`)."""
    from sdkit.backends.base import identity

    return identity(backend)


def cache_key(identity: Mapping[str, Any], params: GenerationParams) -> str:
    """sha256 of (backend identity, parameters incl. model and seed): equal keys mean the same image."""
    blob = json.dumps({"backend": dict(identity), "params": params.to_dict()}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CellResult:
    """How one image of a sweep went: ``status`` is ``generated``, ``cached`` or ``failed`` (then
    ``error`` says why and ``image`` is None)."""

    cell: Cell
    key: str
    status: str
    image: Image | None = None
    path: Path | None = None
    record: Mapping[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True, repr=False)
class SweepResult:
    """A finished sweep: one :class:`CellResult` per image, in :meth:`Sweep.cells` order."""

    sweep: Sweep
    cells: tuple[CellResult, ...]
    backend: Mapping[str, Any]
    out: Path | None = None
    elapsed_s: float = 0.0
    grid_paths: tuple[Path, ...] = field(default=())

    def __repr__(self) -> str:
        return (
            f"<SweepResult {len(self.cells)} image(s): {self.count('generated')} generated, "
            f"{self.count('cached')} cached, {self.count('failed')} failed, {self.elapsed_s:.1f}s>"
        )

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.cells)

    @property
    def images(self) -> list[Image | None]:
        return [c.image for c in self.cells]

    @property
    def failed(self) -> list[CellResult]:
        return [c for c in self.cells if not c.ok]

    def grids(self, **options: Any) -> list[Image]:
        """One labelled grid per Z value (see :func:`sdkit.sweeps.grid.sweep_grids`)."""
        from sdkit.sweeps.grid import sweep_grids

        return sweep_grids(self, **options)

    def figure(self, z: int = 0, **options: Any):
        """A matplotlib figure of page ``z`` (see :func:`sdkit.sweeps.grid.grid_figure`)."""
        from sdkit.sweeps.grid import grid_figure

        return grid_figure(self, z=z, **options)

    def _repr_html_(self) -> str:  # pragma: no cover - notebook display
        import base64
        import html
        import io

        parts = [f"<p>{html.escape(repr(self))}</p>"]
        for page in self.grids():
            buf = io.BytesIO()
            page.save(buf, format="PNG")
            parts.append(f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>')
        return "".join(parts)


def _load_cached(path: Path) -> tuple[Image, dict[str, Any]] | None:
    from PIL import Image, UnidentifiedImageError

    from sdkit.metadata.pngfile import RECORD_KEY

    try:
        with Image.open(path) as im:
            im.load()
            record = json.loads(im.info.get(RECORD_KEY, "{}"))
            return im.copy(), record
    except (OSError, UnidentifiedImageError, json.JSONDecodeError):
        return None  # unreadable: make it again


def _execution_order(cells: list[Cell]) -> list[Cell]:
    """Models in order of first appearance (each loads once), the rest in grid order."""
    models = list(dict.fromkeys(c.params.model for c in cells))
    return sorted(cells, key=lambda c: models.index(c.params.model))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_sweep(
    sweep: Sweep,
    backend: Backend,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    grids: bool = True,
    on_cell: Callable[[CellResult], None] | None = None,
) -> SweepResult:
    """Make every image of ``sweep`` on ``backend`` through one ``backend.generate_many`` call (the local
    backend batches cells that share size, steps, guidance, scheduler and model; a remote one sends them
    concurrently).

    With ``out`` the images go to ``OUT/images/`` as they arrive (PNG with A1111 infotext and sdkit's
    record), already-made images are reused, and ``OUT/manifest.json`` plus the grids (``grids=True``:
    ``grid.png``, or ``grid-z0.png``, … with a Z axis) are written at the end. ``on_cell`` is called with
    each :class:`CellResult` as it is settled. ``progress`` shows a tqdm bar over images.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    cells = sweep.cells()
    identity = backend_identity(backend)
    keys = [cache_key(identity, c.params) for c in cells]
    folder = Path(out) if out is not None else None
    images_dir = folder / IMAGES if folder is not None else None
    if images_dir is not None:
        images_dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[CellResult | None] = [None] * len(cells)

    def settle(outcome: CellResult) -> None:
        outcomes[outcome.cell.index] = outcome
        bar.update(1)
        if on_cell is not None:
            on_cell(outcome)

    bar = tqdm(total=len(cells), disable=not progress, unit="image", desc="sweep", leave=True)
    try:
        pending: list[Cell] = []
        for cell, key in zip(cells, keys, strict=True):
            path = images_dir / f"{key}.png" if images_dir is not None else None
            cached = _load_cached(path) if path is not None and path.exists() else None
            if cached is None:
                pending.append(cell)
            else:
                settle(CellResult(cell, key, "cached", image=cached[0], path=path, record=cached[1]))
        pending = _execution_order(pending)

        def on_result(i: int, outcome: GenerationResult | Exception) -> None:
            cell = pending[i]
            key = keys[cell.index]
            if isinstance(outcome, Exception):
                settle(CellResult(cell, key, "failed", error=_error_text(outcome)))
                return
            if not outcome.images:
                settle(CellResult(cell, key, "failed", error="ReplyError: the backend returned no image"))
                return
            image = outcome.images[0]
            record = {**outcome.record(0), "cache_key": key}
            path = None
            if images_dir is not None:
                with output_errors(images_dir / f"{key}.png"):
                    path = write_png(images_dir / f"{key}.png", image, record)
            settle(CellResult(cell, key, "generated", image=image, path=path, record=record))

        _generate(backend, pending, outcomes, on_result)
    except BaseException:
        bar.close()
        if folder is not None:  # record what was made; a folder that refuses writes must not hide the cause
            with contextlib.suppress(OSError):
                _write_manifest(folder, sweep, identity, cells, keys, outcomes, (), time.perf_counter() - start)
        raise
    bar.close()
    if folder is not None:
        with output_errors(folder / MANIFEST):
            _write_manifest(folder, sweep, identity, cells, keys, outcomes, (), time.perf_counter() - start)
    result = SweepResult(
        sweep=sweep,
        cells=tuple(outcomes),  # type: ignore[arg-type]
        backend=identity,
        out=folder,
        elapsed_s=time.perf_counter() - start,
    )
    if folder is not None and grids:
        with output_errors(folder):
            paths = save_grids(result, folder)
            result = SweepResult(result.sweep, result.cells, identity, folder, result.elapsed_s, tuple(paths))
            _write_manifest(folder, sweep, identity, cells, keys, list(result.cells), paths, result.elapsed_s)
    return result


def resume_seed(sweep: Sweep, out: str | Path) -> Sweep | None:
    """``sweep`` with the base seed recorded in ``OUT/manifest.json``, when the sweep recorded there is
    this one in everything but its base seed (a seed drawn at random by an earlier run); else None.

    Re-running a sweep without a seed into the same folder then resumes it instead of making every
    image again with a new seed beside the old ones."""
    from sdkit.sweeps.sweep import Sweep

    try:
        data = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
        recorded = data["sweep"]
        seed = recorded["base"]["seed"]
        if not isinstance(seed, int) or seed == sweep.base.seed:
            return None
        candidate = Sweep(sweep.base.replace(seed=seed), **sweep.axes, seeds=sweep.seeds)
    except (OSError, ValueError, KeyError, TypeError, SdkitError):
        return None
    return candidate if json.loads(json.dumps(candidate.to_dict())) == recorded else None


def _generate(backend: Backend, pending: list[Cell], outcomes: list, on_result: Callable) -> None:
    """One ``generate_many`` call; if it breaks with an unexpected error, the cells still open are
    tried one at a time so that only the faulty ones fail."""
    if not pending:
        return
    try:
        backend.generate_many([c.params for c in pending], on_result=on_result, return_errors=True)
        return
    except OutputError:
        raise  # the disk, not the backend: trying again one at a time would not help
    except Exception:
        pass
    for i, cell in enumerate(pending):
        if outcomes[cell.index] is not None:
            continue
        try:
            result = backend.generate_many([cell.params], return_errors=True)[0]
        except Exception as exc:
            result = exc if isinstance(exc, SdkitError) else SdkitError(_error_text(exc))
        on_result(i, result)


def grid_file_names(sweep: Sweep) -> list[str]:
    """``grid.png`` for a sweep without a Z axis, else ``grid-z0.png``, ``grid-z1.png``, …"""
    nz = sweep.shape[0]
    return ["grid.png"] if sweep.z is None else [f"grid-z{i}.png" for i in range(nz)]


def save_grids(result: SweepResult, folder: str | Path, **options: Any) -> list[Path]:
    """Write the labelled grids of ``result`` into ``folder`` (atomically); returns their paths."""
    import io

    from PIL.PngImagePlugin import PngInfo

    from sdkit.sweeps.grid import sweep_description, sweep_title

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = PngInfo()  # what the grid shows travels with it: a title for viewers, the sweep as JSON
    info.add_text("Title", sweep_title(result.sweep))
    info.add_text(GRID_KEY, json.dumps(sweep_description(result.sweep), sort_keys=True, ensure_ascii=False))
    paths = []
    for name, page in zip(grid_file_names(result.sweep), result.grids(**options), strict=True):
        buf = io.BytesIO()
        page.save(buf, format="PNG", compress_level=1, pnginfo=info)  # a preview: fast zlib, ~5x quicker
        atomic_write_bytes(folder / name, buf.getvalue())
        paths.append(folder / name)
    return paths


def _write_manifest(
    folder: Path,
    sweep: Sweep,
    identity: Mapping[str, Any],
    cells: list[Cell],
    keys: list[str],
    outcomes: list[CellResult | None],
    grid_paths: Any,
    elapsed_s: float,
) -> None:
    from sdkit import __version__

    entries = []
    for cell, key, outcome in zip(cells, keys, outcomes, strict=True):
        entry: dict[str, Any] = {
            "index": cell.index,
            "x": cell.x,
            "y": cell.y,
            "z": cell.z,
            "seed_index": cell.seed_index,
            "params": cell.params.to_dict(),
            "key": key,
            "file": f"{IMAGES}/{key}.png",
            "status": outcome.status if outcome is not None else "pending",
        }
        if outcome is not None and outcome.error:
            entry["error"] = outcome.error
        entries.append(entry)
    manifest = {
        "sdkit": __version__,
        "backend": dict(identity),
        "sweep": sweep.to_dict(),
        "count": len(cells),
        "labels": {name: list(sweep.labels(name)) for name in sweep.axes},
        "elapsed_s": round(elapsed_s, 3),
        "grids": [Path(p).name for p in grid_paths],
        "cells": entries,
    }
    text = json.dumps(manifest, indent=1, ensure_ascii=False)
    atomic_write_bytes(folder / MANIFEST, text.encode())
