"""Verifying a study's run folder: every file against the manifest, then every image that can be made
again made again the way it was made (same batches, same thread count) and compared, bytes first, then
pixels. Images that cannot be made again (a remote service's) are checked against their archived replies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.backends.base import identity
from sdkit.engine.executor import InProcessExecutor
from sdkit.environment import environment_diff
from sdkit.errors import SdkitError, ValidationError
from sdkit.metadata.pngfile import png_bytes
from sdkit.params import GenerationParams
from sdkit.studies.folder import (
    ENVIRONMENT,
    FAILURES,
    MANIFEST,
    SPEC,
    read_json,
    read_spec,
    readable_png,
    recorded_threads,
    save_grids,
    sha256,
    strict_manifest,
    study_environment,
    study_sweep,
)
from sdkit.studies.run import make_backend

if TYPE_CHECKING:
    from sdkit.backends.base import Backend
    from sdkit.engine.executor import Executor, Request
    from sdkit.studies.spec import StudySpec

__all__ = ["ImageCheck", "Verification", "verify_study"]

#: What a local image's record says about the CPU numerics it was made with (named when verify differs).
CPU_KEYS = ("torch_threads", "cpu_capability", "portable", "device", "dtype")


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


def verify_study(
    folder: str | Path, *, backend: Backend | None = None, progress: bool = True, executor: Executor | None = None
) -> Verification:
    """Check a run folder: every file against the manifest, then every image that can be made again
    (its backend declared ``regenerable``) made again the way it was made and compared, bytes first,
    then pixels; the others against their archived replies.

    Each recorded batch is made again as one batch, on a backend with the thread count it was made
    with: ``backend`` when it says so in its identity (or none was recorded), else one built from the
    spec through the registry with that count."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise ValidationError("folder", str(folder), "is not a study run folder (no manifest.jsonl)")
    problems: list[str] = []
    for name in (SPEC, ENVIRONMENT):
        if not (folder / name).is_file():
            problems.append(f"{name} is missing")
    if problems:
        return Verification(folder, (), (), tuple(problems))
    spec = read_spec(folder)
    entries = strict_manifest(folder)
    recorded_env = read_json(folder, ENVIRONMENT)
    if not isinstance(recorded_env, dict):
        raise ValidationError(str(folder / ENVIRONMENT), recorded_env, "is not a JSON object")
    expected = study_sweep(spec, folder).count()
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
        elif sha256(path.read_bytes()) != e["png_sha256"]:
            checks[e["cell"]] = ImageCheck(e["cell"], e["file"], "tampered", note="sha256 differs from the manifest")
        elif not readable_png(path):
            checks[e["cell"]] = ImageCheck(e["cell"], e["file"], "tampered", note="not a readable sdkit PNG")
        else:
            intact.append(e)

    if len(intact) == len(entries):  # with a missing or altered image the grid cannot match; that is reported
        problems += _check_grids(folder, spec, entries)
    regenerable = [e for e in intact if e.get("regenerable", True)]  # lines of an older sdkit: local images
    for e in intact:
        if not e.get("regenerable", True):
            checks[e["cell"]] = _check_archive(folder, e, e.get("backend") or spec.backend)
    if not regenerable:
        return Verification(folder, tuple(checks[k] for k in sorted(checks)), (), tuple(problems))

    for e in regenerable:  # a record holds a key; a path or URL here would make verify read or fetch it
        value = e["params"].get("init_image")
        if value is not None and not (isinstance(value, str) and value.startswith("sha256:")):
            raise ValidationError(f"manifest cell {e['cell']} init_image", value, "must be a 'sha256:' key")
    if any(e["params"].get("init_image") for e in regenerable):
        from sdkit.initimage import load_folder_inputs

        load_folder_inputs(folder)  # the run folder carries its img2img inputs
    replays = _replays(entries, regenerable, recorded_env.get("torch_threads"))
    largest = max((e["batch"]["size"] for e in regenerable), default=1)
    backends: dict[int | None, Backend] = {}

    def backend_for(threads: int | None) -> Backend:
        if threads not in backends:
            if backend is not None and (threads is None or identity(backend).get("threads") == threads):
                backends[threads] = backend
            else:
                backends[threads] = make_backend(spec, max_batch=largest, **({"threads": threads} if threads else {}))
        return backends[threads]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(regenerable), disable=not progress, unit="image", desc=f"verify {spec.name}")
    made: list[tuple[dict[str, Any], bool]] = []  # per request: its manifest line, and whether it is checked

    def on_result(key: int, outcome: Any, made_with: tuple[int, ...]) -> None:
        entry, checked = made[key]
        if checked:
            checks[entry["cell"]] = _compare(folder, entry, outcome)
            bar.update(1)

    try:
        for threads, batches in replays.items():
            plan: list[list[Request]] = []
            for batch in batches:
                plan.append(
                    [(len(made) + i, GenerationParams.from_dict(r["params"])) for i, (r, _) in enumerate(batch)]
                )
                made.extend(batch)
            (executor or InProcessExecutor()).run(backend_for(threads), plan, on_result)
    finally:
        bar.close()
    for e in entries:  # every line accounted for: made again and compared, or said why not
        if e["cell"] not in checks:
            checks[e["cell"]] = ImageCheck(e["cell"], e["file"], "unverifiable", note="its batch was not made again")
    env_now = study_environment(spec, regenerable=True)
    diff = tuple(environment_diff(recorded_env, env_now))
    return Verification(folder, tuple(checks[k] for k in sorted(checks)), diff, tuple(problems))


