"""Prompt-language benchmark: what A1111's syntax costs per image on the local backend.

    python -m benchmarks.prompts [--images N]

``prompt_encoding_overhead``: a weighted 150-token prompt (two 75-token chunks, emphasis on many words) against a
plain short prompt, per image, on the embedded tiny model at 64×64 and 20 steps (one thread, so the two are
measured alike). The two are timed in turns (A B B A …) and the medians compared; the time the encoding itself
takes (tokenizing, the text encoder on each chunk, weights) is measured apart, so the line says both what the
encoding costs and what the longer conditioning costs the UNet.

Prints ``NAME: VALUE (goal …)`` lines.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

PLAIN = "a red circle on a blue background"
WORDS = ["red", "circle", "blue", "background", "square", "green", "shape", "plain"]


def weighted_prompt(tokens: int = 150) -> str:
    """About ``tokens`` tokens on the tiny tokenizer, every third word weighted."""
    from sdkit import count_tokens

    parts: list[str] = []
    i = 0
    while count_tokens(", ".join(parts)).tokens < tokens:
        word = WORDS[i % len(WORDS)]
        parts.append(f"({word}:1.{i % 5 + 1})" if i % 3 == 0 else word)
        i += 1
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=12, help="images of each kind (default 12)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sdkit import GenerationParams, LocalBackend, count_tokens

    backend = LocalBackend(progress=False, threads=1)
    long = weighted_prompt()
    count = count_tokens(long)
    params = {
        "plain": GenerationParams(PLAIN, seed=1, num_inference_steps=20),
        "weighted": GenerationParams(long, seed=1, num_inference_steps=20),
    }
    for p in params.values():  # load and warm up
        backend.generate(p)
    times: dict[str, list[float]] = {"plain": [], "weighted": []}
    order = ["plain", "weighted"]
    for i in range(args.images):
        for kind in order if i % 2 == 0 else reversed(order):
            start = time.perf_counter()
            backend.generate(params[kind])
            times[kind].append(time.perf_counter() - start)
    encoder = backend._load("tiny").encoder
    import torch

    encode: list[float] = []
    with torch.inference_mode():
        for _ in range(args.images):
            start = time.perf_counter()
            encoder.conditioning([long], [""], steps=20)
            encode.append(time.perf_counter() - start)
    plain, weighted = statistics.median(times["plain"]), statistics.median(times["weighted"])
    enc = statistics.median(encode)
    print(
        f"# {platform.processor() or platform.machine()}, tiny model 64x64, 20 steps, 1 thread, "
        f"{args.images} images each; weighted prompt: {count} tokens in {count.label}"
    )
    print(f"prompt_plain_s_per_image: {plain:.3f}")
    print(f"prompt_weighted_s_per_image: {weighted:.3f}")
    print(f"prompt_encoding_s: {enc * 1000:.1f} ms (the text encoder on {count.chunks} chunks, weights applied)")
    print(f"prompt_encoding_overhead: {enc / plain * 100:.1f}% of a plain image (goal <= 5%)")
    print(
        f"prompt_weighted_vs_plain: {weighted / plain:.3f}x per image (encoding plus a {count.chunks}x longer "
        "conditioning for the UNet's cross-attention)"
    )


if __name__ == "__main__":
    main()
