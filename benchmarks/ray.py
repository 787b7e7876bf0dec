"""Ray executor benchmark: the same 24-image study in-process and on Ray actors.

    python -m benchmarks.ray [--steps 10] [--size 128] [--repeat 1]

The study: the embedded ``tiny`` model, 2 guidance scales x 3 prompts x 4 seeds (24 images, batched
by the planner as in-process). Measured on one local Ray instance started once (its start-up time is
printed on its own: a CLI run without ``--ray-address`` pays it, a cluster does not):

1. in-process, ``threads`` = the machine's cores, a fresh backend (model load included), then again on
   the same backend (warm);
2. Ray, 1 worker with as many CPUs and threads, cold (actor start, imports and model load included),
   then again with its actor reused (as in a notebook or a driver that runs several studies): the wall
   time over (1) is the executor's overhead;
3. Ray, 2 workers with cores/2 threads each, cold then warm: images/s.

Every Ray image must equal its in-process twin pixel for pixel (run 2 has the same thread count).
Prints ``NAME: VALUE (goal …)`` lines.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sdkit import load_manifest, run_study
from sdkit.engine.raycluster import RayExecutor, _connect, import_ray, release_workers
from sdkit.studies.folder import load_spec
from sdkit.studies.run import make_backend


def study(steps: int, size: int, threads: int) -> dict:
    params = {"prompt": "a red circle on a blue background", "width": size, "height": size}
    return {
        "name": "raybench",
        "model": "tiny",
        "params": {**params, "num_inference_steps": steps},
        "axes": {"x": "guidance_scale=3,7.5", "y": "prompt_sr=circle,square,star"},
        "seeds": [1, 2, 3, 4],
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    _connect(ray, None, cores, None)
    start_s = time.perf_counter() - start
    full = study(args.steps, args.size, cores)
    half = study(args.steps, args.size, max(1, cores // 2))
    options = {"progress": False}
    inproc_s, inproc_warm_s, one_s, two_s, one_warm_s, two_warm_s = [], [], [], [], [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeat):
                t = time.perf_counter()
                backend = make_backend(load_spec(full))
                run_study(full, Path(tmp) / f"in{r}", progress=False, backend=backend)
                inproc_s.append(time.perf_counter() - t)
                t = time.perf_counter()  # the same backend again: its model is loaded
                run_study(full, Path(tmp) / f"inw{r}", progress=False, backend=backend)
                inproc_warm_s.append(time.perf_counter() - t)
                one = RayExecutor("local", {**options, "threads": cores}, workers=1, cpus_per_worker=cores)
                t = time.perf_counter()
                run_study(full, Path(tmp) / f"one{r}", progress=False, executor=one)
                one_s.append(time.perf_counter() - t)
                t = time.perf_counter()  # the same backend again: the loaded actor is reused
                run_study(full, Path(tmp) / f"onew{r}", progress=False, executor=one)
                one_warm_s.append(time.perf_counter() - t)
                two = RayExecutor(
                    "local", {**options, "threads": half["threads"]}, workers=2, cpus_per_worker=cores / 2
                )
                t = time.perf_counter()
                run_study(half, Path(tmp) / f"two{r}", progress=False, executor=two)
                two_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                run_study(half, Path(tmp) / f"twow{r}", progress=False, executor=two)
                two_warm_s.append(time.perf_counter() - t)
                release_workers()
            a = {e["cell"]: e["pixels_sha256"] for e in load_manifest(Path(tmp) / "in0")}
            b = {e["cell"]: e["pixels_sha256"] for e in load_manifest(Path(tmp) / "one0")}
            workers = {e["executor"]["pid"] for e in load_manifest(Path(tmp) / "two0")}
            same = sum(a[c] == b.get(c) for c in a)
    finally:
        ray.shutdown()
    n = len(a)
    print(f"ray_study: {n} images, tiny model, {args.size}x{args.size}, {args.steps} steps, {cores} cores")
    print(f"ray_local_start_s: {start_s:.1f} (once per run without --ray-address)")
    cold, warm = min(inproc_s), min(inproc_warm_s)
    print(f"ray_inprocess_images_per_s: {n / warm:.2f} ({warm:.1f} s, {cores} threads; cold {cold:.1f} s)")
    print(f"ray_overhead_cold: {min(one_s) / cold:.2f}x (1 worker, {cores} threads; both cold: model load in)")
    print(f"ray_overhead: {min(one_warm_s) / warm:.2f}x (both warm: model loaded, actor reused; goal <= 1.3x)")
    print(f"ray_images_per_s_1_worker: {n / min(one_warm_s):.2f} ({min(one_warm_s):.1f} s; cold {min(one_s):.1f} s)")
    each = f"{half['threads']} thread(s) each, {len(workers)} workers used"
    two = f"{min(two_warm_s):.1f} s, {each}; cold {min(two_s):.0f} s"
    print(f"ray_images_per_s_2_workers: {n / min(two_warm_s):.2f} ({two})")
    print(f"ray_pixel_identical: {same}/{n} (goal {n}/{n})")


if __name__ == "__main__":
    main()
