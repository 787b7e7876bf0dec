"""The ``local`` backend: diffusers pipelines on this machine's CPU or GPU (:mod:`.pipeline`), the
embedded models (:mod:`.embedded`), A1111's sampler names (:mod:`.schedulers`) and how torch uses the
CPU (:mod:`.cpu`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdkit.backends.local.pipeline import LocalBackend

__all__ = ["create"]


def create(
    *,
    device: str | None = None,
    dtype: str | None = None,
    memory: str = "none",
    progress: bool = True,
    max_batch: int | None = None,
    threads: Any = "auto",
    portable: bool = False,
    embeddings: Any = None,
) -> LocalBackend:
    """The registry's factory for kind ``local`` (see :class:`~sdkit.LocalBackend` for the options)."""
    from sdkit.backends.local.pipeline import DEFAULT_MAX_BATCH, LocalBackend

    return LocalBackend(
        device=device,
        dtype=dtype,
        memory=memory,
        progress=progress,
        max_batch=DEFAULT_MAX_BATCH if max_batch is None else max_batch,
        threads=threads,
        portable=portable,
        embeddings=embeddings,
    )
