"""Image grids: a plain :func:`image_grid`, and labelled grids like A1111's X/Y/Z plot.

:func:`labelled_grid` puts X labels across the top and Y labels down the left, wraps long labels, draws a
failed image as a grey placeholder carrying its error, and refuses a grid over ``max_megapixels``.
:func:`sweep_grids` makes one page per Z value of a sweep (:func:`sweep_pages` from its tiles);
:func:`grid_figure` is the same as a matplotlib figure for notebooks.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sdkit.errors import ValidationError

if TYPE_CHECKING:
    from PIL.Image import Image

    from sdkit.sweeps.runner import SweepResult

__all__ = [
    "DEFAULT_MAX_MEGAPIXELS",
    "grid_figure",
    "image_grid",
    "labelled_grid",
    "sweep_description",
    "sweep_grids",
    "sweep_pages",
    "sweep_title",
]

#: A1111's default cap on a grid's size.
DEFAULT_MAX_MEGAPIXELS = 200.0
#: Tiles smaller than this are scaled up (nearest neighbour) so labels stay readable next to them.
MIN_TILE = 128
MARGIN = 8
BACKGROUND = "white"
TEXT = (0, 0, 0)
PLACEHOLDER = (205, 205, 205)
ERROR_TEXT = (150, 0, 0)

#: A tile: an image, an error message (drawn as a placeholder) or None (left empty).
Tile = Any


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _check_megapixels(width: int, height: int, max_megapixels: float) -> None:
    mp = width * height / 1e6
    if mp > max_megapixels:
        raise ValidationError(
            "max_megapixels",
            max_megapixels,
            f"the grid would be {width}x{height} pixels ({mp:.1f} MP), over the limit; "
            "raise max_megapixels, or sweep fewer or smaller images",
        )


def image_grid(
    images: Sequence[Image | None],
    cols: int | None = None,
    *,
    gap: int = 0,
    background: str | tuple[int, int, int] = BACKGROUND,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
) -> Image:
    """Any number of images in rows of ``cols`` (default: as square as possible); the last row may be
    short and a None leaves its place empty. Every place is the size of the largest image."""
    from PIL import Image

    images = list(images)
    if not images:
        raise ValidationError("images", images, "needs at least one image")
    if cols is None:
        cols = math.ceil(math.sqrt(len(images)))
    if not isinstance(cols, int) or isinstance(cols, bool) or cols < 1:
        raise ValidationError("cols", cols, "must be a positive integer")
    cols = min(cols, len(images))
    rows = math.ceil(len(images) / cols)
    present = [im for im in images if im is not None]
    w = max((im.width for im in present), default=MIN_TILE)
    h = max((im.height for im in present), default=MIN_TILE)
    width, height = cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap
    _check_megapixels(width, height, max_megapixels)
    grid = Image.new("RGB", (width, height), background)
    for i, im in enumerate(images):
        if im is not None:
            r, c = divmod(i, cols)
            grid.paste(im.convert("RGB"), (c * (w + gap), r * (h + gap)))
    return grid


def wrap_text(text: str, font: Any, max_width: float) -> list[str]:
    """Greedy word wrap to ``max_width`` pixels; a word longer than a line is cut."""
    lines: list[str] = []
    for paragraph in str(text).splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while font.getlength(word) > max_width and len(word) > 1:
                cut = max(1, next((k for k in range(len(word), 0, -1) if font.getlength(word[:k]) <= max_width), 1))
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _line_height(font: Any) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent + 2


def _draw_lines(draw: Any, lines: list[str], font: Any, box: tuple[int, int, int, int], fill: Any) -> None:
    """Lines centred in ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    lh = _line_height(font)
    y = top + max(0, (bottom - top - lh * len(lines)) // 2)
    for line in lines:
        x = left + max(0, (right - left - font.getlength(line)) / 2)
        draw.text((x, y), line, font=font, fill=fill)
        y += lh


def _placeholder(size: tuple[int, int], message: str, font: Any) -> Image:
    from PIL import Image, ImageDraw

    tile = Image.new("RGB", size, PLACEHOLDER)
    draw = ImageDraw.Draw(tile)
    lines = ["failed", *wrap_text(message, font, size[0] - 2 * MARGIN)]
    max_lines = max(1, (size[1] - 2 * MARGIN) // _line_height(font))
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][:-1] + "…"]
    _draw_lines(draw, lines, font, (MARGIN, MARGIN, size[0] - MARGIN, size[1] - MARGIN), ERROR_TEXT)
    return tile


