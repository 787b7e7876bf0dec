# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs everything pinned (constraints.txt).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sdkit-installed
TORCH := torch==2.13.0

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Idle OpenMP threads sleep instead of spinning: on a shared, busy machine spinning made torch ~10-100x slower.
# sdkit sets this itself before it imports torch; exported here too for tests that import torch first.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install demo test bench lint format clean browser train-tiny train-lora adherence

install: $(STAMP)

# torch first and pinned (a CPU build here; never torchvision), then sdkit editable with every extra.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	@if $(PY) -m pip show torchvision >/dev/null 2>&1; then echo "torchvision is installed: it breaks diffusers here; remove it" >&2; exit 1; fi
	touch $(STAMP)

demo: $(STAMP)
	@rm -rf runs/demo
	$(VENV)/bin/sdkit sweep "a red circle on a blue background" --seed 1 --x "guidance_scale=1,4,7.5" --y "num_inference_steps=5-20 (+5)" --out runs/demo --no-progress
	@echo "demo images, grid and manifest are in runs/demo/"

# The browser test drives JupyterLab with Debian's Chromium; installed here when missing (needs root).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    for try in 1 2 3; do \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	        && break; sleep 10; \
	    done; \
	  else echo "note: chromium and chromium-driver are missing and this is not root: the browser test will be skipped"; fi; \
	fi

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg tests notebooks

# Benchmarks: each prints `NAME: VALUE (goal …)` lines.
bench: $(STAMP)
	$(PY) -m benchmarks.cpu
	$(PY) -m benchmarks.sweep
	$(PY) -m benchmarks.serve
	$(PY) -m benchmarks.prompts
	$(PY) -m benchmarks.ray
	$(PY) -m benchmarks.providers

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache test-artifacts

# Retrain the embedded `tiny` model from scratch (deterministic) into sdkit/models/shapes.
# It has the machine to itself, so its OpenMP threads spin between ops (measured 1.3-1.9x faster per step
# than sleeping; the numbers are the same either way).
train-tiny: $(STAMP)
	rm -rf runs/train-tiny
	OMP_WAIT_POLICY=ACTIVE $(PY) -m training.tiny --out runs/train-tiny
	rm -rf sdkit/models/shapes && mkdir -p sdkit/models && cp -r runs/train-tiny sdkit/models/shapes

# Retrain the `hexagon` LoRA of `tiny` (deterministic) into sdkit/models/shapes/loras/hexagon.safetensors.
train-lora: $(STAMP)
	rm -rf runs/train-lora
	OMP_WAIT_POLICY=ACTIVE $(PY) -m training.lora --out runs/train-lora/hexagon.safetensors
	mkdir -p sdkit/models/shapes/loras && cp runs/train-lora/hexagon.safetensors runs/train-lora/hexagon.json sdkit/models/shapes/loras/

# Prompt adherence of the embedded model, judged by a pixel classifier (prints NAME: VALUE (goal ...)).
# OpenMP keeps its defaults here, as in a notebook (see benchmarks/adherence.py).
adherence: $(STAMP)
	env -u OMP_WAIT_POLICY $(PY) -m benchmarks.adherence
