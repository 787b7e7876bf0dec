# %% [markdown]
# # Prompt lab
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/03_prompt_lab.ipynb)
#
# An interactive panel for prompt experiments: type a prompt, pick a seed (locked, or drawn anew on each
# click), steps, guidance, size, scheduler, backend and model, then **Generate**. Every image goes into the
# history strip; clicking an entry puts its settings back. The *Code* box always holds the Python call that
# makes the image shown, ready to paste.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
import sdkit
from sdkit import PromptLab

backend = sdkit.LocalBackend(progress=False)
lab = PromptLab(backend, models=["tiny", "tiny-sdxl"])
lab

# %% [markdown]
# The panel's buttons call plain methods, so the same steps can be scripted, here and in tests:
# `lab.generate()` does what the button does, `lab.restore(i)` what a history entry does.

# %%
lab.prompt.value = "a red circle on a blue background"
lab.seed.value, lab.steps.value = 7, 20
result = lab.generate()
print(lab.status.value.split(" · ")[0])
print("the same settings again, byte-identical:", lab.generate().images[0].tobytes() == result.images[0].tobytes())
print(lab.code.value)
