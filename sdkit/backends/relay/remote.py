"""The remote backend: generation parameters → API request → :class:`~sdkit.GenerationResult`.

Behind the same :class:`~sdkit.Backend` interface as the local pipeline, so sweeps, grids and
studies never ask which one they hold. ``name`` is ``"chat"`` (``/v1/chat/completions``, one
request per image) or ``"images"`` (``/v1/images/generations``, one request with ``n`` images, or
one per image when SD extras are sent so that each image's seed is known). With an ``init_image`` (img2img) the
images backend sends ``/v1/images/edits`` instead, the picture as a PNG file part and ``denoising_strength``
as ``strength``; the chat API has no image input and refuses it.

Seeds: a remote seed is only known when it was sent (``sd_extras=True``), and even then nothing
guarantees the relay used it; otherwise the result's seeds are None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sdkit.backends.base import Capabilities, ResultCallback
from sdkit.backends.relay.apirequest import (
    DEFAULT_API_MODEL,
    RESPONSE_FORMATS,
    ChatRequest,
    ImageEditRequest,
    ImagesRequest,
    SDExtras,
    api_model,
)
from sdkit.backends.relay.client import APIReply, Client
from sdkit.backends.relay.limits import Limits
from sdkit.backends.relay.retry import DEFAULT_TIMEOUT, RetryPolicy
from sdkit.errors import SdkitError, ValidationError
from sdkit.params import GenerationParams
from sdkit.result import GenerationResult, Timings
from sdkit.secret import Secret, public_url

__all__ = ["DEFAULT_MAX_CONCURRENCY", "REMOTE_BACKENDS", "RemoteBackend"]

REMOTE_BACKENDS = ("chat", "images")
DEFAULT_MAX_CONCURRENCY = 8


@dataclass(frozen=True)
class _Job:
    index: int  # which params
    part: int  # which request of those params
    request: ChatRequest | ImagesRequest | ImageEditRequest
    seed: int | None  # the seed sent, if any


class RemoteBackend:
    """Generate through an OpenAI-style Stable Diffusion API.

    ``model`` is used when ``params.model`` names an embedded local model (the default ``tiny``);
    any other ``params.model`` is sent as it is. ``sd_extras=True`` sends seed, negative prompt,
    steps, guidance and size as top-level fields (some relays read them, others refuse them).
    ``max_concurrency`` bounds the requests in flight in :meth:`generate_many`.
    ``response_format`` (images only) is ``"b64_json"`` or ``"url"`` (left out by default).
    ``timeout`` and ``limits`` bound each request and what the relay may send (see :class:`~sdkit.Client`).
    """

    def __init__(
        self,
        name: str = "chat",
        base_url: str | None = None,
        api_key: Secret | str | None = None,
        *,
        client: Client | None = None,
        model: str = DEFAULT_API_MODEL,
        sd_extras: bool = False,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        response_format: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        if name not in REMOTE_BACKENDS:
            raise ValidationError("backend", name, f"must be one of {', '.join(REMOTE_BACKENDS)}")
        if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ValidationError("max_concurrency", max_concurrency, "must be an integer ≥ 1")
        if not isinstance(model, str) or not model.strip():
            raise ValidationError("model", model, "must be a model name")
        if response_format is not None and name != "images":
            raise ValidationError("response_format", response_format, "only the images backend takes it")
        if response_format not in (None, *RESPONSE_FORMATS):
            raise ValidationError("response_format", response_format, "must be 'url' or 'b64_json'")
        self.name = name
        self.model = model
        self.sd_extras = bool(sd_extras)
        self.max_concurrency = max_concurrency
        self.response_format = response_format
        self._owns_client = client is None
        self.client = client or Client(
            base_url, api_key, timeout=timeout, retry=retry, max_retries=max_retries, limits=limits
        )

    #: Nothing beyond the contract: requests go out concurrently, and a service cannot promise the same
    #: pixels twice, so ``verify`` checks a remote study's archived replies instead of remaking them.
    #: ``check`` refuses what the API has no field for (variation seeds, hires fix; init images on chat).
    capabilities = Capabilities(checks_params=True)

    def check(self, params: Sequence[GenerationParams]) -> None:
        """Refuse, before any request, what this API cannot be asked for: it takes a prompt (and SD extras),
        no variation seed or hires pass, and only the images API an init image; sent without them the images
        would silently be plain txt2img. An init image must be known here (its picture is uploaded)."""
        for p in params:
            refuse_image_modes(self.name, p)

    def identity(self) -> dict[str, Any]:
        """The API, its base URL (without credentials, query or fragment), the model sent for embedded
        names, and the request options that change what comes back."""
        ident: dict[str, Any] = {"model": self.model, "sd_extras": self.sd_extras}
        if self.response_format is not None:
            ident["response_format"] = self.response_format
        ident["base_url"] = public_url(self.client.base_url)
        return ident

    def __repr__(self) -> str:
        return (
            f"<RemoteBackend {self.name!r} base_url={self.client.scrub(self.client.base_url)!r} model={self.model!r} "
            f"sd_extras={self.sd_extras} max_concurrency={self.max_concurrency}>"
        )

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RemoteBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- pure planning ---
    def remote_model(self, params: GenerationParams) -> str:
        """The model name sent for ``params``."""
        return api_model(params, self.model)

    def requests_for(
        self, params: GenerationParams
    ) -> list[tuple[ChatRequest | ImagesRequest | ImageEditRequest, int | None]]:
        """The requests that make ``params`` and the seed each one sends (None when not sent)."""
        refuse_image_modes(self.name, params)
        model = self.remote_model(params)
        if self.name == "chat":
            out: list[tuple[ChatRequest | ImagesRequest | ImageEditRequest, int | None]] = []
            for seed in params.seeds:
                extras = SDExtras.from_params(params, seed=seed) if self.sd_extras else None
                out.append(
                    (ChatRequest.from_prompt(params.prompt, model=model, extras=extras), seed if extras else None)
                )
            return out
        fmt = self.response_format
        kind = ImagesRequest if params.init_image is None else ImageEditRequest
        if self.sd_extras:
            return [
                (kind.from_params(params, model=model, sd_extras=True, n=1, seed=s, response_format=fmt), s)
                for s in params.seeds
            ]
        return [(kind.from_params(params, model=model, response_format=fmt), None)]

    # --- generation ---
    def generate(self, params: GenerationParams) -> GenerationResult:
        """Make ``params.num_images`` images through the API."""
        return self.generate_many([params])[0]  # type: ignore[return-value]

    def generate_many(
        self,
        params: Sequence[GenerationParams],
        *,
        on_result: ResultCallback | None = None,
        return_errors: bool = False,
    ) -> list[GenerationResult | Exception]:
        """Send every request concurrently (at most ``max_concurrency`` in flight); results in the order asked.

        ``on_result(index, result_or_error)`` is called (in this thread) as each set of params is
        done. With ``return_errors=True`` a failure stays at its index and the rest goes on;
        otherwise requests not yet started are cancelled, those in flight finish (and are still
        reported to ``on_result``), and the first error is raised.
        """
        for i, p in enumerate(params):
            if not isinstance(p, GenerationParams):
                raise ValidationError(f"params[{i}]", p, "must be a GenerationParams")
        by_index = [
            [_Job(i, k, req, seed) for k, (req, seed) in enumerate(self.requests_for(p))] for i, p in enumerate(params)
        ]
        replies: list[dict[int, APIReply]] = [{} for _ in params]
        results: list[GenerationResult | Exception | None] = [None] * len(params)
        start = time.perf_counter()
        first_error: Exception | None = None

        stop = threading.Event()  # set at the first failure unless return_errors: nothing new is sent

        def send(request: ChatRequest | ImagesRequest | ImageEditRequest) -> APIReply | None:
            if stop.is_set():
                return None
            try:
                return self.client.send(request)
            except SdkitError:
                if not return_errors:
                    stop.set()  # here, in the worker, before it can take the next request
                raise

        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="sdkit-remote") as pool:
            futures: dict[Future, _Job] = {pool.submit(send, job.request): job for jobs in by_index for job in jobs}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=lambda f: (futures[f].index, futures[f].part)):
                        job = futures[future]
                        if results[job.index] is not None or future.cancelled():
                            continue
                        outcome = self._outcome(future, job, by_index[job.index], replies[job.index], params, start)
                        if outcome is None:  # more requests of these params to come, or skipped
                            continue
                        results[job.index] = outcome
                        if on_result is not None:
                            on_result(job.index, outcome)
                        if isinstance(outcome, Exception) and not return_errors and first_error is None:
                            first_error = outcome
                            stop.set()
                            for f in pending:
                                f.cancel()
            except BaseException:  # Ctrl-C, or an error raised by on_result: send nothing more
                stop.set()
                for f in futures:
                    f.cancel()
                raise
        if first_error is not None:
            raise first_error
        return results  # type: ignore[return-value]

    def _outcome(
        self,
        future: Future,
        job: _Job,
        jobs: list[_Job],
        replies: dict[int, APIReply],
        params: Sequence[GenerationParams],
        start: float,
    ) -> GenerationResult | Exception | None:
        """The result of ``job``'s params once all its requests are in, its error, or None for not yet."""
        try:
            reply = future.result()
            if reply is None:  # skipped after a failure
                return None
            replies[job.part] = reply
            if len(replies) < len(jobs):
                return None
            return self._assemble(params[job.index], jobs, replies, start)
        except SdkitError as exc:
            return exc

    def _assemble(
        self, params: GenerationParams, jobs: list[_Job], replies: dict[int, APIReply], start: float
    ) -> GenerationResult:
        images: list[Any] = []
        seeds: list[int | None] = []
        shapes: list[str] = []
        urls: list[str | None] = []
        for job in jobs:
            reply = replies[job.part]
            for k, fetched in enumerate(reply.images):
                images.append(fetched.to_pil())
                seeds.append(job.seed if k == 0 else None)
                shapes.append(fetched.shape)
                urls.append(fetched.url)
        scrub = self.client.scrub
        model = self.remote_model(params)
        details = {
            "api": self.name,
            "base_url": scrub(self.client.base_url),
            "endpoint": jobs[0].request.path,
            "model": model,
            "sd_extras": self.sd_extras,
            "requests": len(jobs),
            "request_ids": [scrub(r) if (r := replies[j.part].request_id) else None for j in jobs],
            "attempts": [replies[j.part].attempts for j in jobs],
            "image_sources": shapes,
            "image_urls": [scrub(u) if u else None for u in urls],
            "image_sizes": [list(im.size) for im in images],
            "raw_reply": tuple(scrub(replies[j.part].raw, patterns=False) for j in jobs),
            "elapsed_s": time.perf_counter() - start,
        }
        return GenerationResult(
            params=params.replace(model=model),
            images=tuple(images),
            seeds=tuple(seeds),
            model=model,
            backend=self.name,
            timings=Timings(load_s=0.0, generate_s=max(r.elapsed_s for r in replies.values())),
            details=details,
        )


def refuse_image_modes(backend: str, params: GenerationParams) -> None:
    """A :class:`ValidationError` naming the first field the ``backend`` API cannot send."""
    if params.init_image is not None:
        if backend != "images":
            raise ValidationError(
                "init_image",
                params.init_image,
                f"the {backend} API takes no input image: use the images backend (it sends /v1/images/edits)"
                " or the local one for img2img",
            )
        from sdkit.initimage import load_init_image

        load_init_image(params.init_image)  # a key this machine has never seen is refused here, naming the field
    if params.variation_strength > 0:
        raise ValidationError(
            "variation_strength", params.variation_strength, f"the {backend} API has no variation seed"
        )
    if params.hires_scale > 1:
        raise ValidationError("hires_scale", params.hires_scale, f"the {backend} API has no hires fix")
