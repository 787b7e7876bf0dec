"""Provider backends benchmark: requests in flight against the Stability and Flux fakes on loopback.

    python -m benchmarks.providers [--images 16] [--delay 0.1] [--repeat 2]

1. ``stability``: ``--images`` images, each reply held ``--delay`` seconds by the fake, at concurrency 4
   (ideal images × delay / 4) and 1.
2. ``bfl``: the same through submit (held ``--delay`` s) → poll (one ``Pending`` first, polled again after
   50 ms) → fetch the signed sample: four round trips an image (ideal images × (delay + 0.05) / concurrency).
3. ``expand``: four prompt expansions from the fake chat model, then the same four from the cache.

Each figure is the best of ``--repeat`` runs (the machine may be shared). Prints ``NAME: VALUE (goal …)``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import sdkit
from sdkit import FakeBFL, FakeRelay, FakeStability, GenerationParams


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    params = [GenerationParams(f"a lighthouse {i}", seed=i + 1, width=64, height=64) for i in range(args.images)]
    n, d = args.images, args.delay

    with FakeStability(delay=d) as fake:
        for conc in (4, 1):
            backend = sdkit.create_backend("stability", base_url=fake.url, api_key="", max_concurrency=conc)
            s = best(args.repeat, lambda b=backend: b.generate_many(params))
            print(
                f"stability_{n}_images_concurrency_{conc}_s: {s:.2f} (goal ≤ {1.5 * n * d / conc:.2f}, "
                f"ideal {n * d / conc:.2f})"
            )
    with FakeBFL(delay=d, pending_polls=1) as fake:
        for conc in (4, 1):
            backend = sdkit.create_backend(
                "bfl", base_url=fake.url, api_key="", max_concurrency=conc, poll_interval=0.05
            )
            s = best(args.repeat, lambda b=backend: b.generate_many(params))
            ideal = n * (d + 0.05) / conc  # the fake holds the submission; polls and the sample answer at once
            print(f"bfl_{n}_images_concurrency_{conc}_s: {s:.2f} (goal ≤ {2 * ideal:.2f}, ideal {ideal:.2f})")
    with FakeRelay() as relay, tempfile.TemporaryDirectory() as cache:
        first = best(
            1,
            lambda: sdkit.expand_prompt(
                "a lighthouse", model="fake-text", n=4, base_url=relay.url, api_key="", cache=cache
            ),
        )
        again = best(
            args.repeat,
            lambda: sdkit.expand_prompt(
                "a lighthouse", model="fake-text", n=4, base_url=relay.url, api_key="", cache=cache
            ),
        )
        print(f"expand_4_prompts_s: {first:.3f} (goal < 1)")
        print(f"expand_4_prompts_cached_s: {again:.4f} (goal < 0.05, no request)")


if __name__ == "__main__":
    main()
