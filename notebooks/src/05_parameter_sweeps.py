# %% [markdown]
# # Sweeps and labelled grids
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/05_parameter_sweeps.ipynb)
#
# Sweep generation parameters over X/Y/Z axes in A1111's syntax, see how many images that makes before
# running, and look at the labelled grid. Uses the embedded `tiny` model: a few seconds on a CPU.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
import numpy as np

import sdkit

print(sdkit.parse_axis("guidance_scale=1,4,7.5").values)
print(sdkit.parse_axis("num_inference_steps=5-20 (+5)").values)
print(sdkit.parse_axis("num_inference_steps=1-10 [5]").values)  # int() of an even spread: truncated
print(sdkit.parse_axis('prompt_sr=circle,"square, tilted",star').values)  # one CSV row, quotes as in A1111

# %% [markdown]
# A sweep is a base `GenerationParams`, up to three axes and seeds per cell. It counts its images first:

# %%
base = sdkit.GenerationParams("a red circle on a blue background", seed=1, model="tiny")
sweep = sdkit.Sweep(base, x="guidance_scale=1,7.5", y="num_inference_steps=2-6 (+4)", seeds=2)
sweep.count()

# %% [markdown]
# Running it writes each image as it is made (with its parameters inside) and a grid; cells that share
# size, steps, guidance and scheduler are batched into one pipeline call. Each seed of a cell sits side by side:

# %%
# NBVAL_IGNORE_OUTPUT
import tempfile

from IPython.display import Image

out = tempfile.mkdtemp()
backend = sdkit.LocalBackend(progress=False)
result = sweep.run(backend, out, progress=False)  # result.grids() gives the same pages as PIL images
Image(filename=result.grid_paths[0])

# %% [markdown]
# Running it again makes nothing: every image comes from the folder's cache.

# %%
again = sweep.run(backend, out, progress=False)
print(again.count("generated"), "generated,", again.count("cached"), "cached")
print([p.name for p in again.grid_paths])

# %% [markdown]
# Prompt S/R replaces its first value in the prompt and the negative prompt; a prompt matrix sweeps every
# subset of `|`-separated parts. Here as a matplotlib figure:

# %%
matrix = sdkit.prompt_axis("a red circle|glowing", "matrix")
print(matrix.values)
study = sdkit.Sweep(base.replace(num_inference_steps=4), x=matrix, y="prompt_sr=red,green")
study.count()

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
sdkit.run_sweep(study, backend, progress=False).figure(tile_inches=1.2)

# %% [markdown]
# ## LoRA weight × seed
#
# `tiny` ships a LoRA, `hexagon` (`sdkit/models/shapes/loras/`, trained by `training/lora.py`), that teaches it a
# shape it never saw. Apply it with A1111's tag `<lora:hexagon:W>` in the prompt or with
# `loras=[("hexagon", W)]`; the `lora_weight` axis sweeps its weight (Prompt S/R on the tag works too, as in
# A1111: `prompt_sr=<lora:hexagon:0>,<lora:hexagon:1>`). Other LoRA folders: `LocalBackend(lora_dirs=[…])`,
# `--lora-dir` or `$SDKIT_LORA_DIR`. Weight 0 gives exactly the model's own pixels:

# %%
hexagon = base.replace(prompt="a red hexagon on a blue background", loras=[("hexagon", 1.0)])
lora_sweep = sdkit.Sweep(hexagon, x="lora_weight=0,0.5,1", y="seed=1-4")
lora_result = sdkit.run_sweep(lora_sweep, backend, progress=False)
# the four weight-0 cells ran as one call of 4 seeds; the same call without the LoRA gives the same pixels
plain = backend.generate(hexagon.replace(loras=(), seed=1, num_images=4))
zero = [c.image for c in lora_result.cells if c.cell.params.loras == (("hexagon", 0.0),)]
print(all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(zero, plain.images, strict=True)))
print(lora_result.cells[2].record["lora_hashes"])

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
lora_result.figure(tile_inches=1.2)

# %% [markdown]
# ## The sweep panel
#
# Pick the axes, type their values in A1111 syntax; the panel counts the images as you type (or says what is
# wrong), runs with a progress bar, shows the grid, and a viewer where a click on a cell shows its image large
# with its parameters. Its buttons call plain methods, scripted here as in the tests:

# %%
from sdkit import SweepPanel

panel = SweepPanel(backend)
panel.axis_values["x"].value = "1,4,7.5"
panel.axis_values["y"].value = "2-6 (+2)"
panel

# %%
print(panel.count.value)
panel.axis_values["y"].value = "2-6 (2)"
print(panel.count.value)
panel.axis_values["y"].value = "2-6 (+2)"
result = panel.run()
print(panel.status.value.split(" · ")[0])
panel.viewer.select(4)
chosen = panel.viewer.result.cells[4].cell.params
print(chosen.guidance_scale, chosen.num_inference_steps)

# %% [markdown]
# The same from a terminal (the count goes to stderr first, the grid path to stdout last):
#
# ```bash
# sdkit sweep "a red circle" --x "guidance_scale=1,4,7.5" --y "num_inference_steps=5-20 (+5)" --seeds 2 --out runs/sweep
# ```