def labelled_grid(
    tiles: Sequence[Sequence[Tile]],
    *,
    x_labels: Sequence[str] = (),
    y_labels: Sequence[str] = (),
    title: str | None = None,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    font_size: int | None = None,
    gap: int = 4,
) -> Image:
    """A grid of ``tiles[row][col]`` with ``x_labels`` across the top, ``y_labels`` down the left and an
    optional ``title`` above. A tile that is a string is drawn as a placeholder showing that error.
    Small tiles are scaled up to :data:`MIN_TILE` pixels so the labels stay readable; ``gap`` pixels
    of background separate the tiles."""
    from PIL import Image, ImageDraw

    rows = [list(r) for r in tiles]
    if not rows or not any(rows):
        raise ValidationError("tiles", tiles, "needs at least one tile")
    ncols = max(len(r) for r in rows)
    if x_labels and len(x_labels) != ncols:
        raise ValidationError("x_labels", list(x_labels), f"{len(x_labels)} labels for {ncols} columns")
    if y_labels and len(y_labels) != len(rows):
        raise ValidationError("y_labels", list(y_labels), f"{len(y_labels)} labels for {len(rows)} rows")
    images = [t for r in rows for t in r if t is not None and not isinstance(t, str)]
    w = max((im.width for im in images), default=MIN_TILE)
    h = max((im.height for im in images), default=MIN_TILE)
    scale = max(1, math.ceil(MIN_TILE / min(w, h)))
    w, h = w * scale, h * scale
    size = font_size or max(12, min(w, h) // 12)
    font = _font(size)
    lh = _line_height(font)

    x_lines = [wrap_text(label, font, w - 2 * MARGIN) for label in x_labels]
    top = (max((len(ls) for ls in x_lines), default=0) * lh + 2 * MARGIN) if x_labels else 0
    title_lines = wrap_text(title, font, max(ncols * w, 2 * w) - 2 * MARGIN) if title else []
    title_h = len(title_lines) * lh + 2 * MARGIN if title else 0
    left_w = 0
    y_lines: list[list[str]] = []
    if y_labels:
        widest = max(font.getlength(line) for label in y_labels for line in str(label).splitlines() or [""])
        left_w = int(min(max(widest, lh), max(w, 3 * lh))) + 2 * MARGIN
        y_lines = [wrap_text(label, font, left_w - 2 * MARGIN) for label in y_labels]
    step_x, step_y = w + gap, h + gap
    width = left_w + ncols * step_x - gap
    height = title_h + top + len(rows) * step_y - gap
    _check_megapixels(width, height, max_megapixels)

    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    if title:
        _draw_lines(draw, title_lines, font, (0, MARGIN, width, title_h - MARGIN), TEXT)
    for c, lines in enumerate(x_lines):
        x0 = left_w + c * step_x
        _draw_lines(draw, lines, font, (x0 + MARGIN, title_h + MARGIN, x0 + w - MARGIN, title_h + top - MARGIN), TEXT)
    y0 = title_h + top
    for r, row in enumerate(rows):
        if y_lines:
            _draw_lines(draw, y_lines[r], font, (MARGIN, y0 + r * step_y, left_w - MARGIN, y0 + r * step_y + h), TEXT)
        for c, tile in enumerate(row):
            at = (left_w + c * step_x, y0 + r * step_y)
            if isinstance(tile, str):
                grid.paste(_placeholder((w, h), tile, font), at)
            elif tile is not None:
                im = tile.convert("RGB")
                if scale > 1:
                    im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
                grid.paste(im, at)
    return grid


def cell_tiles(result: SweepResult) -> list[Tile]:
    """One tile per cell of ``result``, in :meth:`Sweep.cells` order: its image, or its error when it failed."""
    return [c.image if c.ok else (c.error or "") for c in result.cells]


def _cell_tiles(sweep: Any, tiles: Sequence[Tile], z: int) -> list[list[Tile]]:
    """The tiles of page ``z``: one per (y, x), the seeds of a cell side by side in one tile."""
    _, ny, nx, ns = sweep.shape
    per_cell: dict[tuple[int, int], list[tuple[int, Tile]]] = {}
    for cell, tile in zip(sweep.cells(), tiles, strict=True):
        if cell.z == z:
            per_cell.setdefault((cell.y, cell.x), []).append((cell.seed_index, tile))
    rows = []
    for y in range(ny):
        row: list[Tile] = []
        for x in range(nx):
            seeds = [tile for _, tile in sorted(per_cell.get((y, x), []), key=lambda item: item[0])]
            if ns == 1 or not seeds:
                row.append(seeds[0] if seeds else None)
            elif all(isinstance(t, str) for t in seeds):
                row.append(seeds[0])
            else:
                row.append(_seed_strip(seeds))
        rows.append(row)
    return rows


def _seed_strip(seeds: list[Tile]) -> Image:
    images = [t for t in seeds if not isinstance(t, str)]
    w, h = images[0].size
    font = _font(max(10, h // 10))
    tiles = [_placeholder((w, h), t, font) if isinstance(t, str) else t for t in seeds]
    return image_grid(tiles, cols=min(len(tiles), 4), gap=2)


def _seeds_text(seeds: Sequence[int]) -> str:
    if len(seeds) > 1 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    shown = ", ".join(str(s) for s in seeds[:6])
    return f"seed{'s' if len(seeds) > 1 else ''} {shown}{f' … ({len(seeds)})' if len(seeds) > 6 else ''}"


def sweep_description(sweep: Any) -> dict[str, Any]:
    """What a sweep's grid shows, JSON-ready: base prompt and negative prompt, model, every seed used,
    steps, guidance, size, sampler and the axes (``{"x": "guidance_scale=1,4", …}``)."""
    base = sweep.base
    seeds = sorted({c.params.seed for c in sweep.cells()})
    return {
        "prompt": base.prompt,
        "negative_prompt": base.negative_prompt,
        "model": base.model,
        "seeds": seeds,
        "num_inference_steps": base.num_inference_steps,
        "guidance_scale": base.guidance_scale,
        "width": base.width,
        "height": base.height,
        "scheduler": base.scheduler,
        "axes": {name: axis.text for name, axis in sweep.axes.items()},
        "count": sweep.count(),
    }


def sweep_title(sweep: Any) -> str:
    """The line drawn above a sweep's grid: prompt, model and seeds."""
    d = sweep_description(sweep)
    return f"{d['prompt']} · model {d['model'] or 'default'} · {_seeds_text(d['seeds'])}"


def sweep_grids(result: SweepResult, **options: Any) -> list[Image]:
    """One labelled grid per Z value of a sweep (one page without a Z axis), titled with the sweep's
    prompt, model and seeds (``describe=False`` leaves that out) and the Z label. Several seeds per
    cell sit side by side in their cell. ``options``: those of :func:`sweep_pages`."""
    return sweep_pages(result.sweep, cell_tiles(result), **options)


def sweep_pages(
    sweep: Any,
    tiles: Sequence[Tile],
    *,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    font_size: int | None = None,
    describe: bool = True,
) -> list[Image]:
    """The pages of :func:`sweep_grids` from ``tiles``: one per cell of ``sweep``, in :meth:`Sweep.cells`
    order (an image, an error message drawn as a placeholder, or None for a cell not made)."""
    nz = sweep.shape[0]
    z_labels = sweep.labels("z")
    heading = sweep_title(sweep) if describe else ""
    pages = []
    for z in range(nz):
        title = "\n".join(t for t in (heading, z_labels[z] if z_labels else "") if t)
        pages.append(
            labelled_grid(
                _cell_tiles(sweep, tiles, z),
                x_labels=sweep.labels("x"),
                y_labels=sweep.labels("y"),
                title=title or None,
                max_megapixels=max_megapixels,
                font_size=font_size,
                gap=4 if sweep.shape[3] == 1 else 16,  # cells apart from the seeds inside them
            )
        )
    return pages


def grid_figure(result: SweepResult, *, z: int = 0, tile_inches: float = 1.6):
    """Page ``z`` of a sweep as a matplotlib ``Figure`` (no pyplot state): X labels as column titles, Y labels
    on the left, errors written in their cell. A notebook shows it as a cell's value once matplotlib's inline
    display is on (``%matplotlib inline``, or after importing pyplot); ``fig.savefig(path)`` works anywhere."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the install
        from sdkit.errors import MissingDependencyError

        raise MissingDependencyError("matplotlib", "notebook") from None

    sweep = result.sweep
    nz = sweep.shape[0]
    if not isinstance(z, int) or not 0 <= z < nz:
        raise ValidationError("z", z, f"must be between 0 and {nz - 1}")
    tiles = _cell_tiles(sweep, cell_tiles(result), z)
    nrows, ncols = len(tiles), len(tiles[0])
    fig = Figure(figsize=(tile_inches * ncols + 0.6, tile_inches * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    x_labels, y_labels = sweep.labels("x"), sweep.labels("y")
    for r in range(nrows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            tile = tiles[r][c]
            if isinstance(tile, str):
                ax.set_facecolor("#cdcdcd")
                ax.text(0.5, 0.5, textwrap.fill("failed: " + tile, 24), ha="center", va="center", fontsize=6)
            elif tile is not None:
                ax.imshow(tile, interpolation="nearest")
            if r == 0 and x_labels:
                ax.set_title(textwrap.fill(x_labels[c], 20), fontsize=8)
            if c == 0 and y_labels:
                ax.set_ylabel(textwrap.fill(y_labels[r], 20), fontsize=8)
    z_labels = sweep.labels("z")
    if z_labels:
        fig.suptitle(z_labels[z], fontsize=9)
    return fig
