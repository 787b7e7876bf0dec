"""Load test of ``sdkit serve`` on loopback with the embedded ``tiny`` model.

    python -m benchmarks.serve [--requests 100] [--steps 2]

Fires ``--requests`` chat requests at once at a server with a bounded queue, twice side by side:
with queued requests batched into shared pipeline calls (``max_batch=8``) and without
(``max_batch=1``). Every request must be answered (200, or 429 with ``Retry-After``), none lost,
and the server must be healthy afterwards. Prints ``NAME: VALUE (goal …)`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

__all__ = ["LoadReport", "fire", "main", "run_load"]


@dataclass(frozen=True)
class LoadReport:
    """What a burst of requests got back: ``statuses[i]`` is request i's status (None: no answer)."""

    statuses: tuple[int | None, ...]
    latencies_s: tuple[float, ...]
    retry_after_missing: int
    errors: tuple[str, ...]
    wall_s: float
    healthy_after: bool
    done_by_server: int = 0
    notes: dict = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(s == 200 for s in self.statuses)

    @property
    def refused(self) -> int:
        return sum(s == 429 for s in self.statuses)

    @property
    def lost(self) -> int:
        """Requests with no answer, or an answer that is neither 200 nor 429 with Retry-After."""
        return sum(s not in (200, 429) for s in self.statuses) + self.retry_after_missing

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_s)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, round(q / 100 * (len(data) - 1)))]


def _body(i: int, steps: int) -> dict:
    return {
        "model": "tiny",
        "messages": [{"role": "user", "content": f"a red circle number {i}"}],
        "seed": i,
        "num_inference_steps": steps,
    }


async def fire(
    base_url: str, n: int, *, steps: int = 2, api_key: str | None = None, timeout: float = 300.0
) -> LoadReport:
    """Send ``n`` chat requests at once; wait for every answer."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    statuses: list[int | None] = [None] * n
    latencies: list[float] = []
    errors: list[str] = []
    missing = 0
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=timeout) as client:

        async def one(i: int) -> None:
            nonlocal missing
            start = time.perf_counter()
            try:
                reply = await client.post("/v1/chat/completions", json=_body(i, steps))
            except httpx.HTTPError as exc:
                errors.append(f"request {i}: {type(exc).__name__}: {exc}")
                return
            statuses[i] = reply.status_code
            if reply.status_code == 200:
                latencies.append(time.perf_counter() - start)
                if "data:image/png;base64," not in reply.json()["choices"][0]["message"]["content"]:
                    statuses[i] = -1
            elif reply.status_code == 429 and not reply.headers.get("retry-after", "").isdigit():
                missing += 1

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
        health = await client.get("/health")
        healthy = health.status_code == 200 and health.json().get("status") == "ok"
        check = await client.post("/v1/chat/completions", json=_body(n, steps))
        healthy = healthy and check.status_code == 200
        done = (await client.get("/health")).json()["queue"]["done"]
    return LoadReport(tuple(statuses), tuple(latencies), missing, tuple(errors), wall, healthy, done)


def run_load(n: int = 100, *, steps: int = 2, max_batch: int = 8, max_queue: int = 32, backend=None) -> LoadReport:
    """Start a background server on loopback, fire ``n`` requests at once, stop it."""
    from sdkit import LocalBackend, serve_in_background

    backend = backend or LocalBackend(progress=False, max_batch=max_batch)
    with serve_in_background(backend, model="tiny", max_queue=max_queue, api_keys=()) as server:
        return asyncio.run(fire(server.url, n, steps=steps))


def _print(name: str, value: str, goal: str) -> None:
    print(f"{name}: {value} (goal {goal})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=32)
    args = parser.parse_args(argv)
    import os

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(
        f"# sdkit serve load test: {args.requests} concurrent chat requests, tiny model, {args.steps} steps, "
        f"max_queue {args.max_queue}, torch threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}"
    )
    reports = {}
    for label, max_batch in (("batched", 8), ("unbatched", 1)):
        r = run_load(args.requests, steps=args.steps, max_batch=max_batch, max_queue=args.max_queue)
        reports[label] = r
        _print(
            f"{label} answered",
            f"{r.ok + r.refused}/{args.requests} ({r.ok} × 200, {r.refused} × 429)",
            f"{args.requests}/{args.requests}",
        )
        _print(f"{label} lost", str(r.lost + len(r.errors)), "0")
        _print(f"{label} healthy after", "yes" if r.healthy_after else "NO", "yes")
        _print(f"{label} served requests/s", f"{r.ok / r.wall_s:.2f}", "higher is better")
        _print(f"{label} p50 latency", f"{r.percentile(50):.2f} s", "lower is better")
        _print(f"{label} p99 latency", f"{r.percentile(99):.2f} s", "lower is better")
        for e in r.errors[:5]:
            print(f"# {label} error: {e}")
    b, u = reports["batched"], reports["unbatched"]
    speedup = (b.ok / b.wall_s) / (u.ok / u.wall_s) if u.ok and b.ok else float("nan")
    _print("batching speed-up (served requests/s, batched / unbatched)", f"{speedup:.2f}x", "> 1")
    bad = any(r.lost or r.errors or not r.healthy_after for r in reports.values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
