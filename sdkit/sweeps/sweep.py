"""A sweep: a base :class:`GenerationParams`, up to three axes (X, Y, Z) and seeds per cell.

Pure: :meth:`Sweep.cells` expands the spec into one request per image, in a fixed order, before
anything runs; :meth:`Sweep.count` says how many images that is. Running is :mod:`sdkit.sweeps.runner`.

>>> s = Sweep(GenerationParams("a red circle", seed=1), x="guidance_scale=1,4,7.5", y="steps=5-20 (+5)")
>>> s.count()
12
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sdkit.errors import ValidationError
from sdkit.params import MAX_SEED, GenerationParams
from sdkit.sweeps.axis import Axis, parse_axis, parse_values
from sdkit.sweeps.runner import run_sweep

if TYPE_CHECKING:
    from sdkit.backends.base import Backend
    from sdkit.sweeps.runner import SweepResult

__all__ = ["MAX_CELLS", "Cell", "Sweep"]

#: The most images one sweep may make (A1111 has no cap; a typo in a range should not queue a week of work).
MAX_CELLS = 10_000
MAX_SEEDS_PER_CELL = 64
AXIS_NAMES = ("x", "y", "z")


@dataclass(frozen=True)
class Cell:
    """One image of a sweep: where it sits (``x``, ``y``, ``z``, ``seed_index``) and what makes it
    (``params``, always ``num_images=1`` with its own seed). ``index`` is its place in :meth:`Sweep.cells`."""

    index: int
    x: int
    y: int
    z: int
    seed_index: int
    params: GenerationParams


def _as_axis(name: str, value: Axis | str | None) -> Axis | None:
    if value is None or isinstance(value, Axis):
        return value
    if isinstance(value, str):
        try:
            return parse_axis(value)
        except ValidationError as exc:
            field = f"{name} axis" if exc.field == "axis" else f"{name} axis {exc.field}"
            raise ValidationError(field, exc.value, exc.reason) from None
    raise ValidationError(name, value, "must be an Axis or a string like guidance_scale=1,4,7.5")


def _as_seeds(value: int | Sequence[int] | None, base: GenerationParams) -> int | tuple[int, ...]:
    if value is None:
        return base.num_images
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS_PER_CELL:
            raise ValidationError("seeds", value, f"must be between 1 and {MAX_SEEDS_PER_CELL} images per cell")
        return value
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValidationError("seeds", value, "must be a count of images per cell or a list of seeds")
    seeds = tuple(value)
    if not 1 <= len(seeds) <= MAX_SEEDS_PER_CELL:
        raise ValidationError("seeds", value, f"must list between 1 and {MAX_SEEDS_PER_CELL} seeds")
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED:
            raise ValidationError("seeds", s, f"each seed must be an integer between 0 and {MAX_SEED}")
    return seeds


@dataclass(frozen=True)
class Sweep:
    """What to sweep: ``base`` parameters, axes ``x``/``y``/``z`` (an :class:`Axis` or A1111 text such as
    ``"num_inference_steps=5-20 (+5)"``) and ``seeds`` per cell.

    ``seeds`` is a count N (each cell makes seeds ``seed``, ``seed + 1``, … ``seed + N - 1``, where ``seed``
    is the base seed or the seed axis' value, so every cell shares its noise) or an explicit list of seeds.
    Left out it is ``base.num_images``. The spec is checked on construction: a bad value, a parameter on two
    axes, or a Prompt S/R text found in neither prompt is refused here, before any work.
    """

    base: GenerationParams
    x: Axis | None = None
    y: Axis | None = None
    z: Axis | None = None
    seeds: int | tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.base, GenerationParams):
            raise ValidationError("base", self.base, "must be a GenerationParams")
        for name in AXIS_NAMES:
            object.__setattr__(self, name, _as_axis(name, getattr(self, name)))
        object.__setattr__(self, "seeds", _as_seeds(self.seeds, self.base))
        params = [a.param for a in self.axes.values()]
        for p in set(params):
            if params.count(p) > 1:
                raise ValidationError("axes", p, "the same parameter is on two axes")
        if "size" in params and ({"width", "height"} & set(params)):
            raise ValidationError("axes", "size", "size and width/height cannot be swept together")
        if "seed" in params and isinstance(self.seeds, tuple):
            raise ValidationError("seeds", self.seeds, "a seed axis takes a count of seeds per cell, not a list")
        if self.count() > MAX_CELLS:
            raise ValidationError("sweep", self.count(), f"makes more than {MAX_CELLS} images")
        self.cells()  # refuses what only shows once values combine (Prompt S/R, out-of-range seeds)

    @classmethod
    def parse(
        cls,
        base: GenerationParams | str,
        *,
        x: str | None = None,
        y: str | None = None,
        z: str | None = None,
        seeds: int | Sequence[int] | str | None = None,
    ) -> Sweep:
        """Build from text as typed on the command line: ``seeds`` may be ``"4"`` or ``"1,2,3"``."""
        if isinstance(base, str):
            base = GenerationParams(base)
        if isinstance(seeds, str):
            seeds = parse_seeds(seeds)
        return cls(base, x=x, y=y, z=z, seeds=seeds)

    @property
    def axes(self) -> dict[str, Axis]:
        """The axes in use, by name (``x``, ``y``, ``z``)."""
        return {name: a for name in AXIS_NAMES if (a := getattr(self, name)) is not None}

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(z, y, x, seeds)`` sizes; an unused axis counts 1."""
        n = self.seeds if isinstance(self.seeds, int) else len(self.seeds)
        return (len(self.z or ()) or 1, len(self.y or ()) or 1, len(self.x or ()) or 1, n)

    def count(self) -> int:
        """How many images the sweep makes."""
        z, y, x, s = self.shape
        return z * y * x * s

    def cells(self) -> list[Cell]:
        """Every image, Z outermost, then Y, X and seed (grid order). Deterministic: the same spec
        always gives the same cells with the same seeds."""
        nz, ny, nx, _ = self.shape
        ordered = sorted(self.axes.items(), key=lambda item: item[1].order)
        cells: list[Cell] = []
        for iz in range(nz):
            for iy in range(ny):
                for ix in range(nx):
                    where = {"x": ix, "y": iy, "z": iz}
                    params = self.base
                    for name, axis in ordered:
                        value = axis.values[where[name]]
                        try:
                            params = axis.apply(params, value)
                        except ValidationError as exc:
                            raise ValidationError(f"{name} axis {exc.field}", exc.value, exc.reason) from None
                    for k, seed in enumerate(self._cell_seeds(params.seed)):
                        cells.append(Cell(len(cells), ix, iy, iz, k, params.replace(seed=seed, num_images=1)))
        return cells

    def _cell_seeds(self, first: int) -> tuple[int, ...]:
        if isinstance(self.seeds, tuple):
            return self.seeds
        return tuple((first + i) % (MAX_SEED + 1) for i in range(self.seeds))

    def labels(self, name: str) -> tuple[str, ...]:
        """The labels along axis ``name`` (``"x"``, ``"y"`` or ``"z"``); empty when it is unused."""
        axis = getattr(self, name)
        return axis.labels if axis is not None else ()

    def run(self, backend: Backend, out: Any = None, *, progress: bool = True) -> SweepResult:
        """Run on ``backend``; see :func:`sdkit.sweeps.runner.run_sweep`."""
        return run_sweep(self, backend, out, progress=progress)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready spec that :meth:`from_dict` turns back into an equal sweep."""
        return {
            "base": self.base.to_dict(),
            **{name: axis.to_dict() for name, axis in self.axes.items()},
            "seeds": self.seeds if isinstance(self.seeds, int) else list(self.seeds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sweep:
        known = {"base", "seeds", *AXIS_NAMES}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(unknown[0], data[unknown[0]], f"unknown sweep key; known: {', '.join(sorted(known))}")
        axes = {}
        for name in AXIS_NAMES:
            value = data.get(name)
            axes[name] = Axis.from_dict(value) if isinstance(value, dict) else value
        seeds = data.get("seeds")
        return cls(
            GenerationParams.from_dict(data["base"]),
            **axes,
            seeds=tuple(seeds) if isinstance(seeds, list) else seeds,
        )


def parse_seeds(text: str) -> int | tuple[int, ...]:
    """``"4"`` → 4 images per cell; ``"1,2,3"`` or ``"1-3"`` → those seeds (A1111 range syntax)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return tuple(parse_values("seed", text))
    except ValidationError as exc:
        raise ValidationError("seeds", exc.value, exc.reason) from None
