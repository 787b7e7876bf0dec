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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.backends.base import check, identity
from sdkit.engine.runfolder import RunFolder
from sdkit.errors import OutputError, SdkitError
from sdkit.prompts.syntax import ENCODING_VERSION, may_use_prompt_language

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.backends.base import Backend
    from sdkit.engine.executor import Executor
    from sdkit.params import GenerationParams
    from sdkit.result import GenerationResult
    from sdkit.sweeps.sweep import Cell, Sweep

__all__ = ["CellResult", "SweepResult", "backend_identity", "cache_key", "resume_seed", "run_sweep"]

MANIFEST = "manifest.json"
IMAGES = "images"


def backend_identity(backend: Backend) -> dict[str, Any]:
    """What about ``backend`` decides the pixels it makes (see :func:`sdkit.backends.base.identity`)."""
    return identity(backend)


def cache_key(identity: Mapping[str, Any], params: GenerationParams) -> str:
    """sha256 of (backend identity, parameters incl. model and seed): equal keys mean the same image.

    Prompts that may use A1111's prompt language (weights, BREAK, edits, tags, over 75 tokens) also carry the
    encoding's version: images cached before sdkit read that language were made from the literal text."""
    key: dict[str, Any] = {"backend": dict(identity), "params": params.to_dict()}
    if may_use_prompt_language(params.prompt) or may_use_prompt_language(params.negative_prompt):
        key["prompt_language"] = ENCODING_VERSION
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False)
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
    executor: Executor | None = None,
) -> SweepResult:
    """Make every image of ``sweep`` on ``backend``: the cells not in the cache are planned into calls by
    what the backend declares (the local backend batches cells that share size, steps, guidance,
    scheduler and model; a remote one gets them all at once and sends them concurrently) and made by
    ``executor`` (default: :class:`~sdkit.engine.executor.InProcessExecutor`).

    With ``out`` the images go to ``OUT/images/`` as they arrive (PNG with A1111 infotext and sdkit's
    record), already-made images are reused, and ``OUT/manifest.json`` plus the grids (``grids=True``:
    ``grid.png``, or ``grid-z0.png``, … with a Z axis) are written at the end. ``on_cell`` is called with
    each :class:`CellResult` as it is settled. ``progress`` shows a tqdm bar over images.
    """
    from tqdm.auto import tqdm

    from sdkit.backends.base import capabilities
    from sdkit.engine.executor import InProcessExecutor, plan

    start = time.perf_counter()
    cells = sweep.cells()
    check(backend, [c.params for c in cells])  # what the backend cannot make is refused before any work
    identity = backend_identity(backend)
    keys = [cache_key(identity, c.params) for c in cells]
    folder = RunFolder(out) if out is not None else None
    if folder is not None:
        folder.mkdir(IMAGES)
    outcomes: list[CellResult | None] = [None] * len(cells)

    def settle(outcome: CellResult) -> None:
        outcomes[outcome.cell.index] = outcome
        bar.update(1)
        if on_cell is not None:
            on_cell(outcome)

    def write_manifest(folder: RunFolder, grid_paths: Sequence[Path] = ()) -> None:
        manifest = _manifest(sweep, identity, cells, keys, outcomes, grid_paths, time.perf_counter() - start)
        folder.json(MANIFEST, manifest, sort_keys=False)

    bar = tqdm(total=len(cells), disable=not progress, unit="image", desc="sweep", leave=True)
    try:
        pending: list[Cell] = []
        for cell, key in zip(cells, keys, strict=True):
            path = folder.path / IMAGES / f"{key}.png" if folder is not None else None
            cached = _load_cached(path) if path is not None and path.exists() else None
            if cached is None:
                pending.append(cell)
            else:
                settle(CellResult(cell, key, "cached", image=cached[0], path=path, record=cached[1]))

        def on_result(index: int, outcome: GenerationResult | Exception, made_with: tuple[int, ...]) -> None:
            cell, key = cells[index], keys[index]
            if isinstance(outcome, Exception):
                settle(CellResult(cell, key, "failed", error=_error_text(outcome)))
                return
            if not outcome.images:
                settle(CellResult(cell, key, "failed", error="ReplyError: the backend returned no image"))
                return
            image = outcome.images[0]
            record = {**outcome.record(0), "cache_key": key}
            path = None
            if folder is not None:
                folder.image(f"{IMAGES}/{key}.png", image, record)
                path = folder.path / IMAGES / f"{key}.png"
            settle(CellResult(cell, key, "generated", image=image, path=path, record=record))

        batches = plan([(c.index, c.params) for c in pending], capabilities(backend))
        (executor or InProcessExecutor()).run(backend, batches, on_result)
    except BaseException:
        bar.close()
        if folder is not None:  # record what was made; a folder that refuses writes must not hide the cause
            with contextlib.suppress(OSError, OutputError):
                write_manifest(folder)
        raise
    bar.close()
    if folder is not None:
        write_manifest(folder)
    result = SweepResult(
        sweep=sweep,
        cells=tuple(outcomes),  # type: ignore[arg-type]
        backend=identity,
        out=folder.path if folder is not None else None,
        elapsed_s=time.perf_counter() - start,
    )
    if folder is not None and grids:
        paths = save_grids(result, folder.path)
        result = SweepResult(result.sweep, result.cells, identity, folder.path, result.elapsed_s, tuple(paths))
        write_manifest(folder, paths)
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


def save_grids(result: SweepResult, folder: str | Path, **options: Any) -> list[Path]:
    """Write the labelled grids of ``result`` into ``folder`` (atomically); returns their paths."""
    from sdkit.sweeps.grid import cell_tiles

    return RunFolder(folder).grids(result.sweep, cell_tiles(result), **options)


def _manifest(
    sweep: Sweep,
    identity: Mapping[str, Any],
    cells: list[Cell],
    keys: list[str],
    outcomes: list[CellResult | None],
    grid_paths: Sequence[Path],
    elapsed_s: float,
) -> dict[str, Any]:
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
    return {
        "sdkit": __version__,
        "backend": dict(identity),
        "sweep": sweep.to_dict(),
        "count": len(cells),
        "labels": {name: list(sweep.labels(name)) for name in sweep.axes},
        "elapsed_s": round(elapsed_s, 3),
        "grids": [Path(p).name for p in grid_paths],
        "cells": entries,
    }
