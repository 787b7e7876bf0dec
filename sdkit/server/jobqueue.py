"""A bounded queue of generation jobs, run by worker threads (one per backend, i.e. per device).

The server's event loop never runs a pipeline: it submits a :class:`Job` and awaits its
future. A worker takes the oldest job, plus any queued jobs that can share its pipeline call
(as :func:`sdkit.engine.planner.joins` decides from the backend's declared capabilities), and runs them
with ``backend.generate_many``. A job whose caller went away before it started is dropped; one
that is running is stopped at its next denoising step (through the backend's ``on_step``
callback) once every job of its pipeline call has been abandoned. When a shared call fails,
its jobs are run again one by one, so one bad request fails alone.

Encoding the PNGs and counting prompt tokens happen in the worker too, off the event loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sdkit.backends.base import Backend, Capabilities, capabilities
from sdkit.engine.planner import joins
from sdkit.errors import GenerationError, ModelError, SdkitError, ServerBusyError
from sdkit.params import GenerationParams
from sdkit.result import GenerationResult

__all__ = ["Job", "JobAbandoned", "JobOutput", "JobQueue"]


@dataclass(frozen=True)
class JobOutput:
    """What a finished job hands back: the result, one PNG per image (with infotext and
    sdkit's record), and the prompt's token count."""

    result: GenerationResult
    pngs: tuple[bytes, ...]
    prompt_tokens: int


class JobAbandoned(GenerationError):
    """Raised from the step callback to stop a pipeline call whose every caller has gone."""


@dataclass
class Job:
    params: GenerationParams
    future: Future = field(default_factory=Future)
    abandoned: threading.Event = field(default_factory=threading.Event)

    def abandon(self) -> None:
        """The caller has gone (disconnected, or its deadline passed): drop the job if it waits,
        stop its pipeline call at the next step if it runs (and no other caller shares it)."""
        self.abandoned.set()
        self.future.cancel()


def count_tokens(backend: Backend, params: GenerationParams) -> int:
    """Prompt tokens as the model's tokenizer counts them (with its start/end tokens), the
    negative prompt included; a word count for backends without a tokenizer."""
    texts = [params.prompt] + ([params.negative_prompt] if params.negative_prompt else [])
    tokenizer = None
    if capabilities(backend).loads:
        tokenizer = getattr(backend.load(params.model), "tokenizer", None)  # type: ignore[attr-defined]
    if tokenizer is None:
        return sum(len(t.split()) for t in texts)
    return sum(len(tokenizer(t, truncation=False)["input_ids"]) for t in texts)


def encode_pngs(result: GenerationResult) -> tuple[bytes, ...]:
    from sdkit.metadata.pngfile import png_bytes

    return tuple(png_bytes(image, result.record(i)) for i, image in enumerate(result.images))


class JobQueue:
    """At most ``max_queue`` jobs wait for a busy worker; beyond that :meth:`submit` raises :class:`ServerBusyError`
    with a ``retry_after`` hint from the mean time of recent jobs."""

    def __init__(self, backends: Sequence[Backend], *, max_queue: int = 32, warmup: str | None = None) -> None:
        if not backends:
            raise ValueError("at least one backend is needed")
        self.backends = tuple(backends)
        self.max_queue = max_queue
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._running = 0
        self._busy = 0
        self._done = 0
        self._mean_s = 1.0
        self._warmup = warmup
        self.ready = threading.Event()
        #: Why the model could not be loaded at start, when it could not (requests will say so too).
        self.warmup_error: str | None = None
        #: The exception behind ``warmup_error``.
        self.warmup_exception: BaseException | None = None
        self._ready_count = 0
        self._threads = [
            threading.Thread(target=self._work, args=(b,), name=f"sdkit-worker-{i}", daemon=True)
            for i, b in enumerate(self.backends)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def preload(self) -> None:
        """Load the model into every backend now, in this thread, and raise the error if one
        fails (so that a server can refuse to start); the workers then start ready."""
        if self._warmup is None:
            return
        for backend in self.backends:
            if capabilities(backend).loads:
                try:
                    backend.load(self._warmup)  # type: ignore[attr-defined]
                except SdkitError:
                    raise
                except Exception as exc:
                    raise ModelError(f"model={self._warmup!r}: could not be loaded: {exc}") from exc
        self._warmup = None

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking jobs; waiting jobs fail, running ones finish; workers are joined."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            self._cond.notify_all()
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(GenerationError("the server is shutting down"))
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    def _purge(self) -> None:
        """Drop waiting jobs whose callers went away (call with the lock held)."""
        if any(job.future.cancelled() for job in self._waiting):
            self._waiting = deque(job for job in self._waiting if not job.future.cancelled())

    def stats(self) -> dict[str, int | float | bool]:
        with self._cond:
            self._purge()
            return {
                "waiting": len(self._waiting),
                "running": self._running,
                "done": self._done,
                "workers": len(self._threads),
                "max_queue": self.max_queue,
                "ready": self.ready.is_set(),
            }

    def retry_after(self) -> int:
        """Seconds until a queue slot is likely free (at least 1)."""
        with self._cond:
            ahead = len(self._waiting) + self._running
            return max(1, math.ceil(self._mean_s * ahead / len(self._threads)))

    def submit(self, params: GenerationParams) -> Job:
        job = Job(params)
        with self._cond:
            if self._closed:
                raise GenerationError("the server is shutting down")
            self._purge()
            idle = len(self._threads) - self._busy
            if len(self._waiting) >= self.max_queue + idle:
                ahead = len(self._waiting) + self._running
                wait = max(1, math.ceil(self._mean_s * ahead / len(self._threads)))
                raise ServerBusyError(
                    f"the server is busy: {len(self._waiting)} requests are waiting; retry in {wait} s",
                    retry_after=wait,
                )
            self._waiting.append(job)
            self._cond.notify()
        return job

    # --- worker side ----------------------------------------------------------------------

    def _take(self, caps: Capabilities) -> list[Job] | None:
        """The oldest live job and the queued jobs that can share its pipeline call."""
        with self._cond:
            while True:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                first = self._waiting.popleft()
                if first.future.set_running_or_notify_cancel():
                    break
            taken, count = [first], first.params.num_images
            for job in list(self._waiting):
                if count >= caps.max_batch:
                    break
                if not joins(first.params, count, job.params, caps):
                    continue
                self._waiting.remove(job)
                if job.future.set_running_or_notify_cancel():
                    taken.append(job)
                    count += job.params.num_images
            self._running += len(taken)
            self._busy += 1
            return taken

    def _work(self, backend: Backend) -> None:
        caps = capabilities(backend)
        if self._warmup is not None and caps.loads:
            try:
                backend.load(self._warmup)  # type: ignore[attr-defined]
            except Exception as exc:  # each request reports it too
                self.warmup_exception = exc
                self.warmup_error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            self._ready_count += 1
            if self._ready_count == len(self._threads):
                self.ready.set()
        while (jobs := self._take(caps)) is not None:
            start = time.perf_counter()
            self._run(backend, jobs)
            elapsed = time.perf_counter() - start
            with self._cond:
                self._running -= len(jobs)
                self._busy -= 1
                self._done += len(jobs)
                self._mean_s = 0.8 * self._mean_s + 0.2 * (elapsed / len(jobs))

    @staticmethod
    def _generate(backend: Backend, jobs: list[Job]) -> list[GenerationResult | Exception]:
        """One ``generate_many`` call for ``jobs``, stopped early once all of them are abandoned;
        an error (raised or returned) is left at each job it hit."""
        kwargs: dict = {"return_errors": True}
        if capabilities(backend).step_progress:

            def stop_when_abandoned(_step: int, _total: int) -> None:
                if all(job.abandoned.is_set() for job in jobs):
                    raise JobAbandoned("the request was abandoned by its client")

            kwargs["on_step"] = stop_when_abandoned
        try:
            outcomes = list(backend.generate_many([j.params for j in jobs], **kwargs))
        except Exception as exc:
            return [exc] * len(jobs)
        if len(outcomes) != len(jobs):
            error = GenerationError(f"the backend answered {len(outcomes)} results for {len(jobs)} requests")
            return [error] * len(jobs)
        return outcomes

    @classmethod
    def _run(cls, backend: Backend, jobs: list[Job]) -> None:
        outcomes = cls._generate(backend, jobs)
        if len(jobs) > 1:
            # A shared pipeline call failed: run its failed members alone, so that one bad
            # request (one the tokenizer chokes on, say) does not fail the others.
            for i, (job, outcome) in enumerate(zip(jobs, outcomes, strict=True)):
                if isinstance(outcome, Exception) and not job.abandoned.is_set():
                    outcomes[i] = cls._generate(backend, [job])[0]
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.abandoned.is_set():  # nobody waits for it: skip encoding
                job.future.set_exception(JobAbandoned("the request was abandoned by its client"))
                continue
            if isinstance(outcome, Exception):
                job.future.set_exception(outcome if isinstance(outcome, SdkitError) else GenerationError(str(outcome)))
                continue
            try:
                output = JobOutput(outcome, encode_pngs(outcome), count_tokens(backend, job.params))
            except Exception as exc:
                job.future.set_exception(GenerationError(f"could not encode the images: {exc}"))
                continue
            job.future.set_result(output)
