"""The ``bfl`` backend: Black Forest Labs' Flux API in its official format.

``POST {base_url}/v1/{model}`` (``flux-pro-1.1``, ``flux-dev``, ``flux-pro``, ``flux-pro-1.1-ultra``, …)
with JSON ``{prompt, width, height | aspect_ratio, seed, output_format, …}`` and the key in ``x-key``
(relays: ``Authorization: Bearer``) → ``{id, polling_url}``. ``polling_url`` is polled (backoff from
``poll_interval`` up to ``max_poll_interval``) until ``Ready``, when ``result.sample`` is a signed URL
that expires: it is fetched at once, without the key. ``Request Moderated`` and ``Content Moderated``
are a :class:`~sdkit.ModerationError`; ``Error``, ``Failed`` and ``Task not found`` a
:class:`~sdkit.TaskFailedError`; a task not ready within ``poll_timeout`` an :class:`~sdkit.APITimeoutError`.

The key goes to ``polling_url`` only when it is on the base URL's host or, from the public API, on a
``bfl.ai`` host (regional hosts); anywhere else it is polled without it.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from sdkit.backends.providers.backend import DEFAULT_MAX_CONCURRENCY, Made, ProviderBackend
from sdkit.backends.providers.http import ProviderClient, provider_key, provider_url
from sdkit.backends.providers.stability import aspect_ratio
from sdkit.backends.relay.limits import Limits
from sdkit.backends.relay.retry import DEFAULT_TIMEOUT
from sdkit.errors import APITimeoutError, ModerationError, ReplyError, TaskFailedError, ValidationError
from sdkit.params import GenerationParams
from sdkit.secret import Secret

__all__ = ["DEFAULT_BASE_URL", "FluxBackend", "flux_body"]

DEFAULT_BASE_URL = "https://api.bfl.ai"
BASE_URL_VAR = "BFL_BASE_URL"
KEY_VAR = "BFL_API_KEY"
OUTPUT_FORMATS = ("png", "jpeg")
AUTH = ("x-key", "bearer", "both")
MODERATED = ("Request Moderated", "Content Moderated")
FAILED = ("Error", "Failed", "Task not found")
PENDING = ("Pending", "Queued", "Processing")
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_MAX_POLL_INTERVAL = 4.0
DEFAULT_POLL_TIMEOUT = 300.0
MAX_FLUX_SEED = 2**32 - 1


def is_ultra(model: str) -> bool:
    """The ultra models take ``aspect_ratio`` instead of a size."""
    return "ultra" in model


def flux_body(
    params: GenerationParams,
    seed: int,
    *,
    model: str,
    output_format: str = "png",
    safety_tolerance: int | None = None,
    prompt_upsampling: bool | None = None,
) -> dict[str, Any]:
    """The JSON body of one request (pure)."""
    body: dict[str, Any] = {"prompt": params.prompt}
    if is_ultra(model):
        body["aspect_ratio"] = aspect_ratio(params.width, params.height)
    else:
        if params.width:
            body["width"] = params.width
        if params.height:
            body["height"] = params.height
    body["seed"] = seed
    body["output_format"] = output_format
    if safety_tolerance is not None:
        body["safety_tolerance"] = safety_tolerance
    if prompt_upsampling is not None:
        body["prompt_upsampling"] = prompt_upsampling
    return body


class FluxBackend(ProviderBackend):
    """Images from Black Forest Labs' Flux models (or a relay serving their format).

    ``model`` (default ``flux-dev``) is used when ``params.model`` names an embedded model; any other
    ``params.model`` is asked for as it is. ``auth``: ``x-key`` (the public API's header), ``bearer`` or
    ``both``; default ``x-key`` for a ``bfl.ai`` host and ``both`` for a relay. ``poll_timeout`` bounds
    one task from submission to its image; ``max_concurrency`` the tasks in flight.
    """

    name = "bfl"
    default_model = "flux-dev"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: Secret | str | None = None,
        *,
        model: str | None = None,
        output_format: str = "png",
        safety_tolerance: int | None = None,
        prompt_upsampling: bool | None = None,
        auth: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValidationError("output_format", output_format, f"must be one of {', '.join(OUTPUT_FORMATS)}")
        if safety_tolerance is not None and safety_tolerance not in range(7):
            raise ValidationError("safety_tolerance", safety_tolerance, "must be an integer from 0 to 6")
        if auth is not None and auth not in AUTH:
            raise ValidationError("auth", auth, f"must be one of {', '.join(AUTH)}")
        for name, value in (
            ("poll_interval", poll_interval),
            ("max_poll_interval", max_poll_interval),
            ("poll_timeout", poll_timeout),
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):
                raise ValidationError(name, value, "must be a finite number of seconds > 0")
        client = ProviderClient(
            provider_url(base_url, BASE_URL_VAR, DEFAULT_BASE_URL),
            provider_key(api_key, KEY_VAR),
            timeout=timeout,
            max_retries=max_retries,
            limits=limits,
        )
        super().__init__(client, model=model, max_concurrency=max_concurrency)
        host = urlsplit(client.base_url).hostname or ""
        self._public = host == "bfl.ai" or host.endswith(".bfl.ai")
        self.auth = auth or ("x-key" if self._public else "both")
        self.output_format = output_format
        self.safety_tolerance = safety_tolerance
        self.prompt_upsampling = prompt_upsampling
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max(max_poll_interval, poll_interval))
        self.poll_timeout = float(poll_timeout)

    def identity(self) -> dict[str, Any]:
        ident = {**self._base_identity(), "output_format": self.output_format}
        if self.safety_tolerance is not None:
            ident["safety_tolerance"] = self.safety_tolerance
        if self.prompt_upsampling is not None:
            ident["prompt_upsampling"] = self.prompt_upsampling
        return ident

    def check_one(self, params: GenerationParams) -> None:
        model = self.remote_model(params)
        if not model.replace("-", "").replace(".", "").replace("_", "").isalnum():
            raise ValidationError("model", model, "must be a Flux model name such as flux-dev or flux-pro-1.1")
        if not params.prompt.strip():
            raise ValidationError("prompt", params.prompt, "Flux needs a prompt")

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        key = self.client.key()
        if key and self._trusted(url):
            if self.auth in ("x-key", "both"):
                headers["x-key"] = key
            if self.auth in ("bearer", "both"):
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def _trusted(self, url: str) -> bool:
        """Whether the key may go to ``url``: the base URL's own host, or a bfl.ai host from the public API."""
        base, there = urlsplit(self.client.base_url), urlsplit(url)
        if (there.scheme, there.hostname, there.port) == (base.scheme, base.hostname, base.port):
            return True
        host = there.hostname or ""
        return self._public and there.scheme == "https" and (host == "bfl.ai" or host.endswith(".bfl.ai"))

    def make_one(self, params: GenerationParams, seed: int) -> Made:
        model = self.remote_model(params)
        body = flux_body(
            params,
            seed,
            model=model,
            output_format=self.output_format,
            safety_tolerance=self.safety_tolerance,
            prompt_upsampling=self.prompt_upsampling,
        )
        url = f"{self.client.base_url}/v1/{model}"
        headers = {**self._headers(url), "Content-Type": "application/json"}
        start = time.monotonic()
        submitted = self.client.request("POST", url, headers, json.dumps(body).encode())
        task = _json(submitted.text, "the reply to the submission")
        task_id = task.get("id") if isinstance(task.get("id"), str) else None
        polling_url = task.get("polling_url")
        if not isinstance(polling_url, str) or not polling_url:
            if task_id is None:
                raise ReplyError("the reply to the submission has neither polling_url nor id", submitted.text)
            polling_url = f"{self.client.base_url}/v1/get_result?id={task_id}"
        if not polling_url.lower().startswith(("http://", "https://")):
            raise ReplyError(f"polling_url {polling_url[:100]!r} is not an http(s) URL", submitted.text)
        attempts = submitted.attempts
        wait = self.poll_interval
        polls = 0
        while True:
            if time.monotonic() - start > self.poll_timeout:
                raise APITimeoutError(
                    f"Flux task {task_id} not ready within poll_timeout={self.poll_timeout:g} s; "
                    "raise it with create_backend('bfl', poll_timeout=…)"
                )
            polled = self.client.request("GET", polling_url, self._headers(polling_url))
            polls += 1
            attempts += polled.attempts
            state = _json(polled.text, "the polling reply")
            status = state.get("status")
            if status == "Ready":
                break
            if status in MODERATED:
                raise ModerationError(
                    f"Flux task {task_id}: {status}", reason=str(status), request_id=task_id, raw=polled.text
                )
            if status in FAILED or status not in PENDING:
                said = str(state.get("result") or state.get("details"))[:200]
                raise TaskFailedError(
                    f"Flux task {task_id} ended as {status!r}: {said}",
                    status=str(status),
                    task_id=task_id,
                    raw=polled.text,
                )
            time.sleep(min(wait, max(0.0, self.poll_timeout - (time.monotonic() - start))))
            wait = min(wait * 1.5, self.max_poll_interval)
        result = state.get("result")
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample.lower().startswith(("http://", "https://")):
            raise ReplyError("the Ready reply has no result.sample URL", polled.text)
        image = self.client.fetch_image(sample)  # a signed URL that expires: fetched at once, without the key
        reported = result.get("seed") if isinstance(result, dict) else None
        got = reported if isinstance(reported, int) and not isinstance(reported, bool) else None
        return Made(
            data=image.body,
            seed=got if got is not None else seed,
            raw=(submitted.text, polled.text),
            request_id=task_id or submitted.request_id,
            attempts=attempts + image.attempts,
            elapsed_s=time.monotonic() - start,
            extra={"polls": polls, "image_url": self.client.scrub(sample.split("?", 1)[0])},
        )


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ReplyError(f"{what} is not JSON", text) from None
    if not isinstance(data, dict):
        raise ReplyError(f"{what} is not a JSON object", text)
    return data
