# %% [markdown]
# # One prompt study, several image services
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/07_compare_providers.ipynb)
#
# The relay index sdkit is built from lists, beside Stable Diffusion through chat completions, image APIs in
# their providers' own formats. Two of them are sdkit backends: `stability` (Stability AI's Stable Image API)
# and `bfl` (Black Forest Labs' Flux). Here the same small study runs on the local `tiny` model and on
# loopback fakes of both services, side by side; a chat model first turns a short idea into detailed prompts.
# Everything below runs offline; the last cell says how to point it at the real services.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
import os
import tempfile
from pathlib import Path

import sdkit

KEY = "sk-notebook-demo-key-0123456789"  # the fakes require it; it must show up in no output
stability = sdkit.FakeStability(api_key=KEY).start()
flux = sdkit.FakeBFL(api_key=KEY, pending_polls=1).start()
relay = sdkit.FakeRelay(api_key=KEY).start()  # its "fake-text" model answers chat requests with text
print(sdkit.backend_kinds())

# %% [markdown]
# ## Prompt ideas through Chat
# `expand_prompt` asks a text model (`POST /v1/chat/completions`) for detailed prompts; the system prompt is
# yours to edit (`sdkit.backends.relay.expand.DEFAULT_SYSTEM_PROMPT` is the default). From a terminal:
# `sdkit expand "a lighthouse" -n 2 --model gpt-4o-mini`.

# %%
ideas = sdkit.expand_prompt("a lighthouse", model="fake-text", n=2, base_url=relay.url, api_key=KEY)
for prompt in ideas.prompts:
    print("-", prompt)

# %% [markdown]
# ## The backends, one call each
# Each is built through the registry like `local`; the seed the service reports is the one recorded. Stability
# chooses the pixel size from an aspect ratio; Flux is asked, polled until `Ready`, and its signed image URL
# fetched at once.

# %%
params = sdkit.GenerationParams(ideas.prompts[0], seed=7, width=64, height=64)
backends = {
    "local": sdkit.create_backend("local", threads=1, progress=False),
    "stability": sdkit.create_backend("stability", base_url=stability.url, api_key=KEY, model="sd3.5-medium"),
    "flux": sdkit.create_backend("bfl", base_url=flux.url, api_key=KEY, poll_interval=0.02),
}
for name, backend in backends.items():
    result = backend.generate(params)
    print(f"{name:9} model={result.model:13} seed={result.seeds[0]} size={result.images[0].size}")

# %% [markdown]
# Refusals are typed errors: a filtered image is a `ModerationError`, a failed Flux task a `TaskFailedError`,
# an HTTP error its `APIStatusError` subclass; the key is scrubbed from all of them.

# %%
strict = sdkit.FakeStability(api_key=KEY, filter=["forbidden"]).start()
try:
    sdkit.create_backend("stability", base_url=strict.url, api_key=KEY).generate(
        sdkit.GenerationParams("something forbidden", seed=1)
    )
except sdkit.ModerationError as exc:
    print(type(exc).__name__, "-", exc)
try:
    sdkit.create_backend("stability", base_url=strict.url, api_key="sk-wrong-key-000000", max_retries=0).generate(
        sdkit.GenerationParams("a lighthouse", seed=1)
    )
except sdkit.AuthenticationError as exc:
    print(type(exc).__name__, "-", exc)
strict.stop()

# %% [markdown]
# ## The same study on each backend
# `run_comparison` runs one spec per provider into its own study folder (each resumes and verifies as any
# study does) and draws the images side by side. The spec's `prompt_expand=2` axis asks the chat model for
# two versions of the base prompt; they are kept in each folder with the model and its replies.

# %%
spec = {
    "name": "lighthouse",
    "model": "tiny",
    "params": {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 4},
    "axes": {"x": "prompt_expand=2"},
    "expand": {"model": "fake-text", "base_url": relay.url},
    "seeds": [1, 2],
}
providers = {
    "local": {"backend": "local", "threads": 1},
    "stability": {"backend": "stability", "base_url": stability.url, "model": "sd3.5-medium"},
    "flux": {"backend": "bfl", "base_url": flux.url, "backend_options": {"poll_interval": 0.02}},
}
os.environ["SDKIT_API_KEY"] = KEY  # the chat model, Stability and Flux all read it here
folder = Path(tempfile.mkdtemp()) / "compare"
comparison = sdkit.run_comparison(spec, providers, folder, backends={"local": backends["local"]})
for label, run in comparison.runs.items():
    print(f"{label:9} made {run.made}, kept {run.kept}, failed {run.failed} of {run.total}")

# %%
# NBVAL_IGNORE_OUTPUT
from IPython.display import Image

Image(filename=comparison.grid_path)

# %% [markdown]
# Running again makes nothing; with the services gone, `verify_comparison` checks every folder offline: the
# local images are made again and compared, the services' images against their archived replies.

# %%
again = sdkit.run_comparison(spec, providers, folder, backends={"local": backends["local"]})
print({label: (run.made, run.kept) for label, run in again.runs.items()})
for fake in (stability, flux, relay):
    fake.stop()
checks = sdkit.verify_comparison(folder)
for label in providers:
    print(f"{label:9}", checks[label].summary().split(" - ")[1])
print("grid     ", "matches its images" if checks["grid"] else "differs")
leaks = [p for p in folder.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
print("files holding the key:", len(leaks))

# %% [markdown]
# ## On the real services
# Set the keys (never in a notebook cell: `STABILITY_API_KEY`, `BFL_API_KEY`, or `SDKIT_API_KEY` for a relay
# serving all of them) and give the public base URLs (or a relay's prefixes, e.g. `https://relay.example/sd`):
#
# ```python
# providers = {
#     "local": {"backend": "local"},
#     "stability": {"backend": "stability", "base_url": "https://api.stability.ai", "model": "sd3.5-large"},
#     "flux": {"backend": "bfl", "base_url": "https://api.bfl.ai", "model": "flux-pro-1.1"},
# }
# spec["expand"] = {"model": "gpt-4o-mini", "base_url": "https://relay.example"}
# sdkit.run_comparison(spec, providers, "runs/lighthouse")
# ```
#
# From a terminal the same backends take `--backend stability|bfl` in `generate`, `sweep` and `study`, and
# PromptLab offers them in its backend picker: `sdkit.PromptLab({"local": "local", "stability": backend})`.

# %%
lab = sdkit.PromptLab(backends, models=("tiny", "sd3.5-medium", "flux-dev"))
print(lab.backend.options)
