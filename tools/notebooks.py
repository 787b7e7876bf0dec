"""Write the notebooks from their cell sources, then execute them in place.

    python tools/notebooks.py            # write and execute every notebook
    python tools/notebooks.py 00         # only those whose name starts with 00

The notebooks are committed with their outputs; nbval re-runs them in `make test`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
REPO_URL = "https://github.com/sdkit-lab/sdkit"


def colab_badge(name: str) -> str:
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({REPO_URL.replace('https://github.com', 'https://colab.research.google.com/github')}/blob/main/notebooks/{name})"
    )


SETUP = f'''# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install -q "sdkit-lab[local,notebooks] @ git+{REPO_URL}"'''


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip())


def quickstart():
    name = "00_quickstart.ipynb"
    return name, [
        md(f"""
# sdkit quickstart

{colab_badge(name)}

Generate images with the embedded `tiny` model, look at them, and read their parameters back from the PNG
files. Runs on a CPU in seconds. `tiny` is a 64×64 Stable Diffusion model trained by sdkit itself on pictures of
coloured shapes and shipped with it (no download): it draws circles, squares and triangles in eight colours on
coloured backgrounds, as asked.
"""),
        code(SETUP),
        code("""
import sdkit

backend = sdkit.LocalBackend(progress=False)  # cuda/fp16 when there is a GPU, else cpu/fp32
params = sdkit.GenerationParams("a red circle on a blue background", seed=1, num_inference_steps=20, num_images=4)
params"""),
        md("""
One call, four images. Image *i* uses seed `seed + i`, each drawn from its own CPU generator, so a seed
means the same picture on any machine. The result shows itself as a row of images:
"""),
        code("""
# NBVAL_IGNORE_OUTPUT
result = backend.generate(params)
result"""),
        md("The result keeps everything needed to make each image again:"),
        code("""
print("seeds:    ", result.seeds)
print("size:     ", result.params.width, "x", result.params.height)
print("scheduler:", result.details["scheduler"], f"({result.details['scheduler_class']})")
d = result.details
print("device:   ", d["device"], d["dtype"], "- noise from a", d["generator"], "generator")"""),
        md("Same seed, same pixels: these hashes are compared by nbval on every run of the test suite."),
        code("""
import hashlib

again = backend.generate(params.for_image(2))  # image 2 alone: seed 3
for item in result:
    print(item.seed, hashlib.sha256(item.image.tobytes()).hexdigest()[:16])
print("image 2 regenerated alone equals the batch's within one level:",
      max(abs(a - b) for a, b in zip(again.images[0].tobytes(), result.images[2].tobytes())) <= 1)"""),
        md("Save them as PNGs that carry their parameters (A1111's `parameters` text and sdkit's JSON record):"),
        code("""
import tempfile

folder = tempfile.mkdtemp()
paths = sdkit.save_result(result, folder)
meta = sdkit.read_png_metadata(paths[0])
print(meta["text"]["parameters"])
print(meta["parameters"]["Seed"], meta["sdkit"]["params"]["num_inference_steps"])"""),
        md("""
The same from a terminal:

```bash
sdkit generate "a red circle on a blue background" --seed 1 --n 4 --out outputs
sdkit info outputs/00000-1.png
```
"""),
    ]


NOTEBOOKS = [quickstart]


def build(prefix: str = "") -> None:
    for make in NOTEBOOKS:
        name, cells = make()
        if not name.startswith(prefix):
            continue
        nb = nbformat.v4.new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python"}
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(NB_DIR)}},
            store_widget_state=False,
        ).execute()
        for cell in nb.cells:
            cell["id"] = f"cell-{nb.cells.index(cell):02d}"
            if cell.cell_type == "code":
                cell.metadata = {}
        nbformat.write(nb, NB_DIR / name)
        print("wrote", NB_DIR / name)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "")
