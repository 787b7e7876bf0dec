"""The one batch planner: which requests share a backend call, from what the backend declares.

Requests share a call when they ask for the same model and the backend's
:attr:`~sdkit.backends.base.Capabilities.batch_key` gives them equal keys, up to ``max_batch`` images a
call; a request is never split. Models are taken in order of first appearance, so each loads once.
Sweeps and studies plan a whole list at once (:func:`plan_batches`); the server plans as requests
arrive (:func:`joins`). Pure.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdkit.backends.base import Capabilities
    from sdkit.params import GenerationParams

__all__ = ["group_key", "joins", "plan_batches"]


def group_key(caps: Capabilities, params: GenerationParams) -> Hashable:
    """Requests with equal group keys may share one call."""
    return (params.model, caps.batch_key(params) if caps.batch_key is not None else None)


def plan_batches(params: Sequence[GenerationParams], caps: Capabilities) -> list[list[int]]:
    """Group request indices into calls: equal :func:`group_key`, at most ``caps.max_batch`` images
    each, models in order of first appearance; within a group, requests keep their order."""
    groups: dict[Hashable, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(group_key(caps, p), []).append(i)
    model_order = list(dict.fromkeys(p.model for p in params))
    batches: list[list[int]] = []
    for model in model_order:
        for key, members in groups.items():
            if key[0] != model:  # type: ignore[index]
                continue
            current: list[int] = []
            count = 0
            for i in members:
                n = params[i].num_images
                if current and count + n > caps.max_batch:
                    batches.append(current)
                    current, count = [], 0
                current.append(i)
                count += n
            if current:
                batches.append(current)
    return batches


def joins(first: GenerationParams, taken_images: int, candidate: GenerationParams, caps: Capabilities) -> bool:
    """Whether ``candidate`` may join a call that starts with ``first`` and holds ``taken_images`` images."""
    return (
        group_key(caps, candidate) == group_key(caps, first) and taken_images + candidate.num_images <= caps.max_batch
    )
