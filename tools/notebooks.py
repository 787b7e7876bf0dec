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
        md("""
Same seed, same pixels: the same request made again here gives the same bytes. The floats (and so, now and
then, a pixel by one level) depend on the CPU's vector units and the thread count, which every result records;
`LocalBackend(portable=True)` pins them so that any x86-64 CPU with AVX2 gives identical pixels (see the README).
"""),
        code("""
again = backend.generate(params)  # the same request, a second time
same = [a.tobytes() == b.tobytes() for a, b in zip(result.images, again.images)]
print("the same request again, byte-identical:", same)
alone = backend.generate(params.for_image(2))  # image 2 alone: seed 3
print("image 2 made alone equals the batch's within one level:",
      max(abs(a - b) for a, b in zip(alone.images[0].tobytes(), result.images[2].tobytes())) <= 1)
print("threads:", d["torch_threads"], "· portable:", d["portable"])"""),
        code("""
# NBVAL_IGNORE_OUTPUT
print("CPU kernels:", d["cpu_capability"])  # AVX512, AVX2, … : this machine's"""),
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


def api():
    name = "01_chat_completions_api.ipynb"
    return name, [
        md(f"""
# The chat-completions API: build, export, send, parse

{colab_badge(name)}

The relay page (`shared/spec`) serves Stable Diffusion through an OpenAI-style `POST /v1/chat/completions`:
model `stable-diffusion-api`, the prompt as the user message, a `chat.completion` reply whose message holds the
image. Here the API is served by `sdkit serve` itself, from the embedded model, in the background on 127.0.0.1,
so the notebook runs offline. For a real relay, set `SDKIT_BASE_URL` and `SDKIT_API_KEY` in the environment
(in Colab: the 🔑 secrets panel) and skip the server cell: the key never goes into a cell.
"""),
        code(SETUP),
        code("""
import os
import secrets

import sdkit

# A local server needs a key of its own: made here, kept in the environment, never shown.
os.environ.setdefault("SDKIT_API_KEY", secrets.token_urlsafe(24))
server = sdkit.serve_in_background(model="tiny", api_keys=[os.environ["SDKIT_API_KEY"]])
os.environ["SDKIT_BASE_URL"] = server.url
client = sdkit.Client()  # base URL and key from the environment (or Colab secrets)
print("listening on loopback:", server.url.startswith("http://127.0.0.1:"), "| key loaded:", client.has_key)"""),
        md("A request is a frozen, validated value; its body is exactly what the page shows:"),
        code("""
request = sdkit.ChatRequest.from_prompt("a red circle on a blue background")
print(request.to_json())"""),
        md("Export it as a ready-to-run snippet, like the page's example code (the key stays `$SDKIT_API_KEY`):"),
        code("""
print(sdkit.export_request(request, "curl").replace(server.url, "http://127.0.0.1:PORT"))"""),
        md("""
Send it and parse the reply: the typed `chat.completion`, and the image found in the message (here a markdown
data URI; the client knows every shape relays use, fetches URLs at once and checks the bytes are an image):
"""),
        code("""
reply = client.chat(request)
completion = reply.reply
print(completion.object, "| choices:", len(completion.choices), "| finish:", completion.choices[0].finish_reason)
print("usage:", completion.usage)
print(completion.choices[0].message.content[:60], "…")
image = reply.images[0]
print(image.shape, image.mime, image.to_pil().size)"""),
        code("""
# NBVAL_IGNORE_OUTPUT
image.to_pil().resize((128, 128))"""),
        md("""
Sampling fields of the page (temperature, top_p, n, stop, …) are checked before anything is sent;
Stable Diffusion extras (seed, negative prompt, steps, guidance, size) go as top-level fields only when asked,
since some relays refuse unknown fields. `sdkit serve` honours them:
"""),
        code("""
try:
    sdkit.ChatRequest.from_prompt("x", temperature=3)
except sdkit.ValidationError as exc:
    print(exc)
extras = sdkit.ChatRequest.from_prompt("a red circle", extras=sdkit.SDExtras(seed=7, num_inference_steps=10))
print(extras.to_json())"""),
        md("""
As a backend, the API is interchangeable with `LocalBackend`: the same `GenerationParams` in, the same
`GenerationResult` out, so sweeps, grids and studies never ask which one they hold. Requests run concurrently.
With the seed sent, the served image equals the local one:
"""),
        code("""
import numpy as np

remote = sdkit.RemoteBackend("chat", sd_extras=True)  # base URL and key from the environment
params = sdkit.GenerationParams("a red circle on a blue background", seed=7, num_inference_steps=10)
served = remote.generate(params)
local = sdkit.LocalBackend(progress=False).generate(params)
print(served.seeds, served.backend, "| same pixels (±1):",
      int(np.abs(np.asarray(served.images[0], int) - np.asarray(local.images[0], int)).max()) <= 1)"""),
        md("Errors are typed, carry the status and the server's message, and never the key:"),
        code("""
try:
    sdkit.Client(server.url, api_key="wrong-key-wrong-key").chat("a red circle")
except sdkit.AuthenticationError as err:
    print(type(err).__name__, err.status_code, "-", err.message)"""),
        code("""
server.stop()"""),
    ]


