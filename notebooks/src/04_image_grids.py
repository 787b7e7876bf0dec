# %% [markdown]
# # Image grids
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/04_image_grids.ipynb)
#
# Three ways to lay images out: `image_grid` for any list of images, `labelled_grid` for rows and columns with
# labels like A1111's X/Y plot (long labels wrapped, failed cells drawn with their error), and the matplotlib
# figure of a sweep for notebooks. `GridViewer` makes a sweep's grid clickable.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
import sdkit

backend = sdkit.LocalBackend(progress=False)
result = backend.generate(sdkit.GenerationParams("a red circle on a blue background", seed=1, num_images=6))
grid = sdkit.image_grid(result.images, cols=4)  # six images, four columns: the last row is left short
print(grid.size)

# %%
# NBVAL_IGNORE_OUTPUT
grid

# %% [markdown]
# A labelled grid: tiles in rows and columns, X labels across the top, Y labels down the left. A tile may be
# an image, an error message (drawn as a grey placeholder) or empty; small tiles are scaled up so labels
# stay readable.

# %%
images = result.images
labelled = sdkit.labelled_grid(
    [[images[0], images[1], "GenerationError: CUDA out of memory"], [images[3], None, images[5]]],
    x_labels=["Euler", "DPM++ 2M Karras", "a much longer label that has to be wrapped to fit"],
    y_labels=["seed 1", "seed 2"],
    title="labelled_grid",
)
print(labelled.size)

# %%
# NBVAL_IGNORE_OUTPUT
labelled

# %% [markdown]
# A grid too large to be useful is refused before it is drawn, with a message that says what to do:

# %%
try:
    sdkit.labelled_grid([[images[0]] * 40] * 40, max_megapixels=1)
except sdkit.ValidationError as exc:
    print(exc)

# %% [markdown]
# A sweep's result draws its own grids, as PIL pages or a matplotlib figure:

# %%
sweep = sdkit.Sweep(
    sdkit.GenerationParams("a red circle", seed=1, num_inference_steps=4),
    x="scheduler=Euler,Euler a,DDIM",
    y="guidance_scale=1,7.5",
)
swept = sdkit.run_sweep(sweep, backend, progress=False)
print([page.size for page in swept.grids()])

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
swept.figure(tile_inches=1.2)

# %% [markdown]
# `GridViewer`: click a cell to see its image large with its parameters (`select(i)` does the same):

# %%
from sdkit import GridViewer

viewer = GridViewer(swept)
viewer.select(5)
print(swept.cells[5].cell.params.scheduler, swept.cells[5].cell.params.guidance_scale)
viewer
