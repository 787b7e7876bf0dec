"""Build the notebooks from their sources, execute them and write them with their outputs.

    python -m tools.notebooks            # build and execute every notebook
    python -m tools.notebooks 00         # only those whose name starts with 00
    python -m tools.notebooks --check    # say which committed notebooks differ from their sources

Each notebook's cells live in ``notebooks/src/NN_topic.py``, a Python file in jupytext's percent format
(``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines are ``# ``-comments; a magic
such as ``%matplotlib inline`` is written ``# %matplotlib inline``), which ruff checks like any other code.
This builds ``notebooks/NN_topic.ipynb`` from it, executes it with the ``python3`` kernel in ``notebooks/``
and writes it with its outputs; nbval re-runs the notebooks in ``make test``, and
``tests/notebook/test_sources.py`` fails when a committed notebook and its source disagree.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
SRC_DIR = NB_DIR / "src"

#: What the kernel runs with, as `make test` runs nbval: offline, no progress bars, quiet transformers.
KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def sources(prefix: str = "") -> list[Path]:
    """The notebook sources whose name starts with ``prefix``, in order."""
    return [path for path in sorted(SRC_DIR.glob("[0-9][0-9]_*.py")) if path.name.startswith(prefix)]


def notebook_path(source: Path) -> Path:
    """The committed notebook built from ``source``."""
    return NB_DIR / f"{source.stem}.ipynb"


def read_cells(source: Path) -> list[nbformat.NotebookNode]:
    """The cells of ``source`` as notebook cells: type and source only (no metadata, no outputs)."""
    text = jupytext.reads(source.read_text(encoding="utf-8"), fmt="py:percent")
    cells = []
    for cell in text.cells:
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(cell.source))
        elif cell.cell_type == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(cell.source))
        else:
            raise ValueError(f"{source.name}: {cell.cell_type} cells are not used in notebooks")
    return cells


def first_difference(source: Path, notebook: Path) -> str | None:
    """Where ``notebook``'s cells (types and sources, in order; outputs ignored) stop matching ``source``'s,
    or None when they match."""
    want = read_cells(source)
    have = nbformat.read(notebook, as_version=4).cells
    for index, (expected, actual) in enumerate(zip(want, have, strict=False)):  # unequal lengths: reported below
        if (expected.cell_type, expected.source) != (actual.cell_type, actual.source):
            first_line = expected.source.splitlines()[0] if expected.source else ""
            return (
                f"{notebook.name} cell {index} ({actual.cell_type}) differs from {source.name}'s "
                f"{expected.cell_type} cell {index} ({first_line[:60]!r})"
            )
    if len(want) != len(have):
        return f"{notebook.name} has {len(have)} cells, {source.name} {len(want)}"
    return None


def build_notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook of ``source``, unexecuted, with stable cell ids (``cell-00``, ``cell-01``, …)."""
    nb = nbformat.v4.new_notebook(cells=read_cells(source))
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:02d}"
    return nb


def execute(nb: nbformat.NotebookNode) -> None:
    """Run ``nb`` in place with the ``python3`` kernel, in ``notebooks/``, against this tree's sdkit."""
    from nbclient import NotebookClient

    env = {**os.environ, **KERNEL_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NB_DIR)}},
        store_widget_state=False,
    )
    client.execute(env=env)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata = {}


def build(prefix: str = "") -> None:
    """Build, execute and write every notebook whose name starts with ``prefix``."""
    chosen = sources(prefix)
    if not chosen:
        raise SystemExit(f"no notebook source in {SRC_DIR} starts with {prefix!r}")
    for source in chosen:
        nb = build_notebook(source)
        execute(nb)
        nbformat.write(nb, notebook_path(source))
        print("wrote", notebook_path(source).relative_to(ROOT))


def check() -> int:
    """Print each committed notebook that differs from its source; 1 when any does."""
    problems = []
    for source in sources():
        path = notebook_path(source)
        problem = first_difference(source, path) if path.exists() else f"{path.name} is missing"
        if problem:
            problems.append(problem)
    for problem in problems:
        print(problem, "- run `python -m tools.notebooks`")
    return 1 if problems else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--check"]:
        raise SystemExit(check())
    build(args[0] if args else "")
