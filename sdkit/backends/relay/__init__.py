"""The ``chat`` and ``images`` backends: Stable Diffusion through an OpenAI-style API (a relay).

Requests as values (:mod:`.apirequest`), the HTTP clients (:mod:`.client`) with their bounds
(:mod:`.limits`), retries (:mod:`.retry`) and credentials (:mod:`.credentials`), reply parsing
(:mod:`.reply`), the backend (:mod:`.remote`), snippets (:mod:`.snippet`) and a fake relay for tests
and notebooks (:mod:`.fakerelay`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdkit.backends.relay.remote import RemoteBackend

__all__ = ["create_chat", "create_images"]


def create_chat(
    *,
    base_url: str | None = None,
    api_key: Any = None,
    model: str | None = None,
    sd_extras: bool = False,
    max_concurrency: int | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    limits: Any = None,
) -> RemoteBackend:
    """The registry's factory for kind ``chat`` (see :class:`~sdkit.RemoteBackend` for the options)."""
    return _remote("chat", locals())


def create_images(
    *,
    base_url: str | None = None,
    api_key: Any = None,
    model: str | None = None,
    sd_extras: bool = False,
    max_concurrency: int | None = None,
    response_format: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    limits: Any = None,
) -> RemoteBackend:
    """The registry's factory for kind ``images`` (see :class:`~sdkit.RemoteBackend` for the options)."""
    return _remote("images", locals())


def _remote(kind: str, options: dict[str, Any]) -> RemoteBackend:
    from sdkit.backends.relay.remote import RemoteBackend

    given = {k: v for k, v in options.items() if v is not None}
    return RemoteBackend(kind, given.pop("base_url", None), given.pop("api_key", None), **given)
