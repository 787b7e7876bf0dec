"""The one interface every backend offers, local pipeline or remote API.

Sweeps, grids, studies and widgets take a :class:`Backend` and never ask which one it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from .params import GenerationParams
from .result import GenerationResult

__all__ = ["Backend", "StepCallback"]

#: Called as ``callback(step, total_steps)`` while a pipeline runs.
StepCallback = Callable[[int, int], None]


@runtime_checkable
class Backend(Protocol):
    """Makes images from :class:`GenerationParams`."""

    #: "local", "chat" or "images".
    name: str

    def generate(self, params: GenerationParams) -> GenerationResult:
        """Make ``params.num_images`` images."""
        ...

    def generate_many(self, params: Sequence[GenerationParams]) -> list[GenerationResult]:
        """Make several requests, in order, as efficiently as the backend can
        (batched pipeline calls locally, concurrent requests remotely)."""
        ...
