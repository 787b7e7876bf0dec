"""The backend contract: what sweeps, studies, the server, the widgets and the CLI may rely on, and nothing more.

A backend is any object with these four members (a :class:`typing.Protocol`: no base class to inherit)::

    name: str                                   # its kind: "local", "chat", "images", or a kind of your own
    identity() -> dict                          # JSON-able: everything besides GenerationParams that decides pixels
    generate(params) -> GenerationResult
    generate_many(params, *, on_result=None, return_errors=False) -> list[GenerationResult | Exception]

What a backend can do beyond that is *declared* in an optional ``capabilities`` attribute (a frozen
:class:`Capabilities`), never probed: batching (how many images one call makes together, and which
requests may share a call), warm-up (a ``load(model)`` method), per-step progress (``generate`` and
``generate_many`` take ``on_step``), and whether ``verify`` can make its images again from the parameters.
A backend without the attribute has :data:`NO_CAPABILITIES`. :func:`capabilities` is the one place that
reads it.

:func:`identity` is what cache keys and manifests record: a backend's own :meth:`Backend.identity` with
``name`` and ``batching`` filled in. Two backends with equal identities make the same pixels from the
same parameters, so a sweep re-run finds its images in the cache; any change to a pixel-deciding
setting changes the identity and the images are made again.

Writing a backend: ``tests/backends/conformance.py`` is the contract as tests (a mixin every built-in
backend runs); subclass it for yours.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sdkit.errors import ValidationError

if TYPE_CHECKING:
    from sdkit.params import GenerationParams
    from sdkit.result import GenerationResult

__all__ = [
    "NO_CAPABILITIES",
    "Backend",
    "BatchKey",
    "Capabilities",
    "ResultCallback",
    "StepCallback",
    "capabilities",
    "check",
    "identity",
]

#: Called as ``callback(step, total_steps)`` while a pipeline runs.
StepCallback = Callable[[int, int], None]

#: Called as ``callback(index, result_or_error)`` as soon as request ``index`` is done.
ResultCallback = Callable[[int, "GenerationResult | Exception"], None]

#: Requests whose keys are equal may share one call (see :attr:`Capabilities.batch_key`).
BatchKey = Callable[["GenerationParams"], Hashable]


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares it can do beyond the contract.

    ``max_batch``: the most images one call makes together (1: no batching). Batching can change pixels
    by float rounding, so it is part of the identity.
    ``batch_key``: requests with equal keys may share a call (None: any may, up to ``max_batch``).
    ``loads``: the backend has ``load(model)``, called to warm up before the first request.
    ``step_progress``: ``generate(params, on_step=…)`` and ``generate_many(…, on_step=…)`` report steps.
    ``regenerable``: the same parameters and identity make the same pixels again, so ``verify`` can
    remake its images (a remote service cannot promise that; its studies keep the raw replies instead).
    ``checks_params``: the backend has ``check(params_list)``, which refuses what it cannot make (an
    unknown model, say) with a :class:`~sdkit.ValidationError` before any work; sweeps, studies and the
    CLI call it first.
    """

    max_batch: int = 1
    batch_key: BatchKey | None = None
    loads: bool = False
    step_progress: bool = False
    regenerable: bool = False
    checks_params: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch, int) or isinstance(self.max_batch, bool) or self.max_batch < 1:
            raise ValidationError("max_batch", self.max_batch, "must be a positive integer")


NO_CAPABILITIES = Capabilities()


@runtime_checkable
class Backend(Protocol):
    """Makes images from :class:`~sdkit.GenerationParams`."""

    #: Its kind, as registered: ``"local"``, ``"chat"``, ``"images"`` or one of your own.
    name: str

    def identity(self) -> dict[str, Any]:
        """Everything besides the parameters that decides the pixels (device, dtype, service URL, …),
        as JSON-able values and never a credential. Cache keys and manifests record it."""
        ...

    def generate(self, params: GenerationParams) -> GenerationResult:
        """Make ``params.num_images`` images."""
        ...

    def generate_many(
        self,
        params: Sequence[GenerationParams],
        *,
        on_result: ResultCallback | None = None,
        return_errors: bool = False,
    ) -> list[GenerationResult | Exception]:
        """Make several requests as efficiently as the backend can (batched calls locally, concurrent
        requests remotely); the list comes back in the order asked.

        ``on_result(index, result_or_error)`` is called as each request finishes, so callers
        can save work as it arrives. With ``return_errors=True`` a failed request leaves its
        exception (an :class:`~sdkit.SdkitError`) at its index and the others go on;
        otherwise the first failure is raised.
        """
        ...


def capabilities(backend: Backend) -> Capabilities:
    """What ``backend`` declares (:data:`NO_CAPABILITIES` when it declares nothing)."""
    declared = getattr(backend, "capabilities", None)
    if declared is None:
        return NO_CAPABILITIES
    if not isinstance(declared, Capabilities):
        raise ValidationError("capabilities", declared, f"of backend {backend.name!r} must be a sdkit Capabilities")
    return declared


def check(backend: Backend, params: Sequence[GenerationParams]) -> None:
    """Let ``backend`` refuse ``params`` before any work, when it declares ``checks_params``."""
    if capabilities(backend).checks_params:
        backend.check(params)  # type: ignore[attr-defined]


def identity(backend: Backend) -> dict[str, Any]:
    """``backend.identity()`` with its ``name`` and ``batching`` (the largest call: batching changes
    pixels by float rounding), checked to be JSON. Cache keys and manifests use this."""
    own = backend.identity()
    if not isinstance(own, dict):
        raise ValidationError("identity", own, f"of backend {backend.name!r} must be a dict")
    caps = capabilities(backend)
    batching = f"max_batch={caps.max_batch}" if caps.max_batch > 1 or caps.batch_key is not None else "none"
    ident = {"name": backend.name, **own, "batching": batching}
    try:
        json.dumps(ident, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValidationError("identity", own, f"of backend {backend.name!r} must be JSON-able: {exc}") from None
    return ident
