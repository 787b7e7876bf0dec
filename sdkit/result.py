"""What a generation returns: the images with everything needed to make them again."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sdkit.params import GenerationParams

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["GeneratedImage", "GenerationResult", "Timings"]


@dataclass(frozen=True)
class Timings:
    """Seconds spent loading the model (0 when it was already loaded) and generating."""

    load_s: float = 0.0
    generate_s: float = 0.0


@dataclass(frozen=True)
class GeneratedImage:
    """One image, its own seed (None when a remote backend did not say) and the parameters
    that make it alone (``num_images=1``)."""

    image: Image
    seed: int | None
    params: GenerationParams
    index: int
    record: Mapping[str, Any]


@dataclass(frozen=True, repr=False)
class GenerationResult:
    """The images of one request, with the full parameters and where they came from.

    ``details`` holds what the backend knows of how it made them: scheduler class and config,
    device, dtype, generator device, batch size, library versions, thread count; for a remote
    backend the base URL and the raw reply.
    """

    params: GenerationParams
    images: tuple[Image, ...]
    seeds: tuple[int | None, ...]
    model: str
    backend: str
    timings: Timings = Timings()
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.seeds):
            raise ValueError(f"{len(self.images)} images but {len(self.seeds)} seeds")
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def __repr__(self) -> str:
        p = self.params
        size = f"{p.width}x{p.height}" if p.width and p.height else "native size"
        return (
            f"<GenerationResult {len(self.images)} image(s), seeds={self.seeds}, {size}, "
            f"{p.num_inference_steps} steps, CFG {p.guidance_scale:g}, model={self.model!r}, backend={self.backend!r}>"
        )

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[GeneratedImage]:
        for i in range(len(self.images)):
            yield self[i]

    def __getitem__(self, index: int) -> GeneratedImage:
        image = self.images[index]
        seed = self.seeds[index]
        params = self.params.replace(seed=seed, num_images=1) if seed is not None else self.params.replace(num_images=1)
        return GeneratedImage(image=image, seed=seed, params=params, index=index, record=self.record(index))

    def record(self, index: int) -> dict[str, Any]:
        """sdkit's JSON record of image ``index``: stable across runs (no timings, no dates)."""
        from sdkit import __version__

        details = {k: v for k, v in self.details.items() if k not in _VOLATILE}
        return {
            "sdkit": __version__,
            "backend": self.backend,
            "model": self.model,
            "params": self.params.to_dict(),
            "image_index": index,
            "seed": self.seeds[index],
            **details,
        }

    def _repr_html_(self) -> str:  # pragma: no cover - notebook display
        from sdkit.notebook.display import result_html

        return result_html(self)


#: details that change from run to run and so stay out of the per-image record.
#: (OpenMP's wait policy changes the speed, never the floats; where an executor made an image, its
#: ``executor`` entry, goes to a study's manifest, not into the image.)
_VOLATILE = frozenset({"raw_reply", "elapsed_s", "omp_wait_policy", "executor"})
