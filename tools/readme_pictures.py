"""Draw the README's picture of the embedded model: a few prompts (rows) × seeds (columns).

.venv/bin/python tools/readme_pictures.py      # writes docs/tiny-shapes.png
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

import sdkit

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "a red circle on a blue background",
    "a large yellow square on a black background",
    "a small white triangle on a green background",
    "an orange circle on the left on a purple background",
)
SEEDS = 4
SCALE = 2


def main() -> None:
    backend = sdkit.LocalBackend(device="cpu", progress=False)
    results = backend.generate_many([sdkit.GenerationParams(p, seed=1, num_images=SEEDS) for p in PROMPTS])
    side = 64 * SCALE
    sheet = Image.new("RGB", (side * SEEDS, side * len(PROMPTS)), "white")
    for row, result in enumerate(results):
        for col, image in enumerate(result.images):
            sheet.paste(image.resize((side, side), Image.Resampling.NEAREST), (col * side, row * side))
    out = ROOT / "docs" / "tiny-shapes.png"
    sheet.save(out, optimize=True)
    print("wrote", out)


if __name__ == "__main__":
    main()
