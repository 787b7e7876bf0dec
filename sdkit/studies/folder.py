"""A study's run folder: its files, and reading them back with suspicion.

A run folder holds everything needed to check the work later, and is valid at every moment
(every file is written atomically through :class:`~sdkit.engine.runfolder.RunFolder`; ``manifest.jsonl``
is rewritten whole after each backend call)::

    spec.yaml          the resolved spec
    environment.json   python, platform, CPU, torch threads, library versions
    manifest.jsonl     a line per image: cell, labels, parameters, seed, batching, scheduler class and
                       config, model and weights hash, device, dtype, threads, versions, sha256, elapsed
    failures.json      cells that made no image, with their errors (tried again on the next run)
    images/NNNNN.png   one PNG per cell (A1111 infotext + sdkit record)
    replies/NNNNN.json remote studies: the raw replies, as received (key scrubbed)
    grid.png           labelled grid(s) (grid-z0.png … with a Z axis)
    report.html        after ``sdkit study report``

A run folder may come from someone else: every path the manifest names must stay inside the folder,
and a damaged file is named with its line (``verify`` and ``report`` refuse it; ``run`` repairs what
it can: it drops bad manifest lines and makes their cells again, and says so).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.engine.runfolder import RunFolder
from sdkit.environment import capture_environment
from sdkit.errors import ValidationError
from sdkit.studies.spec import StudySpec, parse_study_spec

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.sweeps.sweep import Cell, Sweep

__all__ = ["load_manifest", "study_sweep"]

SPEC = "spec.yaml"
ENVIRONMENT = "environment.json"
MANIFEST = "manifest.jsonl"
FAILURES = "failures.json"
IMAGES = "images"
REPLIES = "replies"
REPORT = "report.html"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pixels_sha256(image: Image) -> str:
    return sha256(image.mode.encode() + repr(image.size).encode() + image.tobytes())


def study_sweep(spec: StudySpec, folder: str | Path | None = None, *, offline: bool = True) -> Sweep:
    """The study's cells: the spec's axes over its base parameters, every cell with every seed.

    A ``prompt_expand=N`` axis becomes the N prompts its chat model made, kept in ``folder/expansions/``
    (asked for when missing unless ``offline``; without a folder it is asked for, uncached)."""
    from sdkit.backends.relay.expand import EXPANSIONS_DIR, expand_count, resolve_expand_axes
    from sdkit.sweeps.sweep import Sweep

    axes: dict[str, Any] = dict(spec.axes)
    if any(expand_count(text) is not None for text in axes.values()):
        cache = Path(folder) / EXPANSIONS_DIR if folder is not None else None
        axes, _ = resolve_expand_axes(
            axes, spec.params.prompt, cache=cache, offline=offline and folder is not None, **dict(spec.expand)
        )
    return Sweep(spec.params.replace(seed=spec.seeds[0]), **axes, seeds=tuple(spec.seeds))


def load_spec(spec: StudySpec | str | Path | Mapping[str, Any]) -> StudySpec:
    if isinstance(spec, StudySpec):
        return spec
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml"))):
        path = Path(spec)
        if not path.is_file():
            raise ValidationError("spec", str(spec), "no such file")
        return parse_study_spec(path.read_text())
    return parse_study_spec(spec)


def study_environment(spec: StudySpec, *, regenerable: bool) -> dict[str, Any]:
    """This machine as the study sees it. A backend whose images can be made again (``regenerable``) runs
    here, so torch and the CPU are recorded; a spec that pins ``threads`` runs with that many, whatever
    torch's default here (the default matters to ``threads: auto``, which uses it for large calls)."""
    environment = capture_environment(with_torch=regenerable)
    if regenerable and isinstance(spec.threads, int):
        environment["torch_threads"] = spec.threads
    return environment


