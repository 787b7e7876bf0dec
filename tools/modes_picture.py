"""Draw the README's picture of variation seeds and img2img on the embedded model (issue 16).

.venv/bin/python -m tools.modes_picture      # writes docs/tiny-modes.png
"""

from __future__ import annotations

from pathlib import Path

import sdkit
from sdkit.sweeps.grid import labelled_grid

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a small red circle on a blue background"
INIT_PROMPT = "a large yellow square on a black background"
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
DENOISING = (0.0, 0.1, 0.2, 0.3, 0.5)


def main() -> None:
    backend = sdkit.LocalBackend(device="cpu", progress=False)
    base = sdkit.GenerationParams(PROMPT, seed=1, scheduler="Euler")
    variation = [base.replace(variation_seed=3, variation_strength=s) for s in STRENGTHS]
    init = backend.generate(base.replace(prompt=INIT_PROMPT)).images[0]
    img2img = [base.replace(init_image=init, denoising_strength=d) for d in DENOISING]
    rows = [
        [r.images[0] for r in backend.generate_many(variation)],
        [r.images[0] for r in backend.generate_many(img2img)],
    ]
    sheet = labelled_grid(
        rows,
        x_labels=[f"{s:g} / {d:g}" for s, d in zip(STRENGTHS, DENOISING, strict=True)],
        y_labels=["variation strength (seed 1 to 3)", f"denoising from “{INIT_PROMPT}”"],
        title=f'"{PROMPT}", Euler, 20 steps',
    )
    out = ROOT / "docs" / "tiny-modes.png"
    sheet.save(out, optimize=True)
    print("wrote", out)


if __name__ == "__main__":
    main()
