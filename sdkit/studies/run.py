"""Running a study: a spec → a run folder (see :mod:`sdkit.studies.folder` for what it holds).

A study is a sweep with an exact, recorded batching policy: its cells go through the same planner
and executor as a sweep's, and every manifest line records the batch its image was made in, so
that :func:`~sdkit.studies.verify.verify_study` can make each batch again the same way.

Running again resumes: cells already in the manifest with their file intact are kept, the rest are
made, so no image is lost or made twice.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.backends import registry
from sdkit.backends.base import capabilities, check
from sdkit.backends.registry import create_backend
from sdkit.engine.executor import plan
from sdkit.engine.runfolder import RunFolder
from sdkit.environment import environment_diff
from sdkit.errors import OutputError, ValidationError
from sdkit.metadata.pngfile import output_errors
from sdkit.studies.folder import (
    ENVIRONMENT,
    FAILURES,
    IMAGES,
    MANIFEST,
    REPLIES,
    SPEC,
    labels,
    load_spec,
    manifest_lines,
    next_batch_number,
    pixels_sha256,
    read_json,
    readable_png,
    save_grids,
    sha256,
    study_environment,
    study_sweep,
)
from sdkit.studies.spec import StudySpec

if TYPE_CHECKING:
    from sdkit.backends.base import Backend
    from sdkit.engine.executor import Executor
    from sdkit.result import GenerationResult
    from sdkit.sweeps.sweep import Cell, Sweep

__all__ = ["StudyRun", "backend_options", "make_backend", "run_study"]

#: Environment keys that change pixels: a resumed run in another environment is refused.
PIXEL_KEYS = (
    "libraries.torch",
    "libraries.diffusers",
    "libraries.transformers",
    "torch_threads",
    "cpu_capability",
    "machine",
)
#: What a kept manifest line must agree on with its cell.
_SAME_CELL = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale")


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


def backend_options(spec: StudySpec) -> dict[str, Any]:
    """The options the spec's backend is built with (:func:`sdkit.create_backend`): the spec's
    ``backend_options`` and its own keys (``base_url``, ``sd_extras``, ``threads``, ``portable``), and no
    progress bar of the backend's own where it takes that option (the study shows one bar)."""
    options = spec.options()
    accepted = registry.backend_options(spec.backend)
    if accepted is None or "progress" in accepted:
        options.setdefault("progress", False)
    return options


def make_backend(spec: StudySpec, **overrides: Any) -> Backend:
    """The backend a spec names, built through the registry (a relay's API key comes from the
    environment); ``overrides`` replace options of :func:`backend_options`."""
    return create_backend(spec.backend, **{**backend_options(spec), **overrides})