def recorded_threads(entry: Mapping[str, Any]) -> int | None:
    """The thread count an image was made with, as its manifest line records it."""
    threads = entry.get("torch_threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1 else None


def load_manifest(folder: str | Path) -> list[dict[str, Any]]:
    """The manifest's entries: its JSON objects (a torn last line, from a killed process, and any
    line that is not a JSON object are dropped; :func:`verify_study` names them instead)."""
    return [entry for _, entry, problem in manifest_lines(Path(folder)) if problem is None]


def inside(folder: Path, name: Any, where: str) -> Path:
    """``folder / name`` when ``name`` is a relative path that stays inside ``folder`` (symlinks
    followed); else a :class:`ValidationError` naming ``where``. A run folder may come from someone
    else: no path it names may reach a file outside it."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValidationError(where, name, "must name a file inside the run folder")
    path = folder / name
    root = folder.resolve()
    if Path(name).is_absolute() or ".." in Path(name).parts or not path.resolve().is_relative_to(root):
        raise ValidationError(where, name, f"points outside the run folder {folder}; refused")
    return path


def entry_problem(folder: Path, entry: Any) -> str | None:
    """Why a parsed manifest line cannot be used, or None."""
    if not isinstance(entry, dict):
        return "is not a JSON object"
    if not isinstance(entry.get("cell"), int) or isinstance(entry.get("cell"), bool) or entry["cell"] < 0:
        return "has no cell number"
    if not isinstance(entry.get("png_sha256"), str) or not isinstance(entry.get("params"), dict):
        return "has no png_sha256 or params"
    try:
        inside(folder, entry.get("file"), "file")
        for reply in entry.get("replies") or []:
            if not isinstance(reply, dict) or not isinstance(reply.get("sha256"), str):
                return "has a malformed replies list"
            inside(folder, reply.get("file"), "replies.file")
    except ValidationError as exc:
        return f"{exc.field} {exc.value!r} {exc.reason}"
    if entry.get("regenerable", True):
        batch = entry.get("batch")
        if not (
            isinstance(batch, dict)
            and isinstance(batch.get("id"), str)
            and isinstance(batch.get("cells"), list)
            and all(isinstance(c, int) for c in batch["cells"])
            and batch.get("position") in range(len(batch["cells"]))
            and batch["cells"][batch["position"]] == entry["cell"]
            and isinstance(batch.get("size"), int)
        ):
            return "has a malformed batch record"
    return None


def manifest_lines(folder: Path) -> list[tuple[int, Any, str | None]]:
    """``(line number, parsed entry, problem or None)`` for each line of the manifest. A torn last
    line (no newline: a process killed mid-write of an older sdkit) is left out."""
    path = folder / MANIFEST
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(str(path), "", f"cannot be read: {exc}") from None
    lines = text.splitlines()
    out: list[tuple[int, Any, str | None]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) and not text.endswith("\n"):
                continue
            out.append((n, None, "is not valid JSON"))
            continue
        out.append((n, entry, entry_problem(folder, entry)))
    return out


def strict_manifest(folder: Path) -> list[dict[str, Any]]:
    """The manifest's entries, or a :class:`ValidationError` naming the first bad line."""
    lines = manifest_lines(folder)
    bad = [(n, problem) for n, _, problem in lines if problem is not None]
    if bad:
        n, problem = bad[0]
        more = f" (and {len(bad) - 1} more bad line(s))" if len(bad) > 1 else ""
        text = (folder / MANIFEST).read_text(encoding="utf-8").splitlines()[n - 1]
        raise ValidationError(
            f"{folder / MANIFEST} line {n}",
            text[:120],
            f"{problem}{more}; `sdkit study run` on the same spec repairs the folder",
        )
    return [entry for _, entry, _ in lines]


def read_json(folder: Path, name: str, default: Any = None) -> Any:
    """A JSON file of the run folder (``default`` when absent); invalid JSON is named with its line."""
    path = folder / name
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ValidationError(str(path), "", f"is not valid JSON{where}: {exc}") from None


def read_spec(folder: Path) -> StudySpec:
    path = folder / SPEC
    try:
        return parse_study_spec(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(str(path), "", f"cannot be read: {exc}") from None
    except ValidationError as exc:
        raise ValidationError(str(path), exc.value, f"{exc.field}: {exc.reason}") from None


_BATCH_ID = re.compile(r"^b(\d+)$")


def next_batch_number(entries: list[Any]) -> int:
    """One past the largest batch number the manifest ever used: batch ids stay unique in a run."""
    numbers = [
        int(m.group(1))
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("batch"), dict)
        if isinstance(e["batch"].get("id"), str) and (m := _BATCH_ID.match(e["batch"]["id"]))
    ]
    return max(numbers, default=-1) + 1


def readable_png(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            json.loads(im.info.get("sdkit", "{}"))
            return im.format == "PNG"
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return False


def labels(sweep: Sweep, cell: Cell) -> dict[str, str]:
    return {name: sweep.labels(name)[getattr(cell, name)] for name in sweep.axes}


def save_grids(
    folder: Path,
    sweep: Sweep,
    entries: Mapping[int, Mapping[str, Any]],
    failures: Mapping[int, str],
    *,
    source: Path | None = None,
    describe: bool = True,
) -> list[Path]:
    """Labelled grids of the images that ``entries`` name in ``source`` (default ``folder``), written into
    ``folder``; a cell without an image shows its error from ``failures``."""
    from PIL import Image

    source = source or folder
    tiles: list[Any] = []
    for cell in sweep.cells():
        if cell.index in entries:
            with Image.open(source / entries[cell.index]["file"]) as im:
                tiles.append(im.convert("RGB"))
        else:
            tiles.append(failures.get(cell.index, "not made yet"))
    return RunFolder(folder).grids(sweep, tiles, describe=describe)
