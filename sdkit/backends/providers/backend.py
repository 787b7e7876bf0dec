"""What the provider backends share: one request per image, sent concurrently (a bound on those in
flight), assembled into :class:`~sdkit.GenerationResult` in the order asked.

A subclass says how to make one image (:meth:`ProviderBackend.make_one`, returning a :class:`Made`)
and what decides its pixels (:meth:`ProviderBackend.identity`). The seed a service reports is the
one recorded, so a remote image knows its seed; the raw replies go into ``details["raw_reply"]``,
which studies archive and ``verify`` reads back offline (:func:`reply_images`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, ClassVar

from sdkit.backends.base import Capabilities, ResultCallback
from sdkit.backends.providers.http import ProviderClient
from sdkit.backends.relay.apirequest import api_model
from sdkit.backends.relay.reply import check_image, decode_image
from sdkit.errors import SdkitError, ValidationError
from sdkit.params import GenerationParams
from sdkit.result import GenerationResult, Timings
from sdkit.secret import public_url

__all__ = ["DEFAULT_MAX_CONCURRENCY", "Made", "ProviderBackend", "reply_images"]

DEFAULT_MAX_CONCURRENCY = 4


@dataclass(frozen=True, repr=False)
class Made:
    """One image from a service: its bytes, the seed the service reports (None: not reported), the raw
    replies (text, key scrubbed; image bytes when the reply was the image), the request id, tries and
    whatever else the backend records."""

    data: bytes
    seed: int | None
    raw: tuple[str | bytes, ...]
    request_id: str | None
    attempts: int
    elapsed_s: float
    extra: dict[str, Any]


@dataclass(frozen=True)
class _Job:
    index: int
    part: int
    seed: int


class ProviderBackend:
    """The shared machinery; ``name``, :meth:`make_one` and :meth:`identity` come from the subclass."""

    name: ClassVar[str]
    #: The model sent when ``params.model`` names an embedded local model (the default ``tiny``).
    default_model: ClassVar[str]
    #: It refuses what the service cannot take (an unknown model, a seed out of range) before any request
    #: (``check``); a service cannot promise the same pixels twice, so it is not ``regenerable``: ``verify``
    #: checks a study's archived replies instead of making the images again.
    capabilities = Capabilities(checks_params=True)

    def __init__(self, client: ProviderClient, *, model: str | None, max_concurrency: int) -> None:
        if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ValidationError("max_concurrency", max_concurrency, "must be an integer ≥ 1")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ValidationError("model", model, "must be a model name")
        self.client = client
        self.model = model or self.default_model
        self.max_concurrency = max_concurrency

    def remote_model(self, params: GenerationParams) -> str:
        """The model asked for ``params``: ``params.model``, or this backend's for an embedded name."""
        return api_model(params, self.model)

    def _base_identity(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": public_url(self.client.base_url)}

    def __repr__(self) -> str:
        url = self.client.scrub(self.client.base_url)
        key = "set" if self.client.has_key else "none"
        return f"<{type(self).__name__} base_url={url!r} model={self.model!r} api_key={key}>"

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- for subclasses ---
    def check_one(self, params: GenerationParams) -> None:
        """Refuse ``params`` before any network work (a ValidationError naming field and value)."""

    def make_one(self, params: GenerationParams, seed: int) -> Made:
        raise NotImplementedError

    def check(self, params: Sequence[GenerationParams]) -> None:
        """Refuse, before any request, parameters the service cannot take (a ValidationError naming
        field and value); sweeps, studies and the CLI call it first."""
        for p in params:
            self.check_one(p)

    # --- generation ---
    def generate(self, params: GenerationParams) -> GenerationResult:
        return self.generate_many([params])[0]  # type: ignore[return-value]

    def generate_many(
        self,
        params: Sequence[GenerationParams],
        *,
        on_result: ResultCallback | None = None,
        return_errors: bool = False,
    ) -> list[GenerationResult | Exception]:
        """One request per image, at most ``max_concurrency`` in flight; results in the order asked.
        As :meth:`sdkit.RemoteBackend.generate_many`: ``on_result`` as each is done, ``return_errors``
        leaves a failure at its index, otherwise nothing new is sent after the first failure."""
        results: list[GenerationResult | Exception | None] = [None] * len(params)
        jobs: list[list[_Job]] = []
        for i, p in enumerate(params):
            if not isinstance(p, GenerationParams):
                raise ValidationError(f"params[{i}]", p, "must be a GenerationParams")
            try:
                self.check_one(p)
            except ValidationError as exc:
                if not return_errors:
                    raise
                results[i] = exc
            jobs.append([_Job(i, k, s) for k, s in enumerate(p.seeds)] if results[i] is None else [])
        made: list[dict[int, Made]] = [{} for _ in params]
        start = time.perf_counter()
        stop = threading.Event()
        first_error: Exception | None = None
        for i, outcome in enumerate(results):
            if outcome is not None and on_result is not None:
                on_result(i, outcome)

        def run(job: _Job) -> Made | None:
            if stop.is_set():
                return None
            try:
                return self.make_one(params[job.index], job.seed)
            except SdkitError:
                if not return_errors:
                    stop.set()
                raise

        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix=f"sdkit-{self.name}") as pool:
            futures: dict[Future, _Job] = {pool.submit(run, job): job for js in jobs for job in js}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=lambda f: (futures[f].index, futures[f].part)):
                        job = futures[future]
                        if results[job.index] is not None or future.cancelled():
                            continue
                        try:
                            one = future.result()
                            if one is None:
                                continue
                            made[job.index][job.part] = one
                            if len(made[job.index]) < len(jobs[job.index]):
                                continue
                            outcome: GenerationResult | Exception = self._assemble(
                                params[job.index], jobs[job.index], made[job.index], start
                            )
                        except SdkitError as exc:
                            outcome = exc
                        results[job.index] = outcome
                        if on_result is not None:
                            on_result(job.index, outcome)
                        if isinstance(outcome, Exception) and not return_errors and first_error is None:
                            first_error = outcome
                            stop.set()
                            for f in pending:
                                f.cancel()
            except BaseException:
                stop.set()
                for f in futures:
                    f.cancel()
                raise
        if first_error is not None:
            raise first_error
        return results  # type: ignore[return-value]

    def _assemble(
        self, params: GenerationParams, jobs: list[_Job], made: dict[int, Made], start: float
    ) -> GenerationResult:
        limits = self.client.limits
        images, seeds = [], []
        for job in jobs:
            one = made[job.part]
            check_image(one.data, max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels, where="")
            images.append(decode_image(one.data, max_pixels=limits.max_image_pixels))
            seeds.append(one.seed)
        scrub = self.client.scrub
        model = self.remote_model(params)
        ordered = [made[j.part] for j in jobs]
        details: dict[str, Any] = {
            "api": self.name,
            "base_url": scrub(self.client.base_url),
            "model": model,
            "requests": len(jobs),
            "request_ids": [scrub(m.request_id) if m.request_id else None for m in ordered],
            "attempts": [m.attempts for m in ordered],
            "seeds_sent": [j.seed for j in jobs],
            "image_sizes": [list(im.size) for im in images],
            **{k: [m.extra.get(k) for m in ordered] for k in sorted({k for m in ordered for k in m.extra})},
            "raw_reply": tuple(r if isinstance(r, bytes) else scrub(r, patterns=False) for m in ordered for r in m.raw),
            "elapsed_s": time.perf_counter() - start,
        }
        return GenerationResult(
            params=params.replace(model=model),
            images=tuple(images),
            seeds=tuple(seeds),
            model=model,
            backend=self.name,
            timings=Timings(load_s=0.0, generate_s=max(m.elapsed_s for m in ordered)),
            details=details,
        )


_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")


def reply_images(raw: bytes) -> list[bytes]:
    """The images an archived provider reply carries itself: the reply when it is an image (Stability's
    ``Accept: image/*``), the base64 ``image`` of a JSON reply (Stability's ``application/json``);
    none for a reply that only links its image (Flux's expiring ``result.sample``)."""
    if raw.startswith(_MAGIC):
        return [raw]
    try:
        data = json.loads(raw)
    except ValueError as exc:
        from sdkit.errors import ReplyError

        raise ReplyError(f"the archived reply is neither an image nor JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("image"), str):
        return [base64.b64decode(data["image"])]
    return []
