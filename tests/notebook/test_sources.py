"""Each committed notebook matches its source in notebooks/src (cell types and sources, in order; outputs are
nbval's business). Nothing is executed."""

from __future__ import annotations

import nbformat
import pytest

from tools.notebooks import NB_DIR, first_difference, notebook_path, read_cells, sources

SOURCES = sources()


def test_every_notebook_has_a_source():
    assert len(SOURCES) == 8
    assert sorted(path.name for path in NB_DIR.glob("*.ipynb")) == sorted(notebook_path(s).name for s in SOURCES)


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_notebook_matches_its_source(source):
    problem = first_difference(source, notebook_path(source))
    assert problem is None, f"{problem}: rebuild it with `python -m tools.notebooks {source.name[:2]}`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_colab_badge_opens_this_notebook(source):
    first = read_cells(source)[0]
    assert first.cell_type == "markdown"
    assert f"/blob/main/notebooks/{notebook_path(source).name})" in first.source


SOURCE = """# %% [markdown]
# # Title
#
# Some text.

# %%
import sdkit

sdkit.GenerationParams("a red circle")

# %%
# %matplotlib inline
print(1)
"""


def write_pair(tmp_path, cells):
    source = tmp_path / "00_demo.py"
    source.write_text(SOURCE)
    notebook = tmp_path / "00_demo.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    return source, notebook


def test_read_cells_turns_comments_into_markdown_and_magics(tmp_path):
    source, _ = write_pair(tmp_path, [])
    cells = read_cells(source)
    assert [(c.cell_type, c.source) for c in cells] == [
        ("markdown", "# Title\n\nSome text."),
        ("code", 'import sdkit\n\nsdkit.GenerationParams("a red circle")'),
        ("code", "%matplotlib inline\nprint(1)"),
    ]


def test_first_difference_names_the_notebook_and_the_cell(tmp_path):
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    same = [
        md("# Title\n\nSome text."),
        code('import sdkit\n\nsdkit.GenerationParams("a red circle")'),
        code("%matplotlib inline\nprint(1)"),
    ]
    source, notebook = write_pair(tmp_path, same)
    assert first_difference(source, notebook) is None

    source, notebook = write_pair(tmp_path, [same[0], code('import sdkit\n\nsdkit.GenerationParams("x")'), same[2]])
    problem = first_difference(source, notebook)
    assert problem.startswith("00_demo.ipynb cell 1 (code) differs from 00_demo.py's code cell 1")

    source, notebook = write_pair(tmp_path, [code(same[0].source), *same[1:]])
    assert "cell 0 (code) differs from 00_demo.py's markdown cell 0" in first_difference(source, notebook)

    source, notebook = write_pair(tmp_path, same[:2])
    assert first_difference(source, notebook) == "00_demo.ipynb has 2 cells, 00_demo.py 3"
