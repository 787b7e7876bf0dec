"""Draw the README's pictures of the embedded model (labelled grids made by sdkit itself).

.venv/bin/python tools/readme_pictures.py      # writes docs/tiny-shapes.png and docs/tiny-guidance.png
.venv/bin/python tools/readme_pictures.py lora # writes docs/tiny-lora.png only
"""

from __future__ import annotations

import sys
from pathlib import Path

import sdkit
from sdkit.sweeps.grid import labelled_grid

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "a red circle on a blue background",
    "a large yellow square on a black background",
    "a small white triangle on a green background",
    "an orange circle on the left on a purple background",
    "a purple triangle at the top, yellow background",
    "a green square",
)
SEEDS = 4
GUIDANCE_PROMPT = "a small red triangle on a blue background"
GUIDANCE = (1.0, 2.0, 4.0, 7.5)
LORA_PROMPTS = ("a red hexagon on a blue background", "a yellow hexagon on a purple background")
LORA_WEIGHTS = (0.0, 0.5, 1.0)


def lora_picture(backend) -> None:
    """The hexagon LoRA: weight 0, 0.5, 1 (rows) × seeds 1–4, for two prompts."""
    rows, labels = [], []
    for prompt in LORA_PROMPTS:
        for w in LORA_WEIGHTS:
            params = sdkit.GenerationParams(prompt, seed=1, num_images=SEEDS, loras=[("hexagon", w)])
            rows.append(list(backend.generate(params).images))
            labels.append(f"{prompt.split(' on ')[0]} <lora:hexagon:{w:g}>")
    sheet = labelled_grid(rows, x_labels=[f"seed {s}" for s in range(1, SEEDS + 1)], y_labels=labels)
    out = ROOT / "docs" / "tiny-lora.png"
    sheet.save(out, optimize=True)
    print("wrote", out)


def main() -> None:
    backend = sdkit.LocalBackend(device="cpu", progress=False)
    if sys.argv[1:] == ["lora"]:
        lora_picture(backend)
        return
    results = backend.generate_many([sdkit.GenerationParams(p, seed=1, num_images=SEEDS) for p in PROMPTS])
    seeds = [f"seed {s}" for s in results[0].seeds]
    sheet = labelled_grid([list(r.images) for r in results], x_labels=seeds, y_labels=PROMPTS)
    out = ROOT / "docs" / "tiny-shapes.png"
    sheet.save(out, optimize=True)
    print("wrote", out)

    params = [sdkit.GenerationParams(GUIDANCE_PROMPT, seed=1, num_images=SEEDS, guidance_scale=g) for g in GUIDANCE]
    results = backend.generate_many(params)
    sheet = labelled_grid(
        [list(r.images) for r in results],
        x_labels=seeds,
        y_labels=[f"CFG {g:g}" for g in GUIDANCE],
        title=f'"{GUIDANCE_PROMPT}", 20 steps',
    )
    out = ROOT / "docs" / "tiny-guidance.png"
    sheet.save(out, optimize=True)
    print("wrote", out)
    lora_picture(backend)


if __name__ == "__main__":
    main()
