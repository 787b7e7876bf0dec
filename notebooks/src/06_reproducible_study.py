# %% [markdown]
# # A reproducible prompt study
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sdkit-lab/sdkit/blob/main/notebooks/06_reproducible_study.ipynb)
#
# A study is a sweep someone else must be able to re-run and check: a YAML spec → a run folder (images, a
# manifest line per image, grids, the resolved spec, the environment) → `verify`, which makes every image again
# the way it was made and compares. Interrupted runs resume; tampered or missing files are named.

# %%
# Setup: in Colab this installs sdkit; anywhere else it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    package = "sdkit-lab[local,notebooks] @ git+https://github.com/sdkit-lab/sdkit"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)

# %%
import tempfile
from pathlib import Path

import sdkit

spec = sdkit.parse_study_spec("""
name: cfg-vs-steps
backend: local
model: tiny
params: {prompt: "a red circle on a blue background", width: 64, height: 64, scheduler: "Euler a"}
axes:
  x: "guidance_scale=1,4,7.5"
  y: "num_inference_steps=5-15 (+5)"
seeds: [1, 2]
threads: 2
""")
print(spec.name, sdkit.Sweep(spec.params, x=spec.axes["x"], y=spec.axes["y"], seeds=spec.seeds).count(), "images")

# %% [markdown]
# Bad keys and values are refused with their path, before anything runs:

# %%
bad_specs = [
    {"name": "s", "params": {"prompt": "x", "cfg": 7}},
    {"name": "s", "params": {"prompt": "x"}, "seeds": [1, -2]},
]
for bad in bad_specs:
    try:
        sdkit.parse_study_spec(bad)
    except sdkit.ValidationError as exc:
        print(exc)

# %% [markdown]
# Run it. Stopping it half way (Ctrl-C, or here a callback that interrupts) leaves a valid folder:

# %%
folder = Path(tempfile.mkdtemp()) / "cfg-vs-steps"
backend = sdkit.LocalBackend(progress=False)


def stop_after_five(done, total):
    if done == 5:
        raise KeyboardInterrupt


try:
    sdkit.run_study(spec, folder, backend=backend, progress=False, on_image=stop_after_five)
except KeyboardInterrupt:
    print("interrupted with", len(sdkit.load_manifest(folder)), "images in the manifest")
run = sdkit.run_study(spec, folder, backend=backend, progress=False)
print(f"resumed: kept {run.kept}, made {run.made}, failed {run.failed} of {run.total}")
print(sorted(p.name for p in folder.iterdir()))

# %%
# NBVAL_IGNORE_OUTPUT
from IPython.display import Image

Image(filename=run.grid_paths[0])

# %% [markdown]
# Every manifest line says how its image was made:

# %%
entry = sdkit.load_manifest(folder)[0]
for key in ("cell", "labels", "seed", "batch", "scheduler_class", "generator", "dtype", "device", "torch_threads"):
    print(f"{key:16} {entry[key]}")
print("model_hash      ", entry["model_hash"][:16], "…")

# %% [markdown]
# `verify` makes every image again (same batches, same thread count) and compares the PNG bytes:

# %%
check = sdkit.verify_study(folder, backend=backend, progress=False)
print(check.summary().split(" - ")[1])

# %% [markdown]
# Alter one image and it is named:

# %%
victim = folder / "images" / "00007.png"
victim.write_bytes(victim.read_bytes()[:-20] + b"tampered-tampered!!!")
print(sdkit.verify_study(folder, backend=backend, progress=False).summary().replace(str(folder), "FOLDER"))

# %% [markdown]
# `report.html` is one self-contained page (grids, every image with its parameters, the environment) to open
# from disk or send to someone. From a terminal:
#
# ```bash
# sdkit study run examples/cfg-vs-steps.yaml --out runs/cfg-vs-steps
# sdkit study verify runs/cfg-vs-steps
# sdkit study report runs/cfg-vs-steps
# ```

# %%
report = sdkit.write_report(folder)
print(report.name, report.stat().st_size > 10_000)