def sweeps():
    name = "05_parameter_sweeps.ipynb"
    return name, [
        md(f"""
# Sweeps and labelled grids

{colab_badge(name)}

Sweep generation parameters over X/Y/Z axes in A1111's syntax, see how many images that makes before
running, and look at the labelled grid. Uses the embedded `tiny` model: a few seconds on a CPU.
"""),
        code(SETUP),
        code("""
import sdkit

print(sdkit.parse_axis("guidance_scale=1,4,7.5").values)
print(sdkit.parse_axis("num_inference_steps=5-20 (+5)").values)
print(sdkit.parse_axis("num_inference_steps=1-10 [5]").values)  # int() of an even spread: truncated
print(sdkit.parse_axis('prompt_sr=circle,"square, tilted",star').values)  # one CSV row, quotes as in A1111"""),
        md("A sweep is a base `GenerationParams`, up to three axes and seeds per cell. It counts its images first:"),
        code("""
base = sdkit.GenerationParams("a red circle on a blue background", seed=1, model="tiny")
sweep = sdkit.Sweep(base, x="guidance_scale=1,7.5", y="num_inference_steps=2-6 (+4)", seeds=2)
sweep.count()"""),
        md("""
Running it writes each image as it is made (with its parameters inside) and a grid; cells that share
size, steps, guidance and scheduler are batched into one pipeline call. Each seed of a cell sits side by side:
"""),
        code("""
# NBVAL_IGNORE_OUTPUT
import tempfile

from IPython.display import Image

out = tempfile.mkdtemp()
backend = sdkit.LocalBackend(progress=False)
result = sweep.run(backend, out, progress=False)  # result.grids() gives the same pages as PIL images
Image(filename=result.grid_paths[0])"""),
        md("Running it again makes nothing: every image comes from the folder's cache."),
        code("""
again = sweep.run(backend, out, progress=False)
print(again.count("generated"), "generated,", again.count("cached"), "cached")
print([p.name for p in again.grid_paths])"""),
        md("""
Prompt S/R replaces its first value in the prompt and the negative prompt; a prompt matrix sweeps every
subset of `|`-separated parts. Here as a matplotlib figure:
"""),
        code("""
matrix = sdkit.prompt_axis("a red circle|glowing", "matrix")
print(matrix.values)
study = sdkit.Sweep(base.replace(num_inference_steps=4), x=matrix, y="prompt_sr=red,green")
study.count()"""),
        code("""
# NBVAL_IGNORE_OUTPUT
%matplotlib inline
sdkit.run_sweep(study, backend, progress=False).figure(tile_inches=1.2)"""),
        md("""
## The sweep panel

Pick the axes, type their values in A1111 syntax; the panel counts the images as you type (or says what is
wrong), runs with a progress bar, shows the grid, and a viewer where a click on a cell shows its image large
with its parameters. Its buttons call plain methods, scripted here as in the tests:
"""),
        code("""
from sdkit.notebook.widgets import SweepPanel

panel = SweepPanel(backend)
panel.axis_values["x"].value = "1,4,7.5"
panel.axis_values["y"].value = "2-6 (+2)"
panel"""),
        code("""
print(panel.count.value)
panel.axis_values["y"].value = "2-6 (2)"
print(panel.count.value)
panel.axis_values["y"].value = "2-6 (+2)"
result = panel.run()
print(panel.status.value.split(" · ")[0])
panel.viewer.select(4)
chosen = panel.viewer.result.cells[4].cell.params
print(chosen.guidance_scale, chosen.num_inference_steps)"""),
        md("""
The same from a terminal (the count goes to stderr first, the grid path to stdout last):

```bash
sdkit sweep "a red circle" --x "guidance_scale=1,4,7.5" --y "num_inference_steps=5-20 (+5)" --seeds 2 --out runs/sweep
```
"""),
    ]


