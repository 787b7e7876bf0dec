"""Image APIs in their providers' official formats, behind the backend contract: ``stability``
(Stability AI's Stable Image API, :mod:`.stability`) and ``bfl`` (Black Forest Labs' Flux API,
:mod:`.bfl`), on the relay client's transport (:mod:`.http`), with loopback fakes (:mod:`.fakes`).

Ideogram and Recraft are listed by the relay index too, but their request shapes could not be pinned
down from the documents at hand (see the README); they are not backends yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdkit.backends.providers.bfl import FluxBackend
    from sdkit.backends.providers.stability import StabilityBackend

__all__ = ["create_bfl", "create_stability"]


def create_stability(
    *,
    base_url: str | None = None,
    api_key: Any = None,
    model: str | None = None,
    output_format: str | None = None,
    accept: str | None = None,
    style_preset: str | None = None,
    image: Any = None,
    strength: float | None = None,
    max_concurrency: int | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    limits: Any = None,
) -> StabilityBackend:
    """The registry's factory for kind ``stability`` (see :class:`~sdkit.StabilityBackend`)."""
    from sdkit.backends.providers.stability import StabilityBackend

    given = {k: v for k, v in locals().items() if v is not None and k != "StabilityBackend"}
    return StabilityBackend(given.pop("base_url", None), given.pop("api_key", None), **given)


def create_bfl(
    *,
    base_url: str | None = None,
    api_key: Any = None,
    model: str | None = None,
    output_format: str | None = None,
    safety_tolerance: int | None = None,
    prompt_upsampling: bool | None = None,
    auth: str | None = None,
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    poll_timeout: float | None = None,
    max_concurrency: int | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    limits: Any = None,
) -> FluxBackend:
    """The registry's factory for kind ``bfl`` (see :class:`~sdkit.FluxBackend`)."""
    from sdkit.backends.providers.bfl import FluxBackend

    given = {k: v for k, v in locals().items() if v is not None and k != "FluxBackend"}
    return FluxBackend(given.pop("base_url", None), given.pop("api_key", None), **given)
