"""Reproducible prompt studies: a spec → a run folder → a verification.

A run folder holds everything needed to check the work later, and is valid at every moment
(every file is written atomically; ``manifest.jsonl`` is rewritten whole after each pipeline call)::

    spec.yaml          the resolved spec
    environment.json   python, platform, CPU, torch threads, library versions
    manifest.jsonl     a line per image: cell, labels, parameters, seed, batching, scheduler class and
                       config, model and weights hash, device, dtype, threads, versions, sha256, elapsed
    failures.json      cells that made no image, with their errors (tried again on the next run)
    images/NNNNN.png   one PNG per cell (A1111 infotext + sdkit record)
    replies/NNNNN.json remote studies: the raw replies, as received (key scrubbed)
    grid.png           labelled grid(s) (grid-z0.png … with a Z axis)
    report.html        after ``sdkit study report``

Running again resumes: cells already in the manifest with their file intact are kept, the rest are
made, so no image is lost or made twice. :func:`verify_study` re-makes every local image the way it
was made (same batches, same thread count) and compares bytes, then pixels.

A run folder may come from someone else: every path the manifest names must stay inside the folder,
and a damaged file is named with its line (``verify`` and ``report`` refuse it; ``run`` repairs what
it can: it drops bad manifest lines and makes their cells again, and says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.environment import capture_environment, environment_diff
from sdkit.errors import SdkitError, ValidationError
from sdkit.metadata.pngfile import atomic_write_bytes, output_errors, png_bytes
from sdkit.params import GenerationParams
from sdkit.studies.spec import StudySpec, parse_study_spec

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.backends.base import Backend
    from sdkit.sweeps.sweep import Cell, Sweep

__all__ = ["ImageCheck", "StudyRun", "Verification", "load_manifest", "run_study", "verify_study", "write_report"]

SPEC = "spec.yaml"
ENVIRONMENT = "environment.json"
MANIFEST = "manifest.jsonl"
FAILURES = "failures.json"
IMAGES = "images"
REPLIES = "replies"
REPORT = "report.html"
#: Environment keys that change pixels: a resumed run in another environment is refused.
PIXEL_KEYS = (
    "libraries.torch",
    "libraries.diffusers",
    "libraries.transformers",
    "torch_threads",
    "cpu_capability",
    "machine",
)
#: What a local image's record says about the CPU numerics it was made with (named when verify differs).
CPU_KEYS = ("torch_threads", "cpu_capability", "portable", "device", "dtype")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pixels_sha256(image: Image) -> str:
    return _sha256(image.mode.encode() + repr(image.size).encode() + image.tobytes())


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class StudyRun:
    """What one ``run`` did: images made now, kept from before, failed; where the grids are."""

    folder: Path
    made: int
    kept: int
    failed: int
    total: int
    grid_paths: tuple[Path, ...] = ()
    elapsed_s: float = 0.0
    #: ``(cell, error)`` for every cell that made no image.
    errors: tuple[tuple[int, str], ...] = ()
    #: What ``run`` repaired in the folder (dropped manifest lines, a rewritten spec), one line each.
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.made + self.kept == self.total


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one image. ``status``: ``identical`` (PNG bytes equal), ``pixels-identical``
    (pixels equal, metadata differs), ``different`` (``max_diff`` = largest pixel difference),
    ``missing``, ``tampered`` (the file is not what the manifest recorded), ``unverifiable`` (its
    recorded batch cannot be made again), ``archived`` (a remote image: file and reply archive intact,
    it cannot be regenerated) or ``archive-tampered``."""

    cell: int
    file: str
    status: str
    max_diff: int | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("identical", "pixels-identical", "archived")