def _replays(
    entries: list[dict[str, Any]], regenerable: list[dict[str, Any]], default_threads: Any
) -> dict[int | None, list[list[tuple[dict[str, Any], bool]]]]:
    """The recorded batches to make again, by the thread count they were made with: each batch whole and
    in order, every request with its manifest line and whether that image is checked (an image whose
    file is missing or altered is made only so that its batch is the one recorded)."""
    # a batch is its id *and* its cells: an id reused by a resumed run of an older sdkit cannot merge two
    batches: dict[tuple[str, tuple[int, ...]], list[dict[str, Any]]] = {}
    for e in regenerable:
        batches.setdefault((e["batch"]["id"], tuple(e["batch"]["cells"])), []).append(e)
    by_cell = {e["cell"]: e for e in entries}
    replays: dict[int | None, list[list[tuple[dict[str, Any], bool]]]] = {}
    for (_, full), members in sorted(batches.items()):
        threads = recorded_threads(members[0])
        if threads is None and "device" in members[0]:  # a torch pipeline's line from before lines recorded
            threads = default_threads  # their thread count: the count the environment recorded
        threads = threads if isinstance(threads, int) and not isinstance(threads, bool) else None
        batch = [(by_cell[c], by_cell[c] in members) for c in full if c in by_cell]
        replays.setdefault(threads, []).append(batch)
    return replays


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
    if sha256(png_bytes(fresh_image, record)) == entry["png_sha256"]:
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


#: Kinds whose archived replies are in a provider's official format (:mod:`sdkit.backends.providers`).
PROVIDER_KINDS = ("stability", "bfl")


def _check_archive(folder: Path, entry: dict[str, Any], backend_name: str) -> ImageCheck:
    """An image that cannot be made again: its file is the manifest's (checked before), its reply files
    intact, and where a reply carries the image itself (base64, data URI), that image equal to the PNG's
    pixels."""
    import io

    from PIL import Image

    from sdkit.backends.providers.backend import reply_images as provider_reply_images
    from sdkit.backends.relay.reply import reply_images

    cell, name = entry["cell"], entry["file"]
    images: list[bytes] = []
    for reply in entry.get("replies", []):
        path = folder / reply["file"]
        if not path.is_file():
            return ImageCheck(cell, name, "archive-tampered", note=f"{reply['file']} is missing")
        raw = path.read_bytes()
        if sha256(raw) != reply["sha256"]:
            return ImageCheck(cell, name, "archive-tampered", note=f"{reply['file']} differs from the manifest")
        try:
            if backend_name in PROVIDER_KINDS:  # a provider's own format (an image, or JSON holding or linking one)
                images += provider_reply_images(raw)
            else:
                images += reply_images(raw, backend_name)
        except SdkitError as exc:
            return ImageCheck(cell, name, "archive-tampered", note=f"{reply['file']} no longer parses: {exc}")
    if not entry.get("replies"):
        return ImageCheck(cell, name, "archived", note="its backend cannot make it again; the file is the manifest's")
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

    sweep = study_sweep(spec, folder)
    by_cell = {e["cell"]: e for e in entries if (folder / e["file"]).is_file()}
    failures = read_json(folder, FAILURES, [])
    if not isinstance(failures, list) or not all(isinstance(f, dict) and "cell" in f for f in failures):
        return [f"{FAILURES} is not a list of failed cells"]
    errors = {f["cell"]: str(f.get("error")) for f in failures}

    def same(stored: Path, made: Path) -> bool:
        with Image.open(stored) as a, Image.open(io.BytesIO(made.read_bytes())) as b:
            return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()

    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = save_grids(Path(tmp), sweep, by_cell, errors, source=folder)
        problems = []
        for path in rebuilt:
            stored = folder / path.name
            if not stored.is_file():
                problems.append(f"{path.name} is missing")
            elif not same(stored, path):
                # an older sdkit drew no title line above a grid: such a folder's grid is checked as it was made
                untitled = Path(tmp) / "untitled"
                save_grids(untitled, sweep, by_cell, errors, source=folder, describe=False)
                if not same(stored, untitled / path.name):
                    problems.append(f"{path.name} does not match the images it is made of")
    return problems
