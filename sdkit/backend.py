"""The one interface every backend offers, local pipeline or remote API.

Sweeps, grids, studies and widgets take a :class:`Backend` and never ask which one it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from .params import GenerationParams
from .result import GenerationResult

__all__ = ["Backend", "ResultCallback", "StepCallback"]

#: Called as ``callback(step, total_steps)`` while a pipeline runs.
StepCallback = Callable[[int, int], None]

#: Called as ``callback(index, result_or_error)`` as soon as request ``index`` is done.
ResultCallback = Callable[[int, "GenerationResult | Exception"], None]


@runtime_checkable
class Backend(Protocol):
    """Makes images from :class:`GenerationParams`."""

    #: "local", "chat" or "images".
    name: str

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
        """Make several requests as efficiently as the backend can (batched pipeline calls
        locally, concurrent requests remotely); the list comes back in the order asked.

        ``on_result(index, result_or_error)`` is called as each request finishes, so callers
        can save work as it arrives. With ``return_errors=True`` a failed request leaves its
        exception (an :class:`~sdkit.SdkitError`) at its index and the others go on;
        otherwise the first failure is raised.
        """
        ...
