# %% [markdown]
# # The local pipeline: seeds, schedulers, batching, memory
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/02_local_pipeline.ipynb)
#
# `sdkit.LocalBackend` runs diffusers on this machine. It picks the device and dtype (CUDA fp16, then MPS,
# else CPU fp32), loads a pipeline once and reuses it, and draws each image's noise from its own CPU
# generator, so a seed means the same picture everywhere.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
from IPython.display import HTML

import sdkit
from sdkit.notebook.display import images_html

backend = sdkit.LocalBackend(progress=False)
print(backend)


def same(a, b):
    return a.tobytes() == b.tobytes()


# %% [markdown]
# ## Seeds
#
# Image *i* of a request uses seed `seed + i`. A seed left out is drawn at random and recorded in the
# result, so nothing is lost.

# %%
params = sdkit.GenerationParams("a red circle on a blue background", seed=100, num_images=4)
result = backend.generate(params)
again = backend.generate(params)
for item, other in zip(result, again, strict=True):
    print(item.seed, "made twice, identical:", same(item.image, other.image))
print("a drawn seed is kept:", sdkit.GenerationParams("a cat").seed is not None)

# %%
# NBVAL_IGNORE_OUTPUT
result

# %% [markdown]
# ## Schedulers
#
# By A1111 sampler name (`"Euler a"`, `"DPM++ 2M Karras"`, …) or diffusers class name; left out, the
# model's own scheduler. Same seed, same model, five schedulers:

# %%
names = ["Euler", "Euler a", "DDIM", "DPM++ 2M Karras", "UniPC"]
row = []
for name in names:
    r = backend.generate(params.replace(num_images=1, scheduler=name))
    print(f"{name:16} {r.details['scheduler_class']}")
    row.append((r.images[0], name))
print("five different images:", len({image.tobytes() for image, _ in row}) == len(names))

# %%
# NBVAL_IGNORE_OUTPUT
HTML(images_html(row))

# %% [markdown]
# ## Batching
#
# `generate_many` runs requests that share model, size, steps, guidance and scheduler in one pipeline call,
# still with one generator per image. Batched and single calls agree to within one level per pixel.

# %%
prompts = ["a red circle", "a blue square", "a green triangle", "a yellow star"]
batch = backend.generate_many([sdkit.GenerationParams(p, seed=5) for p in prompts])
print("images in the one pipeline call:", [r.details["batch_size"] for r in batch])
alone = backend.generate(sdkit.GenerationParams(prompts[2], seed=5))
a, b = alone.images[0].tobytes(), batch[2].images[0].tobytes()
print("batched equals alone within one level:", max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1)

# %% [markdown]
# ## Memory presets
#
# For small GPUs such as a Colab T4: `t4` turns on VAE slicing and tiling; `low` adds model CPU offload and
# attention slicing; `minimal` uses sequential offload (slow). Offload needs CUDA and is refused elsewhere,
# with a message that says why:

# %%
for name, options in sdkit.MEMORY_PRESETS.items():
    print(f"{name:8} {', '.join(options) or '-'}")
try:
    sdkit.LocalBackend(memory="low", device="cpu")
except sdkit.ValidationError as exc:
    print("refused:", exc)

# %% [markdown]
# ## Other models
#
# Any diffusers text-to-image model id or local folder works the same way, SD 1.x/2.x or SDXL; the
# embedded `tiny-sdxl` exercises the SDXL path (two text encoders) offline:

# %%
xl = backend.generate(sdkit.GenerationParams("a red circle", seed=1, model="tiny-sdxl", num_inference_steps=10))
print(xl.details["pipeline_class"], xl.images[0].size)

# %% [markdown]
# On a GPU, with a real model (downloaded once from the Hugging Face hub):
#
# ```python
# backend = sdkit.LocalBackend(memory="t4")   # cuda + float16
# backend.generate(sdkit.GenerationParams("a lighthouse at dusk", model="stabilityai/stable-diffusion-xl-base-1.0",
#                                         width=1024, height=1024, scheduler="DPM++ 2M Karras", seed=1))
# ```