def run_study(
    spec: StudySpec | str | Path | Mapping[str, Any],
    out: str | Path | None = None,
    *,
    backend: Backend | None = None,
    progress: bool = True,
    on_image: Callable[[int, int], None] | None = None,
    executor: Executor | str | None = None,
    ray_address: str | None = None,
) -> StudyRun:
    """Run (or resume) a study into ``out`` (default ``runs/NAME``).

    The cells still to make are planned into batches by what the backend declares (one image a call
    when the spec says ``batch: false``) and made by ``executor``: an :class:`~sdkit.engine.executor.Executor`,
    or a name, ``"in-process"`` or ``"ray"`` (Ray actors that build the spec's backend themselves, on a
    local Ray instance or on the cluster at ``ray_address``); default: the spec's ``executor`` key, else
    in this process. Whatever runs it, this process writes the folder.
    ``on_image(done, total)`` is called after each image. An interrupt (Ctrl-C) leaves a valid folder;
    running again makes only what is missing.
    """
    import yaml
    from tqdm.auto import tqdm

    start = time.perf_counter()
    spec = load_spec(spec)
    folder = Path(out) if out is not None else Path("runs") / spec.name
    files = RunFolder(folder)
    sweep = study_sweep(spec, folder, offline=False)  # a prompt_expand axis: its chat replies kept in the folder
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
        if _without_executor(recorded) != _without_executor(resolved):
            raise ValidationError("out", str(folder), "holds a run of a different spec; use another folder")
    with output_errors(folder):
        files.mkdir(IMAGES)
        if any(c.params.init_image for c in cells):
            from sdkit.initimage import save_init_images

            save_init_images((c.params.init_image for c in cells), folder)

    lines = manifest_lines(folder)
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
        if path.is_file() and sha256(path.read_bytes()) == entry["png_sha256"] and readable_png(path):
            entries[entry["cell"]] = entry
    next_batch = next_batch_number([e for _, e, _ in lines])

    if executor is None or isinstance(executor, str):
        from sdkit.engine.raycluster import executor_from_options

        name = executor if executor is not None else spec.executor
        executor = executor_from_options(spec.backend, backend_options(spec), name, address=ray_address)
    backend = backend or make_backend(spec)
    caps = capabilities(backend)
    check(backend, [c.params for c in cells])  # what the backend cannot make is refused before any work
    environment = study_environment(spec, regenerable=caps.regenerable)
    env_path = folder / ENVIRONMENT
    try:
        recorded_env = read_json(folder, ENVIRONMENT)
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
    if recorded_env is None:
        files.json(ENVIRONMENT, environment)
    files.write(SPEC, yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True).encode())

    kept = len(entries)
    failures: dict[int, str] = {}
    pending = [c for c in cells if c.index not in entries]
    lock = threading.Lock()
    batch_ids: dict[tuple[int, ...], str | None] = {}
    settled_in: dict[tuple[int, ...], int] = {}
    bar = tqdm(total=len(cells), initial=kept, disable=not progress, unit="image", desc=spec.name)

    def on_result(index: int, outcome: GenerationResult | Exception, made_with: tuple[int, ...]) -> None:
        nonlocal next_batch
        with lock:
            if made_with not in batch_ids:  # numbered as they come (images that cannot be remade: no id)
                batch_ids[made_with] = f"b{next_batch:05d}" if caps.regenerable else None
                if caps.regenerable:
                    next_batch += 1
            batch = {
                "id": batch_ids[made_with],
                "cells": list(made_with),
                "position": made_with.index(index),
                "size": len(made_with),
            }
            cell = cells[index]
            if isinstance(outcome, Exception):
                failures[cell.index] = f"{type(outcome).__name__}: {outcome}"
            elif not outcome.images:
                failures[cell.index] = "ReplyError: the backend returned no image"
            else:
                failures.pop(cell.index, None)
                entries[cell.index] = _save_image(files, sweep, cell, outcome, batch, caps.regenerable)
            bar.update(1)
            if on_image is not None:
                on_image(len(entries), len(cells))
            settled_in[made_with] = settled_in.get(made_with, 0) + 1
            if settled_in[made_with] == len(made_with):  # the manifest after each backend call
                files.jsonl(MANIFEST, (entries[k] for k in sorted(entries)))

    try:
        policy = caps if spec.batch else replace(caps, max_batch=1)
        batches = plan([(c.index, c.params) for c in pending], policy)
        executor.run(backend, batches, on_result)
    except BaseException:
        bar.close()
        with lock, contextlib.suppress(OSError, OutputError):  # keep what was made; never hide the cause
            files.jsonl(MANIFEST, (entries[k] for k in sorted(entries)))
            files.failures(FAILURES, failures)
        raise
    bar.close()
    files.jsonl(MANIFEST, (entries[k] for k in sorted(entries)))
    files.failures(FAILURES, failures)
    grid_paths = tuple(save_grids(folder, sweep, entries, failures))
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


def _without_executor(spec: Any) -> Any:
    """A recorded spec without its ``executor`` key: where a study runs changes no image, so a run
    started in-process may resume on Ray and back."""
    return {k: v for k, v in spec.items() if k != "executor"} if isinstance(spec, dict) else spec


def _save_image(
    files: RunFolder, sweep: Sweep, cell: Cell, result: GenerationResult, batch: dict[str, Any], regenerable: bool
) -> dict[str, Any]:
    """Write a cell's image (and a relay's raw replies) and return its manifest line."""
    image = result.images[0]
    name = f"{IMAGES}/{cell.index:05d}.png"
    data = files.image(name, image, {**result.record(0), "cell": cell.index, "batch": batch})
    details = dict(result.details)
    entry: dict[str, Any] = {
        "cell": cell.index,
        "x": cell.x,
        "y": cell.y,
        "z": cell.z,
        "seed_index": cell.seed_index,
        "labels": labels(sweep, cell),
        "file": name,
        "params": result.params.to_dict(),
        "seed": result.seeds[0],
        "backend": result.backend,
        "model": result.model,
        "batch": batch,
        "png_sha256": sha256(data),
        "pixels_sha256": pixels_sha256(image),
        "elapsed_s": round(result.timings.generate_s, 4),
        "regenerable": regenerable,
        "executor": {"kind": "in-process", "host": socket.gethostname(), "device": details.get("device") or "remote"},
        **{k: v for k, v in details.items() if k not in ("raw_reply", "batch_size", "batch_offset")},
    }
    raw = details.get("raw_reply")
    if raw:
        with output_errors(files.path / REPLIES):
            files.mkdir(REPLIES)
        replies = [raw] if isinstance(raw, str) else list(raw)
        archived = []
        for j, text in enumerate(replies):
            blob = text.encode() if isinstance(text, str) else bytes(text)
            suffix = ".json" if isinstance(text, str) or blob.lstrip()[:1] in (b"{", b"[") else ".bin"  # an image reply
            reply_name = f"{REPLIES}/{cell.index:05d}-{j}{suffix}"
            files.write(reply_name, blob)
            archived.append({"file": reply_name, "sha256": sha256(blob)})
        entry["replies"] = archived
    return entry
