"""Executors: who makes a planned list of batches on a backend, and how the results come back.

A plan is plain data, so that an executor elsewhere (a pool of machines) can take the one a sweep or a
study made: a list of batches, each a list of ``(key, GenerationParams)`` requests, where ``key`` is the
caller's number for the request (a cell index). :func:`plan` makes it with the one planner
(:func:`sdkit.engine.planner.plan_batches`). An :class:`Executor` reports each request as it settles
through ``on_result(key, result_or_error, made_with)``; ``made_with`` holds the keys made in the same
backend call, which is what a study records as the image's batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from sdkit.backends.base import capabilities
from sdkit.engine.planner import plan_batches
from sdkit.errors import OutputError, SdkitError
from sdkit.params import GenerationParams

if TYPE_CHECKING:
    from sdkit.backends.base import Backend, Capabilities
    from sdkit.result import GenerationResult

__all__ = ["Batch", "Executor", "InProcessExecutor", "OnResult", "Request", "plan"]

#: One request: the caller's key for it, and its parameters.
Request = tuple[int, GenerationParams]
#: Requests the backend makes together.
Batch = Sequence[Request]
#: Called as ``on_result(key, result_or_error, made_with)`` as each request settles.
OnResult = Callable[[int, "GenerationResult | Exception", tuple[int, ...]], None]


def plan(requests: Sequence[Request], caps: Capabilities) -> list[list[Request]]:
    """``requests`` grouped into backend calls by :func:`~sdkit.engine.planner.plan_batches` under ``caps``
    (a backend's capabilities, or a policy such as ``max_batch=1`` for a study that does not batch)."""
    return [[requests[i] for i in members] for members in plan_batches([p for _, p in requests], caps)]


class Executor(Protocol):
    """Makes every batch of a plan on ``backend``; each request is settled exactly once through
    ``on_result``, failed requests with their error (an :class:`~sdkit.SdkitError`). An error raised by
    ``on_result`` (a disk that refuses a write, an interrupt) stops the run and is raised."""

    def run(self, backend: Backend, batches: Sequence[Batch], on_result: OnResult) -> None: ...


class InProcessExecutor:
    """Runs a plan on a backend in this process.

    A backend that batches (``max_batch`` > 1) gets one ``generate_many`` per planned batch, which it makes
    as one call, so the recorded batches are the ones that ran. One that does not gets every request in a
    single ``generate_many``, so a remote one sends them concurrently and each is reported as it arrives.
    A call that raises instead of returning its errors (a bug in a backend, not a failed image) is tried
    again one request at a time, so that only the faulty requests fail.
    """

    def run(self, backend: Backend, batches: Sequence[Batch], on_result: OnResult) -> None:
        if capabilities(backend).max_batch > 1:
            for batch in batches:
                _call(backend, list(batch), on_result, together=True)
        else:
            _call(backend, [r for batch in batches for r in batch], on_result, together=False)


def _call(backend: Backend, requests: list[Request], on_result: OnResult, *, together: bool) -> None:
    """One ``generate_many`` over ``requests``: ``together`` when they are one batch (reported after the
    call), else each on its own (reported as the backend hands it over)."""
    if not requests:
        return
    keys = tuple(key for key, _ in requests)
    settled: set[int] = set()

    def deliver(i: int, outcome: GenerationResult | Exception) -> None:
        if i in settled:
            return
        settled.add(i)
        on_result(keys[i], outcome, keys if together else (keys[i],))

    params = [p for _, p in requests]
    try:
        results = backend.generate_many(params, on_result=None if together else deliver, return_errors=True)
    except OutputError:
        raise  # the disk, not the backend: trying again one at a time would not help
    except Exception:
        results = None
    if results is not None:
        for i, outcome in enumerate(results[: len(requests)]):
            deliver(i, outcome)
    for i, (_, p) in enumerate(requests):  # after a crash (or a reply short of results): one at a time
        if i in settled:
            continue
        try:
            outcome = backend.generate_many([p], return_errors=True)[0]
        except OutputError:
            raise
        except Exception as exc:
            outcome = exc if isinstance(exc, SdkitError) else SdkitError(f"{type(exc).__name__}: {exc}")
        settled.add(i)
        on_result(keys[i], outcome, (keys[i],))