def image_grids():
    name = "04_image_grids.ipynb"
    return name, [
        md(f"""
# Image grids

{colab_badge(name)}

Three ways to lay images out: `image_grid` for any list of images, `labelled_grid` for rows and columns with
labels like A1111's X/Y plot (long labels wrapped, failed cells drawn with their error), and the matplotlib
figure of a sweep for notebooks. `GridViewer` makes a sweep's grid clickable.
"""),
        code(SETUP),
        code("""
import sdkit

backend = sdkit.LocalBackend(progress=False)
result = backend.generate(sdkit.GenerationParams("a red circle on a blue background", seed=1, num_images=6))
grid = sdkit.image_grid(result.images, cols=4)  # six images, four columns: the last row is left short
print(grid.size)"""),
        code("""
# NBVAL_IGNORE_OUTPUT
grid"""),
        md("""
A labelled grid: tiles in rows and columns, X labels across the top, Y labels down the left. A tile may be
an image, an error message (drawn as a grey placeholder) or empty; small tiles are scaled up so labels
stay readable.
"""),
        code("""
images = result.images
labelled = sdkit.labelled_grid(
    [[images[0], images[1], "GenerationError: CUDA out of memory"], [images[3], None, images[5]]],
    x_labels=["Euler", "DPM++ 2M Karras", "a much longer label that has to be wrapped to fit"],
    y_labels=["seed 1", "seed 2"],
    title="labelled_grid",
)
print(labelled.size)"""),
        code("""
# NBVAL_IGNORE_OUTPUT
labelled"""),
        md("A grid too large to be useful is refused before it is drawn, with a message that says what to do:"),
        code("""
try:
    sdkit.labelled_grid([[images[0]] * 40] * 40, max_megapixels=1)
except sdkit.ValidationError as exc:
    print(exc)"""),
        md("A sweep's result draws its own grids, as PIL pages or a matplotlib figure:"),
        code("""
sweep = sdkit.Sweep(sdkit.GenerationParams("a red circle", seed=1, num_inference_steps=4),
                    x="scheduler=Euler,Euler a,DDIM", y="guidance_scale=1,7.5")
swept = sdkit.run_sweep(sweep, backend, progress=False)
print([page.size for page in swept.grids()])"""),
        code("""
# NBVAL_IGNORE_OUTPUT
%matplotlib inline
swept.figure(tile_inches=1.2)"""),
        md("`GridViewer`: click a cell to see its image large with its parameters (`select(i)` does the same):"),
        code("""
from sdkit.notebook.widgets import GridViewer

viewer = GridViewer(swept)
viewer.select(5)
print(swept.cells[5].cell.params.scheduler, swept.cells[5].cell.params.guidance_scale)
viewer"""),
    ]


