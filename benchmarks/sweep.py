"""Sweep benchmark: batching, remote concurrency and the on-disk cache, measured side by side.

    python -m benchmarks.sweep [--steps 20] [--repeat 2]

1. A 4×4 sweep on the embedded ``tiny`` model (prompt S/R × seed, 64×64): ``run_sweep`` (cells that
   share size, steps, guidance and scheduler batched into pipeline calls of up to 8 images) against the
   naive loop of one pipeline call per image, in the same process on the same warm pipeline. Every
   image must equal its naive twin within ±1 level.
2. 64 remote images through ``RemoteBackend`` against a loopback relay that waits 100 ms per reply,
   at concurrency 8 (ideal 64 × 0.1 / 8 = 0.8 s) and at concurrency 1. Needs ``sdkit.backends.relay.remote`` (the
   client issue); skipped with a note when it is not there.
3. The same 4×4 sweep run again into the folder of its first run: everything comes from the cache.

Each figure is the best of ``--repeat`` runs (the machine may be shared). Prints ``NAME: VALUE (goal …)``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sdkit import GenerationParams, LocalBackend, Sweep, run_sweep

PROMPT = "a red circle on a blue background"


def local_sweep(steps: int) -> Sweep:
    base = GenerationParams(PROMPT, seed=1, num_inference_steps=steps)
    return Sweep(base, x="prompt_sr=circle,square,star,ring", y="seed=1-4")


def bench_local(steps: int, repeat: int, tmp: Path) -> None:
    backend = LocalBackend(progress=False)
    backend.generate(GenerationParams("warm up", seed=0, num_inference_steps=2))
    sweep = local_sweep(steps)
    cells = sweep.cells()
    naive_s, batched_s, cached_s = [], [], []
    naive_images = batched = None
    for r in range(repeat):
        start = time.perf_counter()
        naive_images = [backend.generate(c.params).images[0] for c in cells]
        naive_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        batched = run_sweep(sweep, backend, tmp / f"run{r}", progress=False)
        batched_s.append(time.perf_counter() - start)
    for _ in range(max(3, repeat)):
        start = time.perf_counter()
        again = run_sweep(sweep, backend, tmp / "run0", progress=False)
        cached_s.append(time.perf_counter() - start)
        assert again.count("cached") == len(cells), again
    diff = max(
        int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(c.image, dtype=np.int16)).max())
        for a, c in zip(naive_images, batched.cells, strict=True)
    )
    n = len(cells)
    batch_sizes = sorted({c.record["batch_size"] for c in batched.cells})
    print(f"sweep_images: {n} (4x4, 64x64, {steps} steps, batch sizes {batch_sizes})")
    print(f"sweep_naive_images_per_s: {n / min(naive_s):.2f} (one pipeline call per image)")
    print(f"sweep_batched_images_per_s: {n / min(batched_s):.2f} (run_sweep, incl. PNG, grid, manifest writes)")
    print(f"sweep_batched_speedup: {min(naive_s) / min(batched_s):.2f}x (goal >= 2x)")
    print(f"sweep_batched_max_pixel_diff: {diff} (goal <= 1)")
    print(f"sweep_cached_rerun_s: {min(cached_s):.3f} (first run {min(batched_s):.2f} s)")
    print(f"sweep_cached_rerun_speedup: {min(batched_s) / min(cached_s):.0f}x (goal >= 50x)")


def bench_remote(repeat: int) -> None:
    try:
        from sdkit.backends.relay.fakerelay import FakeRelay
        from sdkit.backends.relay.remote import RemoteBackend
    except ImportError:
        print("remote_wall_over_ideal: skipped (sdkit.backends.relay.remote is not in this checkout) (goal <= 1.15)")
        return
    base = GenerationParams(PROMPT, seed=1, num_inference_steps=4)
    sweep = Sweep(base, x="seed=1-8", y="guidance_scale=1-8")
    n = sweep.count()
    delay = 0.1
    walls: dict[int, float] = {}
    with FakeRelay(delay=delay) as relay:
        for concurrency in (8, 1):
            best = float("inf")
            for _ in range(repeat if concurrency > 1 else 1):
                with RemoteBackend("chat", relay.url, "sk-bench", max_concurrency=concurrency) as backend:
                    start = time.perf_counter()
                    result = run_sweep(sweep, backend, None, progress=False)
                    best = min(best, time.perf_counter() - start)
                assert result.count("generated") == n, result
            walls[concurrency] = best
        in_flight = relay.max_in_flight
    ideal = n * delay / 8
    print(f"remote_images: {n} (loopback relay, {delay * 1000:.0f} ms per reply, max in flight {in_flight})")
    print(f"remote_wall_s: {walls[8]:.3f} at concurrency 8, {walls[1]:.3f} sequential")
    print(f"remote_wall_over_ideal: {walls[8] / ideal:.3f} (goal <= 1.15; ideal {ideal:.1f} s)")
    print(f"remote_speedup_over_sequential: {walls[1] / walls[8]:.2f}x (goal close to 8x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="denoising steps per image (default 20)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the best counts (default 2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sdkit-bench-") as tmp:
        bench_local(args.steps, args.repeat, Path(tmp))
    bench_remote(args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