@dataclass(frozen=True)
class Verification:
    folder: Path
    checks: tuple[ImageCheck, ...]
    environment_diff: tuple[tuple[str, Any, Any], ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for c in self.checks:
            counts[c.status] = counts.get(c.status, 0) + 1
        lines = [
            f"{self.folder}: {'OK' if self.ok else 'FAILED'} - "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        ]
        lines += [f"  problem: {p}" for p in self.problems]
        for c in self.checks:
            if not c.ok:
                diff = f" (largest pixel difference {c.max_diff})" if c.max_diff is not None else ""
                lines.append(f"  {c.file}: {c.status}{diff}{' - ' + c.note if c.note else ''}")
        if self.environment_diff and not all(c.status == "identical" for c in self.checks):
            lines.append("  environment differences (recorded → now):")
            lines += [f"    {k}: {a!r} → {b!r}" for k, a, b in self.environment_diff]
        return "\n".join(lines)


# --- the spec as a sweep -------------------------------------------------------------------------


def study_sweep(spec: StudySpec) -> Sweep:
    """The study's cells: the spec's axes over its base parameters, every cell with every seed."""
    from sdkit.sweeps.sweep import Sweep

    return Sweep(spec.params.replace(seed=spec.seeds[0]), **dict(spec.axes), seeds=tuple(spec.seeds))


def _load_spec(spec: StudySpec | str | Path | Mapping[str, Any]) -> StudySpec:
    if isinstance(spec, StudySpec):
        return spec
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml"))):
        path = Path(spec)
        if not path.is_file():
            raise ValidationError("spec", str(spec), "no such file")
        return parse_study_spec(path.read_text())
    return parse_study_spec(spec)


def make_backend(spec: StudySpec, *, max_batch: int | None = None) -> Backend:
    """The backend a spec names (the API key, for remote ones, comes from the environment)."""
    if spec.backend == "local":
        from sdkit.backends.local.pipeline import LocalBackend

        options: dict[str, Any] = {"max_batch": max_batch} if max_batch else {}
        return LocalBackend(progress=False, threads=spec.threads or "auto", portable=spec.portable, **options)
    from sdkit.backends.relay.remote import RemoteBackend

    return RemoteBackend(spec.backend, spec.base_url, sd_extras=spec.sd_extras)


def _study_environment(spec: StudySpec) -> dict[str, Any]:
    """This machine as the study sees it: a spec that pins ``threads`` runs with that many, whatever torch's
    default here (the default matters to ``threads: auto``, which uses it for large pipeline calls)."""
    environment = capture_environment(with_torch=spec.backend == "local")
    if spec.backend == "local" and isinstance(spec.threads, int):
        environment["torch_threads"] = spec.threads
    return environment


def _recorded_threads(entry: Mapping[str, Any]) -> int | None:
    """The thread count an image was made with, as its manifest line records it."""
    threads = entry.get("torch_threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1 else None


def load_manifest(folder: str | Path) -> list[dict[str, Any]]:
    """The manifest's entries: its JSON objects (a torn last line, from a killed process, and any
    line that is not a JSON object are dropped; :func:`verify_study` names them instead)."""
    return [entry for _, entry, problem in _manifest_lines(Path(folder)) if problem is None]


def _inside(folder: Path, name: Any, where: str) -> Path:
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


def _entry_problem(folder: Path, entry: Any) -> str | None:
    """Why a parsed manifest line cannot be used, or None."""
    if not isinstance(entry, dict):
        return "is not a JSON object"
    if not isinstance(entry.get("cell"), int) or isinstance(entry.get("cell"), bool) or entry["cell"] < 0:
        return "has no cell number"
    if not isinstance(entry.get("png_sha256"), str) or not isinstance(entry.get("params"), dict):
        return "has no png_sha256 or params"
    try:
        _inside(folder, entry.get("file"), "file")
        for reply in entry.get("replies") or []:
            if not isinstance(reply, dict) or not isinstance(reply.get("sha256"), str):
                return "has a malformed replies list"
            _inside(folder, reply.get("file"), "replies.file")
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


def _manifest_lines(folder: Path) -> list[tuple[int, Any, str | None]]:
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
        out.append((n, entry, _entry_problem(folder, entry)))
    return out


def _strict_manifest(folder: Path) -> list[dict[str, Any]]:
    """The manifest's entries, or a :class:`ValidationError` naming the first bad line."""
    lines = _manifest_lines(folder)
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


def _read_json(folder: Path, name: str, default: Any = None) -> Any:
    """A JSON file of the run folder (``default`` when absent); invalid JSON is named with its line."""
    path = folder / name
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ValidationError(str(path), "", f"is not valid JSON{where}: {exc}") from None


def _read_spec(folder: Path) -> StudySpec:
    path = folder / SPEC
    try:
        return parse_study_spec(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(str(path), "", f"cannot be read: {exc}") from None
    except ValidationError as exc:
        raise ValidationError(str(path), exc.value, f"{exc.field}: {exc.reason}") from None


_BATCH_ID = re.compile(r"^b(\d+)$")


def _next_batch_number(entries: list[Any]) -> int:
    """One past the largest batch number the manifest ever used: batch ids stay unique in a run."""
    numbers = [
        int(m.group(1))
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("batch"), dict)
        if isinstance(e["batch"].get("id"), str) and (m := _BATCH_ID.match(e["batch"]["id"]))
    ]
    return max(numbers, default=-1) + 1


def _readable_png(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            json.loads(im.info.get("sdkit", "{}"))
            return im.format == "PNG"
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return False


_SAME_CELL = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale")


def _write_manifest(folder: Path, entries: Mapping[int, dict[str, Any]]) -> None:
    text = "".join(json.dumps(entries[k], sort_keys=True, ensure_ascii=False) + "\n" for k in sorted(entries))
    atomic_write_bytes(folder / MANIFEST, text.encode())


def _labels(sweep: Sweep, cell: Cell) -> dict[str, str]:
    return {name: sweep.labels(name)[getattr(cell, name)] for name in sweep.axes}


# --- run ---------------------------------------------------------------------------------------


def run_study(
    spec: StudySpec | str | Path | Mapping[str, Any],
    out: str | Path | None = None,
    *,
    backend: Backend | None = None,
    progress: bool = True,
    on_image: Callable[[int, int], None] | None = None,
) -> StudyRun:
    """Run (or resume) a study into ``out`` (default ``runs/NAME``).

    ``on_image(done, total)`` is called after each image. An interrupt (Ctrl-C) leaves a valid folder;
    running again makes only what is missing.
    """
    import yaml
    from tqdm.auto import tqdm

    start = time.perf_counter()
    spec = _load_spec(spec)
    folder = Path(out) if out is not None else Path("runs") / spec.name
    sweep = study_sweep(spec)
    cells = sweep.cells()
    resolved = spec.to_dict()
    spec_path = folder / SPEC
    notes: list[str] = []
    if spec_path.exists():
        try:
            recorded = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            recorded = resolved  # rewritten below; kept images are checked against the spec's cells
            notes.append(f"{SPEC} was not valid YAML ({type(exc).__name__}); rewrote it from this spec")
        if recorded != resolved:
            raise ValidationError("out", str(folder), "holds a run of a different spec; use another folder")
    with output_errors(folder):
        (folder / IMAGES).mkdir(parents=True, exist_ok=True)
        if spec.backend != "local":
            (folder / REPLIES).mkdir(exist_ok=True)

    lines = _manifest_lines(folder)
    entries: dict[int, dict[str, Any]] = {}
    for n, entry, problem in lines:
        if problem is None and entry["cell"] >= len(cells):
            problem = f"names cell {entry['cell']}, the spec has {len(cells)}"
        if problem is None and any(
            entry["params"].get(k) != getattr(cells[entry["cell"]].params, k) for k in _SAME_CELL
        ):
            problem = "has parameters that are not its cell's"
        if problem is not None:
            notes.append(f"{MANIFEST} line {n} dropped: it {problem}; its image is made again")
            continue
        path = folder / entry["file"]
        if path.is_file() and _sha256(path.read_bytes()) == entry["png_sha256"] and _readable_png(path):
            entries[entry["cell"]] = entry
    next_batch = _next_batch_number([e for _, e, _ in lines])

    backend = backend or make_backend(spec)
    environment = _study_environment(spec)
    env_path = folder / ENVIRONMENT
    try:
        recorded_env = _read_json(folder, ENVIRONMENT)
    except ValidationError as exc:
        if entries:  # images were made in an environment that is now unknown: do not mix blindly
            raise ValidationError(
                exc.field, "", f"{exc.reason}; remove it to record this environment and resume"
            ) from None
        recorded_env = None
        notes.append(f"{ENVIRONMENT} was damaged and no image was kept; recorded this environment again")
    if not isinstance(recorded_env, (dict, type(None))):
        raise ValidationError(str(env_path), recorded_env, "is not a JSON object; remove it to record this environment")
    if recorded_env is not None:
        # keys a folder made by an earlier sdkit did not record are not held against it
        changed = [d for d in environment_diff(recorded_env, environment) if d[0] in PIXEL_KEYS and d[1] is not None]
        if changed:
            what = ", ".join(f"{k} {a!r} → {b!r}" for k, a, b in changed)
            raise ValidationError(
                "out",
                str(folder),
                f"was started in another environment ({what}); resume it where it started, or use another folder",
            )
    with output_errors(folder):
        if recorded_env is None:
            _write_json(env_path, environment)
        atomic_write_bytes(spec_path, yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True).encode())

    kept = len(entries)
    failures: dict[int, str] = {}
    pending = [c for c in cells if c.index not in entries]
    lock = threading.Lock()
    bar = tqdm(total=len(cells), initial=kept, disable=not progress, unit="image", desc=spec.name)

    def record(cell: Cell, outcome: Any, batch: dict[str, Any], elapsed: float) -> None:
        with lock:
            if isinstance(outcome, Exception):
                failures[cell.index] = f"{type(outcome).__name__}: {outcome}"
            elif not outcome.images:
                failures[cell.index] = "ReplyError: the backend returned no image"
            else:
                failures.pop(cell.index, None)
                entries[cell.index] = _save_image(folder, sweep, cell, outcome, batch, elapsed, spec)
            bar.update(1)
            if on_image is not None:
                on_image(len(entries), len(cells))

    try:
        if spec.backend == "local":
            from dataclasses import replace

            from sdkit.backends.base import capabilities
            from sdkit.engine.planner import plan_batches

            caps = capabilities(backend)
            plan = plan_batches([c.params for c in pending], caps if spec.batch else replace(caps, max_batch=1))
            for members in plan:
                batch_cells = [pending[i] for i in members]
                results = backend.generate_many([c.params for c in batch_cells], return_errors=True)
                batch = {"id": f"b{next_batch:05d}", "cells": [c.index for c in batch_cells]}
                next_batch += 1
                with output_errors(folder):
                    for position, (cell, outcome) in enumerate(zip(batch_cells, results, strict=True)):
                        elapsed = 0.0 if isinstance(outcome, Exception) else outcome.timings.generate_s
                        record(cell, outcome, {**batch, "position": position, "size": len(batch_cells)}, elapsed)
                    _write_manifest(folder, entries)
        else:
            t0 = time.perf_counter()

            def on_result(i: int, outcome: Any) -> None:
                record(
                    pending[i],
                    outcome,
                    {"id": None, "cells": [pending[i].index], "position": 0, "size": 1},
                    time.perf_counter() - t0,
                )
                with lock:
                    _write_manifest(folder, entries)

            with output_errors(folder):
                backend.generate_many([c.params for c in pending], on_result=on_result, return_errors=True)
    except BaseException:
        bar.close()
        with lock, contextlib.suppress(OSError):  # keep what was made; never hide the cause behind a 2nd error
            _write_manifest(folder, entries)
            _write_json(folder / FAILURES, [{"cell": k, "error": v} for k, v in sorted(failures.items())])
        raise
    bar.close()
    with output_errors(folder):
        _write_manifest(folder, entries)
        _write_json(folder / FAILURES, [{"cell": k, "error": v} for k, v in sorted(failures.items())])
        grid_paths = tuple(_save_grids(folder, sweep, cells, entries, failures))
    return StudyRun(
        folder,
        made=len(entries) - kept,
        kept=kept,
        failed=len(failures),
        total=len(cells),
        grid_paths=grid_paths,
        elapsed_s=time.perf_counter() - start,
        errors=tuple(sorted(failures.items())),
        notes=tuple(notes),
    )


def _save_image(
    folder: Path, sweep: Sweep, cell: Cell, result: Any, batch: dict[str, Any], elapsed: float, spec: StudySpec
) -> dict[str, Any]:
    image = result.images[0]
    record = {**result.record(0), "cell": cell.index, "batch": batch}
    data = png_bytes(image, record)
    name = f"{IMAGES}/{cell.index:05d}.png"
    atomic_write_bytes(folder / name, data)
    details = dict(result.details)
    entry: dict[str, Any] = {
        "cell": cell.index,
        "x": cell.x,
        "y": cell.y,
        "z": cell.z,
        "seed_index": cell.seed_index,
        "labels": _labels(sweep, cell),
        "file": name,
        "params": result.params.to_dict(),
        "seed": result.seeds[0],
        "backend": result.backend,
        "model": result.model,
        "batch": batch,
        "png_sha256": _sha256(data),
        "pixels_sha256": _pixels_sha256(image),
        "elapsed_s": round(elapsed, 4),
        "regenerable": result.backend == "local",
        **{k: v for k, v in details.items() if k not in ("raw_reply", "batch_size", "batch_offset")},
    }
    raw = details.get("raw_reply")
    if raw:
        replies = [raw] if isinstance(raw, str) else list(raw)
        files = []
        for j, text in enumerate(replies):
            reply_name = f"{REPLIES}/{cell.index:05d}-{j}.json"
            blob = text.encode() if isinstance(text, str) else bytes(text)
            atomic_write_bytes(folder / reply_name, blob)
            files.append({"file": reply_name, "sha256": _sha256(blob)})
        entry["replies"] = files
    return entry


def _save_grids(
    folder: Path,
    sweep: Sweep,
    cells: list[Cell],
    entries: Mapping[int, dict[str, Any]],
    failures: Mapping[int, str],
    *,
    source: Path | None = None,
    describe: bool = True,
) -> list[Path]:
    """Labelled grids of the images in ``source`` (default ``folder``), written into ``folder``."""
    from PIL import Image

    from sdkit.sweeps.runner import CellResult, SweepResult, save_grids

    source = source or folder
    outcomes = []
    for cell in cells:
        if cell.index in entries:
            with Image.open(source / entries[cell.index]["file"]) as im:
                outcomes.append(CellResult(cell, "", "generated", image=im.convert("RGB")))
        else:
            error = failures.get(cell.index, "not made yet")
            outcomes.append(CellResult(cell, "", "failed", error=error))
    return save_grids(SweepResult(sweep=sweep, cells=tuple(outcomes), backend={}), folder, describe=describe)


# --- verify ------------------------------------------------------------------------------------


def verify_study(folder: str | Path, *, backend: Backend | None = None, progress: bool = True) -> Verification:
    """Check a run folder: every file against the manifest, then every local image made again the way
    it was made (same batches, same thread count) and compared, bytes first, then pixels."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise ValidationError("folder", str(folder), "is not a study run folder (no manifest.jsonl)")
    problems: list[str] = []
    for name in (SPEC, ENVIRONMENT):
        if not (folder / name).is_file():
            problems.append(f"{name} is missing")
    if problems:
        return Verification(folder, (), (), tuple(problems))
    spec = _read_spec(folder)
    entries = _strict_manifest(folder)
    recorded_env = _read_json(folder, ENVIRONMENT)
    if not isinstance(recorded_env, dict):
        raise ValidationError(str(folder / ENVIRONMENT), recorded_env, "is not a JSON object")
    expected = study_sweep(spec).count()
    if len(entries) != expected:
        problems.append(f"the manifest lists {len(entries)} image(s), the spec makes {expected}")
    if len({e["cell"] for e in entries}) != len(entries):
        problems.append("the manifest lists a cell twice")
    problems += [
        f"the manifest lists cell {e['cell']}, the spec has {expected}" for e in entries if e["cell"] >= expected
    ]

    checks: dict[int, ImageCheck] = {}
    intact: list[dict[str, Any]] = []
    for e in entries:
        path = folder / e["file"]
        if not path.is_file():
            checks[e["cell"]] = ImageCheck(e["cell"], e["file"], "missing")
        elif _sha256(path.read_bytes()) != e["png_sha256"]:
            checks[e["cell"]] = ImageCheck(e["cell"], e["file"], "tampered", note="sha256 differs from the manifest")
        elif not _readable_png(path):
            checks[e["cell"]] = ImageCheck(e["cell"], e["file"], "tampered", note="not a readable sdkit PNG")
        else:
            intact.append(e)

    if len(intact) == len(entries):  # with a missing or altered image the grid cannot match; that is reported
        problems += _check_grids(folder, spec, entries)
    if spec.backend != "local":
        for e in intact:
            checks[e["cell"]] = _check_archive(folder, e, spec.backend)
        return Verification(folder, tuple(checks[k] for k in sorted(checks)), (), tuple(problems))

    default_threads = recorded_env.get("torch_threads")  # folders whose lines did not record it
    # a batch is its id *and* its cells: an id reused by a resumed run of an older sdkit cannot merge two
    batches: dict[tuple[str, tuple[int, ...]], list[dict[str, Any]]] = {}
    for e in intact:
        batches.setdefault((e["batch"]["id"], tuple(e["batch"]["cells"])), []).append(e)
    largest = max((e["batch"]["size"] for e in intact), default=1)
    backend = backend or make_backend(spec, max_batch=largest)
    env_now = _study_environment(spec)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(intact), disable=not progress, unit="image", desc=f"verify {spec.name}")
    by_cell = {e["cell"]: e for e in entries}
    try:
        for (_, full), members in sorted(batches.items()):
            replay = [by_cell[c] for c in full if c in by_cell]  # the whole recorded batch, in order
            params = [GenerationParams.from_dict(r["params"]) for r in replay]
            threads = _recorded_threads(members[0]) or default_threads
            if threads and hasattr(backend, "set_threads") and not spec.portable:
                backend.set_threads(threads)  # each batch with the thread count it was made with
            results = backend.generate_many(params, return_errors=True)
            for r, outcome in zip(replay, results, strict=True):
                if r not in members:
                    continue
                checks[r["cell"]] = _compare(folder, r, outcome)
                bar.update(1)
    finally:
        bar.close()
    for e in entries:  # every line accounted for: made again and compared, or said why not
        if e["cell"] not in checks:
            checks[e["cell"]] = ImageCheck(e["cell"], e["file"], "unverifiable", note="its batch was not made again")
    diff = tuple(environment_diff(recorded_env, env_now))
    return Verification(folder, tuple(checks[k] for k in sorted(checks)), diff, tuple(problems))


def _compare(folder: Path, entry: dict[str, Any], outcome: Any) -> ImageCheck:
    import numpy as np
    from PIL import Image

    cell, name = entry["cell"], entry["file"]
    if isinstance(outcome, Exception):
        return ImageCheck(cell, name, "different", note=f"could not be made again: {outcome}")
    with Image.open(folder / name) as im:
        stored_record = json.loads(im.info.get("sdkit", "{}"))
        stored = np.asarray(im.convert("RGB"), dtype=np.int16)
    fresh_image = outcome.images[0]
    record = {**outcome.record(0), "cell": cell, "batch": stored_record.get("batch")}
    if _sha256(png_bytes(fresh_image, record)) == entry["png_sha256"]:
        return ImageCheck(cell, name, "identical", 0)
    fresh = np.asarray(fresh_image.convert("RGB"), dtype=np.int16)
    if fresh.shape != stored.shape:
        return ImageCheck(cell, name, "different", note=f"size {fresh.shape[1]}x{fresh.shape[0]}")
    max_diff = int(np.abs(fresh - stored).max())
    if max_diff == 0:
        return ImageCheck(cell, name, "pixels-identical", 0, note="the metadata differs")
    return ImageCheck(cell, name, "different", max_diff, note=_cpu_difference(entry, outcome.details))


def _cpu_difference(entry: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """What decided the floats then and now, where it differs (e.g. ``torch_threads 2 → 1``)."""
    changed = [f"{k} {entry.get(k)!r} → {now.get(k)!r}" for k in CPU_KEYS if k in entry and entry.get(k) != now.get(k)]
    return ("made with other CPU settings: " + ", ".join(changed)) if changed else ""


def _check_archive(folder: Path, entry: dict[str, Any], backend_name: str) -> ImageCheck:
    """A remote image: its reply files intact, and where the reply carries the image itself
    (base64, data URI), the image in it equal to the PNG's pixels."""
    import io

    from PIL import Image

    from sdkit.backends.relay.reply import find_images, parse_chat_reply, parse_images_response

    cell, name = entry["cell"], entry["file"]
    images: list[bytes] = []
    for reply in entry.get("replies", []):
        path = folder / reply["file"]
        if not path.is_file():
            return ImageCheck(cell, name, "archive-tampered", note=f"{reply['file']} is missing")
        raw = path.read_bytes()
        if _sha256(raw) != reply["sha256"]:
            return ImageCheck(cell, name, "archive-tampered", note=f"{reply['file']} differs from the manifest")
        try:
            parsed = parse_images_response(raw) if backend_name == "images" else parse_chat_reply(raw)
            images += [ref.data for ref in find_images(parsed) if ref.data is not None]
        except SdkitError as exc:
            return ImageCheck(cell, name, "archive-tampered", note=f"{reply['file']} no longer parses: {exc}")
    note = "a remote image cannot be regenerated; file and reply archive intact"
    if images:
        with Image.open(io.BytesIO(images[0])) as a, Image.open(folder / name) as b:
            if a.convert("RGB").tobytes() != b.convert("RGB").tobytes():
                return ImageCheck(cell, name, "archive-tampered", note="the image in the reply differs from the PNG")
        note += "; the reply's image equals the PNG"
    else:
        note += "; the reply only linked the image (URLs expire), the PNG is the copy"
    return ImageCheck(cell, name, "archived", note=note)


def _check_grids(folder: Path, spec: StudySpec, entries: list[dict[str, Any]]) -> list[str]:
    """Grids rebuilt offline from the stored images must equal the stored grid files."""
    import io
    import tempfile

    from PIL import Image

    sweep = study_sweep(spec)
    cells = sweep.cells()
    by_cell = {e["cell"]: e for e in entries if (folder / e["file"]).is_file()}
    failures = _read_json(folder, FAILURES, [])
    if not isinstance(failures, list) or not all(isinstance(f, dict) and "cell" in f for f in failures):
        return [f"{FAILURES} is not a list of failed cells"]
    errors = {f["cell"]: str(f.get("error")) for f in failures}

    def same(stored: Path, made: Path) -> bool:
        with Image.open(stored) as a, Image.open(io.BytesIO(made.read_bytes())) as b:
            return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()

    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = _save_grids(Path(tmp), sweep, cells, by_cell, errors, source=folder)
        problems = []
        for path in rebuilt:
            stored = folder / path.name
            if not stored.is_file():
                problems.append(f"{path.name} is missing")
            elif not same(stored, path):
                # an older sdkit drew no title line above a grid: such a folder's grid is checked as it was made
                untitled = Path(tmp) / "untitled"
                _save_grids(untitled, sweep, cells, by_cell, errors, source=folder, describe=False)
                if not same(stored, untitled / path.name):
                    problems.append(f"{path.name} does not match the images it is made of")
    return problems


# --- report ------------------------------------------------------------------------------------


def write_report(folder: str | Path) -> Path:
    """Write ``report.html`` into a run folder: one self-contained page."""
    import yaml

    from sdkit.studies.report import render_report

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise ValidationError("folder", str(folder), "is not a study run folder (no manifest.jsonl)")
    spec: Any = {}
    if (folder / SPEC).exists():
        try:
            spec = yaml.safe_load((folder / SPEC).read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ValidationError(str(folder / SPEC), "", f"is not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise ValidationError(str(folder / SPEC), spec, "is not a mapping")
    environment = _read_json(folder, ENVIRONMENT, {})
    failures = _read_json(folder, FAILURES, [])
    if not isinstance(environment, dict):
        raise ValidationError(str(folder / ENVIRONMENT), environment, "is not a JSON object")
    if not isinstance(failures, list) or not all(isinstance(f, dict) for f in failures):
        raise ValidationError(str(folder / FAILURES), failures, "is not a list of failed cells")
    entries = _strict_manifest(folder)
    grids = [(p.name, _inside(folder, p.name, p.name).read_bytes()) for p in sorted(folder.glob("grid*.png"))]
    images = {e["cell"]: (folder / e["file"]).read_bytes() for e in entries if (folder / e["file"]).is_file()}
    page = render_report(
        spec=spec, environment=environment, entries=entries, grids=grids, images=images, failures=failures
    )
    atomic_write_bytes(folder / REPORT, page.encode())
    return folder / REPORT
