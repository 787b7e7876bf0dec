"""Rich display of results in notebooks: small images with their seeds, no widgets needed."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sdkit.errors import ValidationError
from sdkit.metadata.pngfile import data_uri

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.result import GenerationResult

__all__ = ["image_data_uri", "images_html", "result_html"]


def image_data_uri(image: Image) -> str:
    """A PNG data URI of ``image`` (see :func:`sdkit.metadata.pngfile.data_uri`)."""
    return data_uri(image)


def images_html(items: Sequence[tuple[Image, str]], *, max_side: int = 256) -> str:
    """A row of images, each with a caption underneath (sizes capped at ``max_side``)."""
    if not isinstance(max_side, int) or isinstance(max_side, bool) or max_side < 16:
        raise ValidationError("max_side", max_side, "must be a size in pixels, at least 16")
    cells = []
    for image, caption in items:
        w, h = image.size
        scale = min(1.0, max_side / max(w, h)) if max(w, h) > max_side else max(1, 128 // max(w, h))
        cells.append(
            f'<figure style="display:inline-block;margin:2px;text-align:center">'
            f'<img src="{image_data_uri(image)}" width="{int(w * scale)}" height="{int(h * scale)}" '
            f'style="image-rendering:pixelated"/>'
            f"<figcaption><small>{html.escape(caption)}</small></figcaption></figure>"
        )
    return f"<div>{''.join(cells)}</div>"


def result_html(result: GenerationResult, *, max_side: int = 256) -> str:
    """A row of the result's images, each captioned with its seed, then the shared parameters."""
    row = images_html(
        [(item.image, f"seed {item.seed}" if item.seed is not None else f"image {item.index}") for item in result],
        max_side=max_side,
    )
    p = result.params
    width, height = p.width, p.height
    if (width is None or height is None) and result.images:  # the backend did not say: the image does
        width, height = result.images[0].size
    summary = (
        f"{html.escape(p.prompt)} · {p.num_inference_steps} steps · CFG {p.guidance_scale:g} · "
        f"{width}×{height} · {html.escape(str(result.details.get('scheduler') or p.scheduler or 'model default'))} · "
        f"{html.escape(result.model)} ({html.escape(result.backend)})"
    )
    return f"<div>{row}<div><small>{summary}</small></div></div>"
