"""Prompt adherence of the embedded ``tiny`` model, judged by a pixel classifier.

Run with ``python -m benchmarks.adherence`` (or ``make adherence``). Every colour × shape
prompt ("a red circle on a blue background", the background chosen so that all colours appear)
is drawn with 8 seeds at the default guidance; :func:`training.shapes.classify` reads back the
shape's colour, the background colour and the shape. Then the same scores across guidance
scales, and the time per image at the native size and 20 steps.

Prints ``NAME: VALUE (goal …)`` lines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

from sdkit import GenerationParams, LocalBackend
from training.shapes import COLOURS, SHAPES, classify

GOALS = {"colour": 0.90, "shape": 0.70, "background": 0.80}
GUIDANCE_CURVE = (1.0, 2.0, 4.0, 7.5)


@dataclass(frozen=True)
class Case:
    prompt: str
    colour: str
    shape: str
    background: str


@dataclass(frozen=True)
class Scores:
    n: int
    colour: float
    shape: float
    background: float

    @property
    def mean(self) -> float:
        return (self.colour + self.shape + self.background) / 3


def cases() -> list[Case]:
    """One prompt per colour × shape; backgrounds rotate so that each colour is one too."""
    names = list(COLOURS)
    out = []
    for ci, colour in enumerate(names):
        for si, shape in enumerate(SHAPES):
            background = names[(ci + 1 + 2 * si) % len(names)]
            prompt = f"{_a(colour)} {colour} {shape} on {_a(background)} {background} background"
            out.append(Case(prompt, colour, shape, background))
    return out


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def hexagon_cases() -> list[Case]:
    """One hexagon prompt per colour (the shape the ``hexagon`` LoRA teaches), backgrounds rotating."""
    names = list(COLOURS)
    out = []
    for ci, colour in enumerate(names):
        background = names[(ci + 3) % len(names)]
        prompt = f"{_a(colour)} {colour} hexagon on {_a(background)} {background} background"
        out.append(Case(prompt, colour, "hexagon", background))
    return out


def score(
    backend: LocalBackend,
    chosen: list[Case],
    seeds: int,
    guidance_scale: float = 7.5,
    steps: int = 20,
    scheduler: str | None = None,
    loras: tuple[tuple[str, float], ...] = (),
    images: list | None = None,
) -> Scores:
    """Draw each case with seeds 0..seeds-1 and count what the classifier reads back right
    (the pictures are appended to ``images`` when it is given)."""
    params = [
        GenerationParams(
            c.prompt,
            seed=0,
            num_images=seeds,
            guidance_scale=guidance_scale,
            num_inference_steps=steps,
            scheduler=scheduler,
            loras=loras,
        )
        for c in chosen
    ]
    right = {"colour": 0, "shape": 0, "background": 0}
    for case, result in zip(chosen, backend.generate_many(params), strict=True):
        if images is not None:
            images.extend(result.images)
        for image in result.images:
            colour, background, shape = classify(image)
            right["colour"] += colour == case.colour
            right["shape"] += shape == case.shape
            right["background"] += background == case.background
    n = len(chosen) * seeds
    return Scores(n, right["colour"] / n, right["shape"] / n, right["background"] / n)


def time_per_image(backend: LocalBackend, repeats: int = 5) -> float:
    """Median seconds for one image at the native size, 20 steps, default guidance (model loaded)."""
    backend.generate(GenerationParams("a red circle on a blue background", seed=0))
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        backend.generate(GenerationParams("a red circle on a blue background", seed=seed))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lora_figures(backend: LocalBackend, all_cases: list[Case], seeds: int, base: Scores, base_images: list) -> None:
    """The ``hexagon`` LoRA shipped with ``tiny``: hexagons at weight 1, the base model's pixels at weight 0,
    and the three shapes the model knew kept (no forgetting) with the LoRA at 1."""
    import json
    from pathlib import Path

    import numpy as np

    hexagons = hexagon_cases()
    without = score(backend, hexagons, seeds)
    with_lora = score(backend, hexagons, seeds, loras=(("hexagon", 1.0),))
    print(f"hexagon prompts: {len(hexagons)} x {seeds} seeds = {with_lora.n} images, LoRA hexagon at weight 1")
    print(f"hexagon_right_without_lora: {without.shape:.1%} (the base model never saw one)")
    print(f"hexagon_right_lora_1: {with_lora.shape:.1%} (goal >= 70%)")
    print(
        f"hexagon_lora_1_colour_right: {with_lora.colour:.1%}  background_right: {with_lora.background:.1%} "
        f"(goal >= {GOALS['colour']:.0%} / {GOALS['background']:.0%})"
    )
    zero_images: list = []
    score(backend, all_cases, seeds, loras=(("hexagon", 0.0),), images=zero_images)
    same = sum(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(base_images, zero_images, strict=True))
    print(f"lora_0_pixel_identical: {same}/{len(base_images)} images (goal all)")
    kept = score(backend, all_cases, seeds, loras=(("hexagon", 1.0),))
    for name in ("shape", "colour", "background"):
        ratio = getattr(kept, name) / max(getattr(base, name), 1e-9)
        print(
            f"lora_1_keeps_{name}: {ratio:.1%} of the base model's ({getattr(kept, name):.1%} vs "
            f"{getattr(base, name):.1%}, circles/squares/triangles) (goal >= 90%)"
        )
    report = Path(__file__).resolve().parent.parent / "sdkit" / "models" / "shapes" / "loras" / "hexagon.json"
    if report.is_file():
        trained = json.loads(report.read_text())
        print(
            f"lora_training_seconds: {trained['seconds']:.0f} ({trained['config']['steps']} steps, "
            f"{trained['config']['threads']} threads; goal minutes on 2 CPU cores)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adherence", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds per prompt at the default guidance")
    parser.add_argument("--curve-seeds", type=int, default=4, help="seeds per prompt for the guidance curve")
    parser.add_argument(
        "--samplers",
        default="Euler a,DPM++ 2M Karras",
        help="other samplers (A1111 names, comma-separated) to score with --curve-seeds seeds; '' for none",
    )
    parser.add_argument(
        "--only-lora", action="store_true", help="only the hexagon LoRA's figures (no guidance curve or samplers)"
    )
    args = parser.parse_args(argv)
    # OpenMP as the process found it: `make adherence` runs with torch's defaults, as a notebook does
    # (`make test` exports OMP_WAIT_POLICY=PASSIVE, which makes a tiny model's steps ~3x slower).
    import torch

    torch.set_num_threads(2)
    backend = LocalBackend(device="cpu", progress=False)
    all_cases = cases()
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"threads: {torch.get_num_threads()}  OMP_WAIT_POLICY: {policy}  load average: {os.getloadavg()[0]:.2f}")
    base_images: list = []
    s = score(backend, all_cases, args.seeds, images=base_images)
    print(f"prompts: {len(all_cases)} x {args.seeds} seeds = {s.n} images at guidance 7.5, 20 steps")
    print(f"shape_colour_right: {s.colour:.1%} (goal >= {GOALS['colour']:.0%})")
    print(f"shape_right: {s.shape:.1%} (goal >= {GOALS['shape']:.0%})")
    print(f"background_right: {s.background:.1%} (goal >= {GOALS['background']:.0%})")
    lora_figures(backend, all_cases, args.seeds, s, base_images)
    if args.only_lora:
        return 0
    curve = [(g, score(backend, all_cases, args.curve_seeds, g)) for g in GUIDANCE_CURVE]
    for g, c in curve:
        print(
            f"guidance {g:>4}: colour {c.colour:.1%}  shape {c.shape:.1%}  background {c.background:.1%}"
            f"  mean {c.mean:.1%}  (n={c.n})"
        )
    rising = curve[-1][1].mean > curve[0][1].mean
    print(
        f"adherence_rises_with_guidance: {'yes' if rising else 'no'} "
        f"({curve[0][1].mean:.1%} at {curve[0][0]:g} -> {curve[-1][1].mean:.1%} at {curve[-1][0]:g}) (goal yes)"
    )
    for sampler in filter(None, (name.strip() for name in args.samplers.split(","))):
        c = score(backend, all_cases, args.curve_seeds, scheduler=sampler)
        print(
            f"sampler {sampler}: colour {c.colour:.1%}  shape {c.shape:.1%}  background {c.background:.1%}"
            f"  (n={c.n}, guidance 7.5, 20 steps; the figures above use the model's own DDIM)"
        )
    t = time_per_image(backend)
    print(f"seconds_per_image: {t:.3f} (64x64, 20 steps, guidance 7.5, one image per call; goal well under 1 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
