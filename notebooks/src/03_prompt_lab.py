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

# %% [markdown]
# ## A1111's prompt language
#
# Prompts from A1111, Civitai or ComfyUI mean here what they mean there: `(word)` weighs a word ×1.1 and
# `[word]` ÷1.1, `(word:1.5)` sets the weight; `BREAK` starts a new 75-token chunk; prompts longer than 75 tokens
# are encoded in chunks (nothing is cut); `[from:to:when]` switches words part-way through the steps and
# `[a|b]` alternates them every step; `clip_skip=2` reads the text encoder one layer before its last;
# `<lora:NAME:W>` tags are taken out of the text. The counter under the prompt in the panel above counts
# tokens as A1111's does:

# %%
for text in [
    "a red circle on a blue background",
    "a (red:1.5) circle on a [blue] background <lora:x:1>",
    "a red circle BREAK on a blue background",
    "red " * 80,
]:
    count = sdkit.count_tokens(text)
    print(f"{count!s:>7}  {count.label:<8}  {text[:60]}")

# %% [markdown]
# The tiny model knows three shapes, a few colours and backgrounds, so it shows these effects in colour and
# shape, and nothing of style or detail (it has no words for them). Seed 7, below: a weight of 1.0 gives exactly
# the plain prompt's pixels; 1.6 deepens the red only a little (its colours are already saturated); the edit
# `[red:green:0.5]` keeps the circle laid down in the first half of the steps and paints it green; alternation
# mixes both colours in one shape; BREAK puts the background words in a chunk of their own and the circle loses
# its form; CLIP skip 2 (this model's text encoder has two layers) changes the outline a little.

# %%
from IPython.display import HTML

from sdkit.notebook.display import images_html

variants = [
    ("plain", "a red circle on a blue background", {}),
    ("(red:1.0)", "a (red:1.0) circle on a blue background", {}),
    ("(red:1.6)", "a (red:1.6) circle on a blue background", {}),
    ("[red:green:0.5]", "a [red:green:0.5] circle on a blue background", {}),
    ("[red|green]", "a [red|green] circle on a blue background", {}),
    ("BREAK", "a red circle BREAK on a blue background", {}),
    ("clip_skip=2", "a red circle on a blue background", {"clip_skip": 2}),
]
made = {
    label: backend.generate(sdkit.GenerationParams(text, seed=7, **extra)).images[0] for label, text, extra in variants
}
plain = made["plain"].tobytes()
for label, image in made.items():
    print(f"{label:<16} {'the plain image' if image.tobytes() == plain else 'changed'}")

# %%
# NBVAL_IGNORE_OUTPUT
HTML(images_html([(image, label) for label, image in made.items()], max_side=128))
