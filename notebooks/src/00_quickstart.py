# %% [markdown]
# # sdkit quickstart
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/00_quickstart.ipynb)
#
# Generate images with the embedded `tiny` model, look at them, and read their parameters back from the PNG
# files. Runs on a CPU in seconds. `tiny` is a 64×64 Stable Diffusion model trained by sdkit itself on pictures of
# coloured shapes and shipped with it (no download): it draws circles, squares and triangles in eight colours on
# coloured backgrounds, as asked.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
import sdkit

backend = sdkit.LocalBackend(progress=False)  # cuda/fp16 when there is a GPU, else cpu/fp32
params = sdkit.GenerationParams("a red circle on a blue background", seed=1, num_inference_steps=20, num_images=4)
params

# %% [markdown]
# One call, four images. Image *i* uses seed `seed + i`, each drawn from its own CPU generator, so a seed
# means the same picture on any machine. The result shows itself as a row of images:

# %%
# NBVAL_IGNORE_OUTPUT
result = backend.generate(params)
result

# %% [markdown]
# The result keeps everything needed to make each image again:

# %%
print("seeds:    ", result.seeds)
print("size:     ", result.params.width, "x", result.params.height)
print("scheduler:", result.details["scheduler"], f"({result.details['scheduler_class']})")
d = result.details
print("device:   ", d["device"], d["dtype"], "- noise from a", d["generator"], "generator")

# %% [markdown]
# Same seed, same pixels: the same request made again here gives the same bytes. The floats (and so, now and
# then, a pixel by one level) depend on the CPU's vector units and the thread count, which every result records;
# `LocalBackend(portable=True)` pins them so that any x86-64 CPU with AVX2 gives identical pixels (see the README).

# %%
again = backend.generate(params)  # the same request, a second time
same = [a.tobytes() == b.tobytes() for a, b in zip(result.images, again.images, strict=True)]
print("the same request again, byte-identical:", same)
alone = backend.generate(params.for_image(2))  # image 2 alone: seed 3
print(
    "image 2 made alone equals the batch's within one level:",
    max(abs(a - b) for a, b in zip(alone.images[0].tobytes(), result.images[2].tobytes(), strict=True)) <= 1,
)
print("threads:", d["torch_threads"], "· portable:", d["portable"])

# %%
# NBVAL_IGNORE_OUTPUT
print("CPU kernels:", d["cpu_capability"])  # AVX512, AVX2, … : this machine's

# %% [markdown]
# Save them as PNGs that carry their parameters (A1111's `parameters` text and sdkit's JSON record):

# %%
import tempfile

folder = tempfile.mkdtemp()
paths = sdkit.save_result(result, folder)
meta = sdkit.read_png_metadata(paths[0])
print(meta["text"]["parameters"])
print(meta["parameters"]["Seed"], meta["sdkit"]["params"]["num_inference_steps"])

# %% [markdown]
# The same from a terminal:
#
# ```bash
# sdkit generate "a red circle on a blue background" --seed 1 --n 4 --out outputs
# sdkit info outputs/00000-1.png
# ```
