"""What the provider backends share with the relay client: bounded reads, one deadline per try,
retries with ``Retry-After``, the key scrubbed from every message, plus a multipart encoder.

:class:`ProviderClient` is the relay's :class:`~sdkit.Client` with the request made by the caller (any
method, URL, headers and body) instead of a chat or images request, and credentials looked up per
provider: the argument, then the provider's own variable (``STABILITY_API_KEY``), then
``SDKIT_API_KEY``; the base URL from the argument, then the provider's variable
(``STABILITY_BASE_URL``), then the provider's public host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdkit.backends.relay.client import IMAGE_HEADERS, Client, _request_id
from sdkit.backends.relay.credentials import KEY_VARS, _colab_secret
from sdkit.backends.relay.multipart import multipart
from sdkit.errors import ValidationError
from sdkit.secret import Secret

__all__ = ["ProviderClient", "Response", "multipart", "provider_key", "provider_url"]


def provider_url(base_url: str | None, env_var: str, default: str, *, environ: Mapping[str, str] | None = None) -> str:
    """The base URL: ``base_url``, else ``$env_var``, else the provider's public ``default``."""
    env = os.environ if environ is None else environ
    value = base_url if base_url is not None else (env.get(env_var, "").strip() or default)
    if not isinstance(value, str) or not value.strip().lower().startswith(("http://", "https://")):
        raise ValidationError("base_url", value, "must start with http:// or https://")
    return value.strip().rstrip("/")


def provider_key(
    api_key: Secret | str | None, env_var: str, *, environ: Mapping[str, str] | None = None
) -> Secret | str:
    """The key: ``api_key``, else ``$env_var`` (``STABILITY_API_KEY``), else ``SDKIT_API_KEY`` (or a Colab
    secret of either name); ``""`` (send none) when there is none."""
    if api_key is not None:
        return Secret(api_key)
    env = os.environ if environ is None else environ
    for name in (env_var, KEY_VARS[0]):
        value = env.get(name, "").strip() or _colab_secret(name)
        if value:
            return Secret(value.strip())
    return ""


@dataclass(frozen=True, repr=False)
class Response:
    """A 2xx reply: headers, body (bounded), text (key scrubbed), request id, tries and seconds."""

    headers: Mapping[str, str]
    body: bytes
    text: str
    request_id: str | None
    attempts: int
    elapsed_s: float

    def header(self, name: str) -> str | None:
        lower = {k.lower(): v for k, v in self.headers.items()}
        return lower.get(name.lower())

    def __repr__(self) -> str:
        return f"<Response {len(self.body)} bytes, {self.attempts} attempt(s)>"


class ProviderClient(Client):
    """The relay client's transport, limits, deadline and retries for a provider's own request shapes."""

    def __init__(self, base_url: str, api_key: Secret | str, **options: Any) -> None:
        super().__init__(base_url, api_key if api_key is not None else "", **options)

    def key(self) -> str | None:
        """The key itself, for the caller's auth header (never logged: every message is scrubbed of it)."""
        return self._api_key.reveal() if self._api_key is not None else None

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
        *,
        image: bool = False,
    ) -> Response:
        """One request with retries; a 2xx :class:`Response`, else the typed :class:`~sdkit.APIError`.
        ``image``: the body is an image (bounded by ``max_image_bytes``), else a reply (``max_reply_bytes``)."""
        budget = self._image_budget() if image else self._reply_budget(None)  # type: ignore[arg-type]
        start = time.perf_counter()
        response_headers, body, text, attempts = self._send(method, url, headers, content, budget)
        text = self.scrub(text, patterns=False)
        rid = _request_id(response_headers, *self._secrets)
        return Response(dict(response_headers), body, text, rid, attempts, time.perf_counter() - start)

    def fetch_image(self, url: str) -> Response:
        """GET an image URL (a signed, expiring one) at once, without any credential."""
        return self.request("GET", url, IMAGE_HEADERS, image=True)