def reproducible_study():
    name = "06_reproducible_study.ipynb"
    return name, [
        md(f"""
# A reproducible prompt study

{colab_badge(name)}

A study is a sweep someone else must be able to re-run and check: a YAML spec → a run folder (images, a
manifest line per image, grids, the resolved spec, the environment) → `verify`, which makes every image again
the way it was made and compares. Interrupted runs resume; tampered or missing files are named.
"""),
        code(SETUP),
        code("""
import tempfile
from pathlib import Path

import sdkit

spec = sdkit.parse_study_spec(\"\"\"
name: cfg-vs-steps
backend: local
model: tiny
params: {prompt: "a red circle on a blue background", width: 64, height: 64, scheduler: "Euler a"}
axes:
  x: "guidance_scale=1,4,7.5"
  y: "num_inference_steps=5-15 (+5)"
seeds: [1, 2]
threads: 2
\"\"\")
print(spec.name, sdkit.Sweep(spec.params, x=spec.axes["x"], y=spec.axes["y"], seeds=spec.seeds).count(), "images")"""),
        md("Bad keys and values are refused with their path, before anything runs:"),
        code("""
bad_specs = [
    {"name": "s", "params": {"prompt": "x", "cfg": 7}},
    {"name": "s", "params": {"prompt": "x"}, "seeds": [1, -2]},
]
for bad in bad_specs:
    try:
        sdkit.parse_study_spec(bad)
    except sdkit.ValidationError as exc:
        print(exc)"""),
        md("Run it. Stopping it half way (Ctrl-C, or here a callback that interrupts) leaves a valid folder:"),
        code("""
folder = Path(tempfile.mkdtemp()) / "cfg-vs-steps"
backend = sdkit.LocalBackend(progress=False)


def stop_after_five(done, total):
    if done == 5:
        raise KeyboardInterrupt


try:
    sdkit.run_study(spec, folder, backend=backend, progress=False, on_image=stop_after_five)
except KeyboardInterrupt:
    print("interrupted with", len(sdkit.studies.study.load_manifest(folder)), "images in the manifest")
run = sdkit.run_study(spec, folder, backend=backend, progress=False)
print(f"resumed: kept {run.kept}, made {run.made}, failed {run.failed} of {run.total}")
print(sorted(p.name for p in folder.iterdir()))"""),
        code("""
# NBVAL_IGNORE_OUTPUT
from IPython.display import Image

Image(filename=run.grid_paths[0])"""),
        md("Every manifest line says how its image was made:"),
        code("""
entry = sdkit.studies.study.load_manifest(folder)[0]
for key in ("cell", "labels", "seed", "batch", "scheduler_class", "generator", "dtype", "device", "torch_threads"):
    print(f"{key:16} {entry[key]}")
print("model_hash      ", entry["model_hash"][:16], "…")"""),
        md("`verify` makes every image again (same batches, same thread count) and compares the PNG bytes:"),
        code("""
check = sdkit.verify_study(folder, backend=backend, progress=False)
print(check.summary().split(" - ")[1])"""),
        md("Alter one image and it is named:"),
        code("""
victim = folder / "images" / "00007.png"
victim.write_bytes(victim.read_bytes()[:-20] + b"tampered-tampered!!!")
print(sdkit.verify_study(folder, backend=backend, progress=False).summary().replace(str(folder), "FOLDER"))"""),
        md("""
`report.html` is one self-contained page (grids, every image with its parameters, the environment) to open
from disk or send to someone. From a terminal:

```bash
sdkit study run examples/cfg-vs-steps.yaml --out runs/cfg-vs-steps
sdkit study verify runs/cfg-vs-steps
sdkit study report runs/cfg-vs-steps
```
"""),
        code("""
report = sdkit.write_report(folder)
print(report.name, report.stat().st_size > 10_000)"""),
    ]


