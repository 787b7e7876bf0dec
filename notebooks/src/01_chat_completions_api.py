# %% [markdown]
# # The chat-completions API: build, export, send, parse
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/01_chat_completions_api.ipynb)
#
# The relay page (`shared/spec`) serves Stable Diffusion through an OpenAI-style `POST /v1/chat/completions`:
# model `stable-diffusion-api`, the prompt as the user message, a `chat.completion` reply whose message holds the
# image. Here the API is served by `sdkit serve` itself, from the embedded model, in the background on 127.0.0.1,
# so the notebook runs offline. For a real relay, set `SDKIT_BASE_URL` and `SDKIT_API_KEY` in the environment
# (in Colab: the 🔑 secrets panel) and skip the server cell: the key never goes into a cell.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
import os
import secrets

import sdkit

# A local server needs a key of its own: made here, kept in the environment, never shown.
os.environ.setdefault("SDKIT_API_KEY", secrets.token_urlsafe(24))
server = sdkit.serve_in_background(model="tiny", api_keys=[os.environ["SDKIT_API_KEY"]])
os.environ["SDKIT_BASE_URL"] = server.url
client = sdkit.Client()  # base URL and key from the environment (or Colab secrets)
print("listening on loopback:", server.url.startswith("http://127.0.0.1:"), "| key loaded:", client.has_key)

# %% [markdown]
# A request is a frozen, validated value; its body is exactly what the page shows:

# %%
request = sdkit.ChatRequest.from_prompt("a red circle on a blue background")
print(request.to_json())

# %% [markdown]
# Export it as a ready-to-run snippet, like the page's example code (the key stays `$SDKIT_API_KEY`):

# %%
print(sdkit.export_request(request, "curl").replace(server.url, "http://127.0.0.1:PORT"))

# %% [markdown]
# Send it and parse the reply: the typed `chat.completion`, and the image found in the message (here a markdown
# data URI; the client knows every shape relays use, fetches URLs at once and checks the bytes are an image):

# %%
reply = client.chat(request)
completion = reply.reply
print(completion.object, "| choices:", len(completion.choices), "| finish:", completion.choices[0].finish_reason)
print("usage:", completion.usage)
print(completion.choices[0].message.content[:60], "…")
image = reply.images[0]
print(image.shape, image.mime, image.to_pil().size)

# %%
# NBVAL_IGNORE_OUTPUT
image.to_pil().resize((128, 128))

# %% [markdown]
# Sampling fields of the page (temperature, top_p, n, stop, …) are checked before anything is sent;
# Stable Diffusion extras (seed, negative prompt, steps, guidance, size) go as top-level fields only when asked,
# since some relays refuse unknown fields. `sdkit serve` honours them:

# %%
try:
    sdkit.ChatRequest.from_prompt("x", temperature=3)
except sdkit.ValidationError as exc:
    print(exc)
extras = sdkit.ChatRequest.from_prompt("a red circle", extras=sdkit.SDExtras(seed=7, num_inference_steps=10))
print(extras.to_json())

# %% [markdown]
# As a backend, the API is interchangeable with `LocalBackend`: the same `GenerationParams` in, the same
# `GenerationResult` out, so sweeps, grids and studies never ask which one they hold. Requests run concurrently.
# With the seed sent, the served image equals the local one:

# %%
import numpy as np

remote = sdkit.RemoteBackend("chat", sd_extras=True)  # base URL and key from the environment
params = sdkit.GenerationParams("a red circle on a blue background", seed=7, num_inference_steps=10)
served = remote.generate(params)
local = sdkit.LocalBackend(progress=False).generate(params)
print(
    served.seeds,
    served.backend,
    "| same pixels (±1):",
    int(np.abs(np.asarray(served.images[0], int) - np.asarray(local.images[0], int)).max()) <= 1,
)

# %% [markdown]
# Errors are typed, carry the status and the server's message, and never the key:

# %%
try:
    sdkit.Client(server.url, api_key="wrong-key-wrong-key").chat("a red circle")
except sdkit.AuthenticationError as err:
    print(type(err).__name__, err.status_code, "-", err.message)

# %%
server.stop()
