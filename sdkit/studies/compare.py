"""One study run on several backends (the local model and image services), side by side.

Each provider gets an ordinary study folder (``OUT/LABEL``: its own spec, manifest, archived replies,
grid), so each resumes and verifies as any study does; ``OUT/comparison.png`` puts the same cells of
every provider in rows, and ``OUT/comparison.json`` says which folder is which row::

    run_comparison(spec, {"local": {"backend": "local"},
                          "stability": {"backend": "stability", "base_url": "https://api.stability.ai"},
                          "flux": {"backend": "bfl", "base_url": "https://api.bfl.ai",
                                   "model": "flux-pro-1.1"}}, "runs/compare")

A provider's ``model`` replaces the spec's (the embedded ``tiny`` locally; a service sends its own default
model for an embedded name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdkit.errors import ValidationError
from sdkit.studies.folder import load_spec
from sdkit.studies.spec import StudySpec, parse_study_spec

__all__ = ["COMPARISON_GRID", "Comparison", "comparison_grid", "run_comparison", "verify_comparison"]

COMPARISON_GRID = "comparison.png"
COMPARISON_INDEX = "comparison.json"
#: What a provider entry may set; the rest of the spec is shared.
PROVIDER_KEYS = ("backend", "base_url", "backend_options", "model", "sd_extras", "threads", "portable", "batch")


@dataclass(frozen=True)
class Comparison:
    """Where each provider's study went, what its run did, and the comparison grid."""

    folder: Path
    runs: Mapping[str, Any]
    grid_path: Path

    @property
    def complete(self) -> bool:
        return all(run.complete for run in self.runs.values())


def provider_specs(spec: StudySpec | str | Path | Mapping[str, Any], providers: Mapping[str, Mapping[str, Any]]):
    """``{label: StudySpec}``: the shared spec with each provider's backend settings (checked by name)."""
    base = load_spec(spec)
    if not isinstance(providers, Mapping) or not providers:
        raise ValidationError("providers", providers, "needs at least one label → {backend: …}")
    out: dict[str, StudySpec] = {}
    shared = {k: v for k, v in base.to_dict().items() if k not in PROVIDER_KEYS or k == "model"}
    for label, settings in providers.items():
        if not isinstance(label, str) or not label.replace("-", "").replace("_", "").isalnum():
            raise ValidationError("providers", label, "a label must be letters, digits, '-' or '_' (a folder name)")
        if not isinstance(settings, Mapping):
            raise ValidationError(f"providers.{label}", settings, "must be a mapping such as {backend: stability}")
        unknown = [k for k in settings if k not in PROVIDER_KEYS]
        if unknown:
            raise ValidationError(f"providers.{label}.{unknown[0]}", settings[unknown[0]], "is not a backend setting")
        try:
            out[label] = parse_study_spec({**shared, "name": f"{base.name}-{label}", **settings})
        except ValidationError as exc:
            raise ValidationError(f"providers.{label}.{exc.field}", exc.value, exc.reason) from None
    return out


def run_comparison(
    spec: StudySpec | str | Path | Mapping[str, Any],
    providers: Mapping[str, Mapping[str, Any]],
    out: str | Path,
    *,
    backends: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Comparison:
    """Run (or resume) ``spec`` once per provider into ``out/LABEL`` and draw ``out/comparison.png``.
    ``backends`` may give a ready backend for a label (else each is built from its settings)."""
    from sdkit.studies.run import run_study

    specs = provider_specs(spec, providers)  # every provider checked before any work
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    _share_expansions(load_spec(spec), folder, list(specs))
    runs = {}
    for label, one in specs.items():
        backend = (backends or {}).get(label)
        runs[label] = run_study(one, folder / label, backend=backend, progress=progress)
    (folder / COMPARISON_INDEX).write_text(json.dumps({"providers": list(specs)}, indent=2) + "\n")
    grid = comparison_grid(folder)
    grid.save(folder / COMPARISON_GRID)
    return Comparison(folder, runs, folder / COMPARISON_GRID)


def _share_expansions(spec: StudySpec, folder: Path, labels: list[str]) -> None:
    """A ``prompt_expand`` axis is asked for once (kept in ``folder/expansions``) and the same prompts go
    into every provider's folder, so each provider draws the same prompts."""
    import shutil

    from sdkit.backends.relay.expand import EXPANSIONS_DIR
    from sdkit.studies.folder import study_sweep

    if not any("prompt_expand" in text.replace(" ", "_").lower() for text in spec.axes.values()):
        return
    study_sweep(spec, folder, offline=False)
    for label in labels:
        target = folder / label / EXPANSIONS_DIR
        target.mkdir(parents=True, exist_ok=True)
        for kept in (folder / EXPANSIONS_DIR).glob("*.json"):
            if not (target / kept.name).exists():
                shutil.copyfile(kept, target / kept.name)


def comparison_grid(folder: str | Path):
    """The providers' images in rows (one column per cell), drawn from their folders alone."""
    from PIL import Image

    from sdkit.studies.folder import load_manifest
    from sdkit.sweeps.grid import labelled_grid

    folder = Path(folder)
    labels = json.loads((folder / COMPARISON_INDEX).read_text())["providers"]
    rows, x_labels = [], []
    for label in labels:
        entries = sorted(load_manifest(folder / label), key=lambda e: e["cell"])
        by_cell = {e["cell"]: e for e in entries}
        cells = max(by_cell, default=-1) + 1
        if not x_labels:
            x_labels = [
                " · ".join([*by_cell[c]["labels"].values(), f"seed {by_cell[c]['seed']}"]) if c in by_cell else ""
                for c in range(cells)
            ]
        row = []
        for c in range(len(x_labels)):
            entry = by_cell.get(c)
            if entry is None:
                row.append("not made")
                continue
            with Image.open(folder / label / entry["file"]) as im:
                row.append(im.convert("RGB").resize((128, 128), Image.Resampling.LANCZOS))
        rows.append(row)
    return labelled_grid(rows, x_labels=x_labels, y_labels=labels, title="the same study on each backend")


def verify_comparison(folder: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """``verify_study`` of each provider's folder (offline for services: their archived replies), and
    the comparison grid redrawn from the folders and compared. ``{label: VerifyResult, "grid": ok}``."""
    from PIL import Image

    from sdkit.studies.verify import verify_study

    folder = Path(folder)
    labels = json.loads((folder / COMPARISON_INDEX).read_text())["providers"]
    results: dict[str, Any] = {label: verify_study(folder / label, progress=progress) for label in labels}
    with Image.open(folder / COMPARISON_GRID) as stored:
        results["grid"] = stored.convert("RGB").tobytes() == comparison_grid(folder).convert("RGB").tobytes()
    return results