def local_pipeline():
    name = "02_local_pipeline.ipynb"
    return name, [
        md(f"""
# The local pipeline: seeds, schedulers, batching, memory

{colab_badge(name)}

`sdkit.LocalBackend` runs diffusers on this machine. It picks the device and dtype (CUDA fp16, then MPS,
else CPU fp32), loads a pipeline once and reuses it, and draws each image's noise from its own CPU
generator, so a seed means the same picture everywhere.
"""),
        code(SETUP),
        code("""
from IPython.display import HTML

import sdkit
from sdkit.notebook.display import images_html

backend = sdkit.LocalBackend(progress=False)
print(backend)


def same(a, b):
    return a.tobytes() == b.tobytes()"""),
        md("""
## Seeds

Image *i* of a request uses seed `seed + i`. A seed left out is drawn at random and recorded in the
result, so nothing is lost.
"""),
        code("""
params = sdkit.GenerationParams("a red circle on a blue background", seed=100, num_images=4)
result = backend.generate(params)
again = backend.generate(params)
for item, other in zip(result, again):
    print(item.seed, "made twice, identical:", same(item.image, other.image))
print("a drawn seed is kept:", sdkit.GenerationParams("a cat").seed is not None)"""),
        code("""
# NBVAL_IGNORE_OUTPUT
result"""),
        md("""
## Schedulers

By A1111 sampler name (`"Euler a"`, `"DPM++ 2M Karras"`, …) or diffusers class name; left out, the
model's own scheduler. Same seed, same model, five schedulers:
"""),
        code("""
names = ["Euler", "Euler a", "DDIM", "DPM++ 2M Karras", "UniPC"]
row = []
for name in names:
    r = backend.generate(params.replace(num_images=1, scheduler=name))
    print(f"{name:16} {r.details['scheduler_class']}")
    row.append((r.images[0], name))
print("five different images:", len({image.tobytes() for image, _ in row}) == len(names))"""),
        code("""
# NBVAL_IGNORE_OUTPUT
HTML(images_html(row))"""),
        md("""
## Batching

`generate_many` runs requests that share model, size, steps, guidance and scheduler in one pipeline call,
still with one generator per image. Batched and single calls agree to within one level per pixel.
"""),
        code("""
prompts = ["a red circle", "a blue square", "a green triangle", "a yellow star"]
batch = backend.generate_many([sdkit.GenerationParams(p, seed=5) for p in prompts])
print("images in the one pipeline call:", [r.details["batch_size"] for r in batch])
alone = backend.generate(sdkit.GenerationParams(prompts[2], seed=5))
a, b = alone.images[0].tobytes(), batch[2].images[0].tobytes()
print("batched equals alone within one level:", max(abs(x - y) for x, y in zip(a, b)) <= 1)"""),
        md("""
## Memory presets

For small GPUs such as a Colab T4: `t4` turns on VAE slicing and tiling; `low` adds model CPU offload and
attention slicing; `minimal` uses sequential offload (slow). Offload needs CUDA and is refused elsewhere,
with a message that says why:
"""),
        code("""
for name, options in sdkit.MEMORY_PRESETS.items():
    print(f"{name:8} {', '.join(options) or '-'}")
try:
    sdkit.LocalBackend(memory="low", device="cpu")
except sdkit.ValidationError as exc:
    print("refused:", exc)"""),
        md("""
## Other models

Any diffusers text-to-image model id or local folder works the same way, SD 1.x/2.x or SDXL; the
embedded `tiny-sdxl` exercises the SDXL path (two text encoders) offline:
"""),
        code("""
xl = backend.generate(sdkit.GenerationParams("a red circle", seed=1, model="tiny-sdxl", num_inference_steps=10))
print(xl.details["pipeline_class"], xl.images[0].size)"""),
        md("""
On a GPU, with a real model (downloaded once from the Hugging Face hub):

```python
backend = sdkit.LocalBackend(memory="t4")   # cuda + float16
backend.generate(sdkit.GenerationParams("a lighthouse at dusk", model="stabilityai/stable-diffusion-xl-base-1.0",
                                        width=1024, height=1024, scheduler="DPM++ 2M Karras", seed=1))
```
"""),
    ]


def prompt_lab():
    name = "03_prompt_lab.ipynb"
    return name, [
        md(f"""
# Prompt lab

{colab_badge(name)}

An interactive panel for prompt experiments: type a prompt, pick a seed (locked, or drawn anew on each
click), steps, guidance, size, scheduler, backend and model, then **Generate**. Every image goes into the
history strip; clicking an entry puts its settings back. The *Code* box always holds the Python call that
makes the image shown, ready to paste.
"""),
        code(SETUP),
        code("""
import sdkit
from sdkit.notebook.widgets import PromptLab

backend = sdkit.LocalBackend(progress=False)
lab = PromptLab(backend, models=["tiny", "tiny-sdxl"])
lab"""),
        md("""
The panel's buttons call plain methods, so the same steps can be scripted, here and in tests:
`lab.generate()` does what the button does, `lab.restore(i)` what a history entry does.
"""),
        code("""
lab.prompt.value = "a red circle on a blue background"
lab.seed.value, lab.steps.value = 7, 20
result = lab.generate()
print(lab.status.value.split(" · ")[0])
print("the same settings again, byte-identical:", lab.generate().images[0].tobytes() == result.images[0].tobytes())
print(lab.code.value)"""),
    ]


NOTEBOOKS = [quickstart, api, local_pipeline, prompt_lab, image_grids, sweeps, reproducible_study]


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
