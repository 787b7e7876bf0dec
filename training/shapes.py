"""Procedural scenes of simple shapes: the training data of the embedded model, and its judge.

Pure and seeded: :func:`random_scene` draws a :class:`Scene` from a ``random.Random``,
:func:`render` paints it (PIL), :func:`caption` words it in one of several phrasings, and
:func:`classify` reads a scene back from any picture (a pixel classifier used by the
prompt-adherence benchmark).

>>> scene = Scene("circle", "red", "blue", "large", "center")
>>> caption(scene, 0)
'a large red circle on a blue background'
>>> classify(render(scene)) == (scene.colour, scene.background, scene.shape)
True
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COLOURS",
    "NEW_SHAPES",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "Scene",
    "all_scenes",
    "caption",
    "classify",
    "random_scene",
    "render",
]

#: Colour name → RGB. Far apart in RGB, so a picture's colours are read back by nearest match.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 225, 30),
    "orange": (245, 135, 20),
    "purple": (135, 45, 175),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
#: Shapes the base model never saw: drawn and read back like the others, but not in :func:`all_scenes`
#: or :func:`random_scene` (the training data of ``tiny``); the ``hexagon`` LoRA teaches the first one.
NEW_SHAPES = ("hexagon",)
#: Size word → side of the shape's bounding box in pixels (at 64×64).
SIZES: dict[str, int] = {"small": 24, "medium": 34, "large": 46}
#: Position phrase → centre offset direction (x, y).
POSITIONS: dict[str, tuple[int, int]] = {
    "center": (0, 0),
    "left": (-1, 0),
    "right": (1, 0),
    "top": (0, -1),
    "bottom": (0, 1),
}
SCENE_SIZE = 64
_MARGIN = 3
_SIZE_WORDS = {"small": ("small", "small", "tiny"), "medium": ("", "", "medium"), "large": ("large", "large", "big")}
_POSITION_WORDS = {
    "center": "in the center",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}


@dataclass(frozen=True)
class Scene:
    """One shape of one colour on a plain background of another colour."""

    shape: str
    colour: str
    background: str
    size: str = "medium"
    position: str = "center"

    def __post_init__(self) -> None:
        if self.shape not in SHAPES + NEW_SHAPES:
            raise ValueError(f"shape={self.shape!r}: must be one of {', '.join(SHAPES + NEW_SHAPES)}")
        for field in ("colour", "background"):
            if getattr(self, field) not in COLOURS:
                raise ValueError(f"{field}={getattr(self, field)!r}: must be one of {', '.join(COLOURS)}")
        if self.colour == self.background:
            raise ValueError(f"colour and background are both {self.colour!r}")
        if self.size not in SIZES:
            raise ValueError(f"size={self.size!r}: must be one of {', '.join(SIZES)}")
        if self.position not in POSITIONS:
            raise ValueError(f"position={self.position!r}: must be one of {', '.join(POSITIONS)}")


def random_scene(rng: random.Random) -> Scene:
    """A scene drawn uniformly over shapes, colour pairs, sizes and positions."""
    colour, background = rng.sample(list(COLOURS), 2)
    return Scene(rng.choice(SHAPES), colour, background, rng.choice(list(SIZES)), rng.choice(list(POSITIONS)))


def _box(scene: Scene, size: int) -> tuple[float, float, float, float]:
    scale = size / SCENE_SIZE
    side = SIZES[scene.size] * scale
    dx, dy = POSITIONS[scene.position]
    reach = size / 2 - side / 2 - _MARGIN * scale
    cx, cy = size / 2 + dx * reach, size / 2 + dy * reach
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def render(scene: Scene, size: int = SCENE_SIZE) -> Any:
    """The scene as an RGB ``PIL.Image`` of ``size``×``size`` (drawn 4× larger, then downsampled)."""
    from PIL import Image, ImageDraw

    big = size * 4
    img = Image.new("RGB", (big, big), COLOURS[scene.background])
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = (v * 4 for v in _box(scene, size))
    fill = COLOURS[scene.colour]
    if scene.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif scene.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif scene.shape == "hexagon":
        draw.polygon([(x + x0, y + y0) for x, y in _hexagon(x1 - x0, y1 - y0)], fill=fill)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return img.resize((size, size), Image.Resampling.BOX)


def _hexagon(width: float, height: float) -> list[tuple[float, float]]:
    """A flat-topped hexagon filling a ``width``×``height`` box (corners at left and right middle)."""
    return [
        (0, height / 2),
        (width / 4, 0),
        (3 * width / 4, 0),
        (width, height / 2),
        (3 * width / 4, height),
        (width / 4, height),
    ]


_TEMPLATES = (
    "a {size}{colour} {shape} on a {background} background",
    "a {size}{colour} {shape} on a {background} background",
    "a {size}{colour} {shape} {position} on a {background} background",
    "{size}{colour} {shape}, {background} background",
    "a picture of a {size}{colour} {shape} on a {background} background",
    "a {size}{colour} {shape} on {background}",
    "a {size}{colour} {shape}",
    "{colour} {shape}",
)


def caption(scene: Scene, variant: int | None = None, rng: random.Random | None = None) -> str:
    """A caption for ``scene``: phrasing ``variant`` (0 is the plain one), or one drawn from ``rng``.

    Some phrasings leave out the size, the position or the background, so short prompts work too.
    """
    if variant is None:
        rng = rng or random.Random(0)
        variant = rng.randrange(len(_TEMPLATES))
        size_word = rng.choice(_SIZE_WORDS[scene.size])
    else:
        size_word = _SIZE_WORDS[scene.size][0]
    template = _TEMPLATES[variant % len(_TEMPLATES)]
    text = template.format(
        size=f"{size_word} " if size_word else "",
        colour=scene.colour,
        shape=scene.shape,
        background=scene.background,
        position=_POSITION_WORDS[scene.position],
    )
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _nearest_colour(rgb: tuple[float, float, float]) -> str:
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], rgb, strict=True)))


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def classify(image: Any) -> tuple[str, str, str]:
    """(shape colour, background colour, shape) read from a picture by simple pixel rules.

    The background is the median colour of the border; the shape's colour is the median of the
    pixels far from it; the shape is every pixel nearer that colour than the background's. Its kind
    comes from how much of its bounding box it fills (triangle ~0.5, circle ~0.79, square 1).
    ``"none"`` when no shape stands out.
    """
    from PIL import Image

    img = image.convert("RGB")
    if img.size != (SCENE_SIZE, SCENE_SIZE):
        img = img.resize((SCENE_SIZE, SCENE_SIZE), Image.Resampling.BILINEAR)
    n = SCENE_SIZE
    px = list(img.getdata())
    border = [px[y * n + x] for y in range(n) for x in range(n) if min(x, y) < 2 or max(x, y) >= n - 2]
    bg_rgb = tuple(_median([p[c] for p in border]) for c in range(3))
    background = _nearest_colour(bg_rgb)
    far = [sum((p[c] - bg_rgb[c]) ** 2 for c in range(3)) > 90**2 for p in px]
    core = [i for i, f in enumerate(far) if f]
    if len(core) < 40:
        return "none", background, "none"
    fg_rgb = tuple(_median([px[i][c] for i in core]) for c in range(3))
    colour = _nearest_colour(fg_rgb)
    # The outline is where a pixel is nearer the shape's colour than the background's (half way along
    # the line between them), so a soft edge or a faint shape keeps its true extent.
    axis = [f - b for f, b in zip(fg_rgb, bg_rgb, strict=True)]
    norm = sum(v * v for v in axis) or 1.0
    inside = [i for i, p in enumerate(px) if sum((p[c] - bg_rgb[c]) * axis[c] for c in range(3)) > norm / 2]
    if len(inside) < 40:
        return colour, background, "none"
    xs = sorted(i % n for i in inside)
    ys = sorted(i // n for i in inside)
    # A robust bounding box: ignore the outer 1% of shape pixels on each side.
    k = len(inside) // 100
    width = xs[-1 - k] - xs[k] + 1
    height = ys[-1 - k] - ys[k] + 1
    fill = len(inside) / max(1, width * height)
    shape = "triangle" if fill < 0.65 else "circle" if fill < 0.9 else "square"
    if shape == "circle":
        # A hexagon fills its box about as much as a circle (0.75 vs 0.79): tell them apart by
        # which outline the shape's pixels match better within the box.
        shape = _round_or_hexagon({(i % n, i // n) for i in inside}, xs[k], ys[k], width, height)
    return colour, background, shape


def _round_or_hexagon(pixels: set[tuple[int, int]], x0: int, y0: int, width: int, height: int) -> str:
    """``"circle"`` or ``"hexagon"``: the outline (an ellipse or a flat-topped hexagon filling a box)
    that overlaps the shape's pixels best (intersection over union). The box is the robust one
    grown by 0–2 pixels on each axis, as that trimming cuts a hexagon's side corners."""
    best = {"circle": 0.0, "hexagon": 0.0}
    for grow_x in range(3):
        for grow_y in range(3):
            bx, by, bw, bh = x0 - grow_x, y0 - grow_y, width + 2 * grow_x, height + 2 * grow_y
            for kind in best:
                inner = 0
                count = 0
                for y in range(by, by + bh):
                    v = abs((y + 0.5 - by) / bh - 0.5)  # 0 at the middle row, 0.5 at the top and bottom
                    for x in range(bx, bx + bw):
                        u = abs((x + 0.5 - bx) / bw - 0.5)
                        inside = u * u + v * v <= 0.25 if kind == "circle" else u <= 0.5 - v / 2
                        if inside:
                            count += 1
                            inner += (x, y) in pixels
                union = count + len(pixels) - inner
                best[kind] = max(best[kind], inner / max(1, union))
    return "hexagon" if best["hexagon"] > best["circle"] else "circle"


def all_scenes() -> list[Scene]:
    """Every distinct scene, in a fixed order (shapes × colour pairs × sizes × positions)."""
    return [
        Scene(shape, colour, background, size, position)
        for shape in SHAPES
        for colour in COLOURS
        for background in COLOURS
        if background != colour
        for size in SIZES
        for position in POSITIONS
    ]
