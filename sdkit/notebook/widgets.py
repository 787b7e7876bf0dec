"""ipywidgets front ends: :class:`PromptLab` for prompt experiments.

Every handler is a plain method (``generate``, ``restore``…) that updates widget values, so it
can be driven and tested without a browser; the buttons only call those methods.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdkit.backends.base import capabilities
from sdkit.backends.local.schedulers import A1111_SCHEDULERS
from sdkit.errors import MissingDependencyError, SdkitError, ValidationError
from sdkit.metadata.pngfile import png_bytes
from sdkit.notebook.modes import ModeControls
from sdkit.params import DEFAULT_MODEL, MAX_CLIP_SKIP, MAX_SEED, GenerationParams
from sdkit.sweeps.axis import AXIS_PARAMS
from sdkit.sweeps.grid import MIN_TILE
from sdkit.sweeps.runner import SweepResult, run_sweep
from sdkit.sweeps.sweep import Sweep, parse_seeds

if TYPE_CHECKING:
    from sdkit.backends.base import Backend
    from sdkit.result import GenerationResult
    from sdkit.sweeps.runner import SweepResult
    from sdkit.sweeps.sweep import Sweep

__all__ = ["GridViewer", "PromptLab", "SweepPanel", "python_call"]

MODEL_DEFAULT = "(model default)"
SIZES = (64, 128, 256, 384, 512, 640, 768, 896, 1024)


def _widgets():
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependencyError("ipywidgets", "notebooks") from None
    return ipywidgets


def python_call(params: GenerationParams, backend_code: str = "sdkit.LocalBackend()") -> str:
    """The Python code that makes ``params`` again, ready to paste into a cell."""
    fields = params.to_dict()
    args = ",\n".join(f"    {k}={v!r}" for k, v in fields.items() if k == "prompt" or v != _DEFAULTS.get(k))
    return (
        "import sdkit\n\n"
        f"backend = {backend_code}\n"
        f"params = sdkit.GenerationParams(\n{args},\n)\n"
        "result = backend.generate(params)\n"
        "result.images[0]"
    )


_DEFAULTS = {
    "negative_prompt": "",
    "num_inference_steps": 20,
    "guidance_scale": 7.5,
    "width": None,
    "height": None,
    "scheduler": None,
    "num_images": 1,
    "model": "tiny",
}


@dataclass(frozen=True)
class HistoryEntry:
    params: GenerationParams
    backend: str
    result: GenerationResult


class PromptLab:
    """Prompt, negative prompt, seed (locked or drawn anew), steps, guidance, size, scheduler,
    backend and model; a Generate button with progress; the image; a history strip whose entries
    restore their settings; and the Python code that reproduces the image shown.

    >>> lab = PromptLab(sdkit.LocalBackend())   # doctest: +SKIP
    >>> lab                                      # shows the widget in a notebook   # doctest: +SKIP
    """

    def __init__(
        self,
        backend: Backend | str | Mapping[str, Backend | str],
        *,
        models: Sequence[str] = (DEFAULT_MODEL,),
        params: GenerationParams | None = None,
        history_size: int = 12,
        backend_code: Mapping[str, str] | None = None,
    ) -> None:
        w = _widgets()
        if isinstance(backend, Mapping):
            self.backends = {key: _as_backend(f"backend[{key!r}]", value) for key, value in backend.items()}
        else:
            one = _as_backend("backend", backend)
            self.backends = {_name(one): one}
        if not self.backends:
            raise ValidationError("backend", backend, "needs at least one backend")
        models = (models,) if isinstance(models, str) else tuple(models)
        if not models or not all(isinstance(m, str) and m.strip() for m in models):
            raise ValidationError("models", models, "needs at least one model name, e.g. ('tiny',)")
        if not isinstance(history_size, int) or isinstance(history_size, bool) or history_size < 1:
            raise ValidationError("history_size", history_size, "must be a whole number of entries, at least 1")
        if params is not None and not isinstance(params, GenerationParams):
            raise ValidationError("params", params, "must be a GenerationParams")
        self.backend_code = dict(backend_code or {})
        self.history: list[HistoryEntry] = []
        self.history_size = history_size
        self.last: GenerationResult | None = None
        start = params or GenerationParams("a red circle on a blue background", seed=1, model=models[0])
        sizes = _size_options(start.width, start.height)
        self.prompt = w.Textarea(value=start.prompt, description="Prompt", layout=w.Layout(width="100%"))
        self.negative_prompt = w.Textarea(
            value=start.negative_prompt, description="Negative", layout=w.Layout(width="100%")
        )
        self.tokens = w.HTML(value="")  # A1111's counter: "7/75 · 1 chunk" under the prompt
        self.seed = w.BoundedIntText(value=start.seed, min=0, max=MAX_SEED, description="Seed")
        self.lock_seed = w.Checkbox(value=True, description="lock seed", indent=False)
        self.steps = w.IntSlider(
            value=start.num_inference_steps, min=1, max=max(150, start.num_inference_steps), description="Steps"
        )
        self.guidance = w.FloatSlider(
            value=start.guidance_scale, min=0.0, max=max(30.0, start.guidance_scale), step=0.5, description="Guidance"
        )
        self.width = w.Dropdown(options=sizes, value=start.width or 0, description="Width")
        self.height = w.Dropdown(options=sizes, value=start.height or 0, description="Height")
        self.scheduler = w.Dropdown(
            options=[MODEL_DEFAULT, *A1111_SCHEDULERS], value=start.scheduler or MODEL_DEFAULT, description="Scheduler"
        )
        self.backend = w.Dropdown(options=list(self.backends), description="Backend")
        self.model = w.Combobox(value=start.model, options=list(models), description="Model", ensure_option=False)
        self.clip_skip = w.BoundedIntText(value=start.clip_skip or 1, min=1, max=MAX_CLIP_SKIP, description="Clip skip")
        self.generate_button = w.Button(description="Generate", button_style="primary", icon="paint-brush")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="50%"))
        self.status = w.HTML(value="")
        self.image = w.Image(format="png", layout=w.Layout(width="256px", height="256px", object_fit="contain"))
        self.history_box = w.HBox(layout=w.Layout(overflow_x="auto"))
        self.code = w.Textarea(
            value="", description="Code", disabled=False, layout=w.Layout(width="100%", height="9em")
        )
        self.generate_button.on_click(lambda _b: self.generate())
        self.modes = ModeControls(start, use_shown=self.use_shown_image)
        controls = w.VBox(
            [
                self.prompt,
                self.negative_prompt,
                self.tokens,
                w.HBox([self.seed, self.lock_seed]),
                self.steps,
                self.guidance,
                w.HBox([self.width, self.height]),
                w.HBox([self.scheduler, self.clip_skip]),
                w.HBox([self.backend, self.model]),
                self.modes.box,
                w.HBox([self.generate_button, self.progress]),
                self.status,
            ],
            layout=w.Layout(width="60%"),
        )
        self.container = w.VBox(
            [w.HBox([controls, self.image]), w.HTML("<b>History</b> (click to restore)"), self.history_box, self.code]
        )
        for control in (self.prompt, self.negative_prompt, self.model):
            control.observe(lambda _change: self.count_tokens(), names="value")
        self.count_tokens()

    def count_tokens(self) -> str:
        """Update the token counter under the prompt (``7/75 · 1 chunk``; the negative prompt's after it) for
        the chosen model's tokenizer; empty for a model whose tokenizer is not on this machine."""
        from sdkit.prompts.tokens import count_tokens

        try:
            model = self.model.value.strip()
            counts = [count_tokens(self.prompt.value, model)]
            if self.negative_prompt.value.strip():
                counts.append(count_tokens(self.negative_prompt.value, model))
        except Exception:  # a remote model, a half-typed folder: no counter rather than an error while typing
            self.tokens.value = ""
            return ""
        text = f"{counts[0]} · {counts[0].label}"
        if len(counts) > 1:
            text += f" · negative {counts[1]}"
        self.tokens.value = f"<small>tokens {text}</small>"
        return text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The panel in a notebook; a short text where widgets cannot show (a code host, a terminal)."""
        bundle = self.container._repr_mimebundle_(**kwargs) or {}
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = "PromptLab (run the notebook to use the panel)"
        return data

    # --- reading and writing the controls ----------------------------------------------

    def params(self) -> GenerationParams:
        """The parameters the controls describe (validated: raises ValidationError)."""
        return GenerationParams(
            prompt=self.prompt.value,
            negative_prompt=self.negative_prompt.value,
            seed=self.seed.value,
            num_inference_steps=self.steps.value,
            guidance_scale=self.guidance.value,
            width=self.width.value or None,
            height=self.height.value or None,
            scheduler=None if self.scheduler.value == MODEL_DEFAULT else self.scheduler.value,
            model=self.model.value.strip(),
            clip_skip=None if self.clip_skip.value == 1 else self.clip_skip.value,
            **self.modes.fields(),
        )

    def set_params(self, params: GenerationParams, backend: str | None = None) -> None:
        """Put ``params`` into the controls (LoRAs as ``<lora:NAME:W>`` tags in the prompt)."""
        from sdkit.backends.local.loras import prompt_with_lora_tags

        self.prompt.value = prompt_with_lora_tags(params.prompt, params.loras)
        self.negative_prompt.value = params.negative_prompt
        self.seed.value = params.seed
        self.steps.max = max(self.steps.max, params.num_inference_steps)
        self.steps.value = params.num_inference_steps
        self.guidance.max = max(self.guidance.max, params.guidance_scale)
        self.guidance.value = params.guidance_scale
        sizes = _size_options(params.width, params.height, self.width.value, self.height.value)
        self.width.options = self.height.options = sizes  # a size outside SIZES gets its own entry
        self.width.value = params.width or 0
        self.height.value = params.height or 0
        self.scheduler.value = params.scheduler or MODEL_DEFAULT
        self.model.value = params.model
        self.clip_skip.value = params.clip_skip or 1
        self.modes.set(params)
        if backend in self.backends:
            self.backend.value = backend

    # --- actions ---------------------------------------------------------------------------

    def _show_error(self, exc: Exception) -> None:
        self.status.value = _error_html(exc)

    def generate(self) -> GenerationResult | None:
        """Generate with the current settings; show the image, add it to the history, show its code.
        Errors are shown in the status line, never raised into the notebook.

        The progress bar follows the backend's steps as they happen (a backend whose ``generate``
        takes ``on_step``, like :class:`~sdkit.LocalBackend`); in a kernel each update is sent to the
        browser at once, while the handler is still running."""
        if not self.lock_seed.value:
            import secrets

            self.seed.value = secrets.randbelow(MAX_SEED + 1)
        try:
            params = self.params()
        except ValidationError as exc:
            self._show_error(exc)
            return None
        backend = self.backends[self.backend.value]
        self.generate_button.disabled = True
        self.progress.bar_style = ""
        self.progress.max, self.progress.value = params.num_inference_steps, 0
        self.status.value = "generating…"

        def on_step(step: int, total: int) -> None:
            if total != self.progress.max:
                self.progress.max = total
            self.progress.value = min(step, total)

        steps = {"on_step": on_step} if capabilities(backend).step_progress else {}
        try:
            result = backend.generate(params, **steps)
        except Exception as exc:  # shown in the panel: a traceback in a widget callback is easily missed
            self.progress.bar_style = "danger"
            self._show_error(exc)
            return None
        finally:
            self.generate_button.disabled = False
        self.progress.value = self.progress.max
        self.last = result
        self.image.value = png_bytes(result.images[0])
        self.code.value = python_call(result.params, self.backend_code.get(self.backend.value, _backend_code(backend)))
        width, height = result.images[0].size  # the image's own size: a backend may leave the params' at None
        self.status.value = f"seed {result.seeds[0]} · {width}×{height} · {result.timings.generate_s:.2f}s"
        self._add_history(HistoryEntry(params=result.params, backend=self.backend.value, result=result))
        return result

    def restore(self, index: int) -> None:
        """Put history entry ``index`` (0 = oldest shown) back into the controls and show its image."""
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.history):
            raise ValidationError("index", index, f"must be a history entry from 0 to {len(self.history) - 1}")
        entry = self.history[index]
        self.set_params(entry.params, entry.backend)
        self.lock_seed.value = True
        self.last = entry.result
        self.image.value = png_bytes(entry.result.images[0])
        code = self.backend_code.get(entry.backend) or _backend_code(self.backends[entry.backend])
        self.code.value = python_call(entry.params, code)

    def use_shown_image(self) -> None:
        """img2img from the image shown: it becomes the init image (kept by its sha256)."""
        if self.last is None:
            self.status.value = _error_html(ValidationError("init_image", None, "generate an image first"))
            return
        from sdkit.initimage import store_init_image

        self.modes.init_image.value = store_init_image(self.last.images[0])

    def _add_history(self, entry: HistoryEntry) -> None:
        w = _widgets()
        self.history.append(entry)
        del self.history[: -self.history_size]
        items = []
        for i, h in enumerate(self.history):
            thumb = w.Image(value=png_bytes(h.result.images[0]), format="png", layout=w.Layout(width="64px"))
            button = w.Button(
                description=f"#{i + 1} seed {h.params.seed}", tooltip=h.params.prompt, layout=w.Layout(width="110px")
            )
            button.on_click(lambda _b, i=i: self.restore(i))
            items.append(w.VBox([thumb, button]))
        self.history_box.children = items


def _name(backend: Any) -> str:
    name = getattr(backend, "name", None)
    if not isinstance(name, str):
        _check_backend("backend", backend)
    return name


def _as_backend(field: str, backend: Any) -> Backend:
    """A backend, or a kind's name built through the registry with its defaults (``"local"``)."""
    if isinstance(backend, str):
        from sdkit.backends.registry import create_backend

        return create_backend(backend)
    _check_backend(field, backend)
    return backend


def _check_backend(field: str, backend: Any) -> None:
    if not (isinstance(getattr(backend, "name", None), str) and callable(getattr(backend, "generate", None))):
        raise ValidationError(
            field, backend, "must be a backend (e.g. sdkit.LocalBackend()), a kind such as 'local', or a dict of them"
        )


def _size_options(*extra: int | None) -> list[tuple[str, int]]:
    """The size choices: native (0), the usual sizes, and any other size in ``extra``."""
    sizes = sorted({*SIZES, *(s for s in extra if s)})
    return [("native", 0), *((str(s), s) for s in sizes)]


def _error_html(exc: BaseException) -> str:
    """An error as a red line: sdkit's own errors already name the field and value; others get their type."""
    text = str(exc) if isinstance(exc, SdkitError) else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return f'<span style="color:#b00">{html.escape(text)}</span>'


def _backend_code(backend: Backend) -> str:
    return f"sdkit.create_backend({backend.name!r})"  # base URL and key, for an API, from SDKIT_BASE_URL/SDKIT_API_KEY


NO_AXIS = "(none)"


class SweepPanel:
    """Pick up to three axes (X/Y/Z) and type their values in A1111 syntax; the panel says how many images
    the sweep will make before it runs (or what is wrong with it), runs it with progress and shows the
    labelled grid, and a :class:`GridViewer` to look at each image with its parameters.

    >>> SweepPanel(sdkit.LocalBackend())   # doctest: +SKIP
    """

    def __init__(
        self, backend: Backend | str, *, params: GenerationParams | None = None, out: str | Path | None = None
    ) -> None:
        w = _widgets()
        backend = _as_backend("backend", backend)
        if params is not None and not isinstance(params, GenerationParams):
            raise ValidationError("params", params, "must be a GenerationParams")
        if out is not None and not isinstance(out, (str, Path)):
            raise ValidationError("out", out, "must be a folder path (str or Path), or None to keep images in memory")
        self.backend_ = backend
        self.out = out
        self.result: SweepResult | None = None
        start = params or GenerationParams("a red circle on a blue background", seed=1)
        names = [NO_AXIS, *AXIS_PARAMS]
        self.prompt = w.Textarea(value=start.prompt, description="Prompt", layout=w.Layout(width="100%"))
        self.negative_prompt = w.Text(
            value=start.negative_prompt, description="Negative", layout=w.Layout(width="100%")
        )
        self.seed = w.BoundedIntText(value=start.seed, min=0, max=MAX_SEED, description="Seed")
        self.seeds = w.Text(value="1", description="Seeds/cell", placeholder="N, or 1,2,3")
        self.steps = w.IntSlider(
            value=start.num_inference_steps, min=1, max=max(150, start.num_inference_steps), description="Steps"
        )
        self.guidance = w.FloatSlider(
            value=start.guidance_scale, min=0.0, max=max(30.0, start.guidance_scale), step=0.5, description="Guidance"
        )
        self.model = w.Text(value=start.model, description="Model")
        self.axis_params = {}
        self.axis_values = {}
        rows = []
        defaults = {"x": ("guidance_scale", "1,4,7.5"), "y": ("num_inference_steps", "5-20 (+5)"), "z": (NO_AXIS, "")}
        for axis in ("x", "y", "z"):
            param, values = defaults[axis]
            self.axis_params[axis] = w.Dropdown(options=names, value=param, description=f"{axis.upper()} axis")
            self.axis_values[axis] = w.Text(
                value=values, placeholder="values, e.g. 1,4,7.5 or 5-20 (+5)", layout=w.Layout(width="50%")
            )
            rows.append(w.HBox([self.axis_params[axis], self.axis_values[axis]]))
        self.count = w.HTML()
        self.run_button = w.Button(description="Run sweep", button_style="primary", icon="th")
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="50%"))
        self.status = w.HTML()
        self.pages: list[Any] = []
        self.grid_page = w.Dropdown(options=[("", 0)], description="Z", layout=w.Layout(display="none"))
        self.grid = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", align_self="flex-start"))
        self.grid_page.observe(lambda _c: self.show_grid(self.grid_page.value), names="value")
        self.viewer_box = w.VBox()
        self.modes = ModeControls(start)
        for control in (
            self.prompt,
            self.negative_prompt,
            self.seed,
            self.seeds,
            self.steps,
            self.guidance,
            self.model,
            *self.axis_params.values(),
            *self.axis_values.values(),
            *self.modes.controls,
        ):
            control.observe(lambda _change: self.update_count(), names="value")
        self.run_button.on_click(lambda _b: self.run())
        self.container = w.VBox(
            [
                self.prompt,
                self.negative_prompt,
                w.HBox([self.seed, self.seeds]),
                self.steps,
                self.guidance,
                self.model,
                self.modes.box,
                *rows,
                self.count,
                w.HBox([self.run_button, self.progress]),
                self.status,
                self.grid_page,
                self.grid,
                self.viewer_box,
            ]
        )
        self.update_count()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.container._repr_mimebundle_(**kwargs) or {}
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = "SweepPanel (run the notebook to use the panel)"
        return data

    def sweep(self) -> Sweep:
        """The sweep the controls describe (validated: raises ValidationError)."""
        base = GenerationParams(
            prompt=self.prompt.value,
            negative_prompt=self.negative_prompt.value,
            seed=self.seed.value,
            num_inference_steps=self.steps.value,
            guidance_scale=self.guidance.value,
            model=self.model.value.strip(),
            **self.modes.fields(),
        )
        if not self.seeds.value.strip():
            raise ValidationError("seeds", "", "type a count of images per cell (e.g. 2) or seeds (e.g. 1,2,3)")
        axes = {}
        for axis in ("x", "y", "z"):
            param = self.axis_params[axis].value
            if param != NO_AXIS:
                if not self.axis_values[axis].value.strip():
                    raise ValidationError(f"{axis} axis", "", "type the values to sweep")
                axes[axis] = f"{param}={self.axis_values[axis].value}"
        return Sweep(base, **axes, seeds=parse_seeds(self.seeds.value))

    def update_count(self) -> int | None:
        """Show how many images the sweep will make (or why it cannot run); returns the count."""
        try:
            sweep = self.sweep()
        except ValidationError as exc:
            self.count.value = f'<span style="color:#b00">{html.escape(str(exc))}</span>'
            self.run_button.disabled = True
            return None
        z, y, x, s = sweep.shape
        self.count.value = f"<b>{sweep.count()} image(s)</b> ({x} × {y}{f' × {z}' if z > 1 else ''}, {s} per cell)"
        self.run_button.disabled = False
        return sweep.count()

    def run(self) -> SweepResult | None:
        """Run the sweep with progress, then show its grid and a viewer of its images."""
        try:
            sweep = self.sweep()
        except ValidationError:
            self.update_count()
            return None
        self.run_button.disabled = True
        self.progress.max, self.progress.value = sweep.count(), 0
        self.status.value = "running…"

        def on_cell(_outcome: Any) -> None:
            self.progress.value += 1

        self.progress.bar_style = ""
        try:
            result = run_sweep(sweep, self.backend_, self.out, progress=False, on_cell=on_cell)
            pages = result.grids()
        except Exception as exc:  # shown in the panel: a traceback in a widget callback is easily missed
            self.progress.bar_style = "danger"
            if isinstance(exc, OSError) and self.out is not None:  # the output folder cannot be made or written
                exc = ValidationError("out", str(self.out), f"cannot write there ({exc.strerror or exc})")
            self._error(exc)
            return None
        finally:
            self.run_button.disabled = False
        self.result = result
        failed = result.count("failed")
        self.status.value = (
            f"{len(result.cells)} image(s): {result.count('generated')} made, "
            f"{result.count('cached')} from cache, {failed} failed · {result.elapsed_s:.1f}s"
        )
        self.pages = pages
        labels = sweep.labels("z")
        self.grid_page.options = [(label, i) for i, label in enumerate(labels)] or [("", 0)]
        self.grid_page.layout.display = "" if len(pages) > 1 else "none"
        self.show_grid(0)
        self.viewer = GridViewer(result)
        self.viewer_box.children = [self.viewer.container]
        return result

    def show_grid(self, z: int = 0) -> None:
        """Show grid page ``z`` at its own size times a whole factor (cells about :data:`GRID_CELL_PX`
        pixels), never stretched to the panel's width; a grid wider than the panel is shrunk to fit."""
        if not self.pages:
            return
        if not isinstance(z, int) or isinstance(z, bool) or not 0 <= z < len(self.pages):
            raise ValidationError("z", z, f"must be a grid page from 0 to {len(self.pages) - 1}")
        page = self.pages[z]
        factor = grid_scale(self.result, page) if self.result is not None else 1
        self.grid.value = png_bytes(page)
        self.grid.layout.width = f"{page.width * factor}px"
        if self.grid_page.value != z:
            self.grid_page.value = z

    def _error(self, exc: Exception) -> None:
        self.status.value = _error_html(exc)


#: About how wide a sweep grid's cells are shown in :class:`SweepPanel` (whole-number scaling only).
GRID_CELL_PX = 128


def grid_scale(result: SweepResult, page: Any) -> int:
    """The whole factor that shows ``page`` (a grid of ``result``) with cells of about
    :data:`GRID_CELL_PX` pixels: 1 when its cells are already that big."""
    sides = [min(c.image.size) for c in result.cells if c.image is not None]
    if not sides:
        return 1
    side = min(sides)
    cell = side * max(1, -(-MIN_TILE // side))  # the grid scales small images up to MIN_TILE
    return max(1, GRID_CELL_PX // cell)


class GridViewer:
    """A sweep's images as a clickable grid (X across, Y down, a page per Z): each tile's button reads
    its cell's label (``CFG: 4, Steps: 10, seed 2``); clicking it shows the image large with its
    parameters as made (the real size and scheduler, not "model default"). ``select(index)`` does
    what a click does."""

    def __init__(self, result: SweepResult, *, thumb: int = 128, large: int = 256) -> None:
        w = _widgets()
        if not isinstance(result, SweepResult):
            raise ValidationError("result", result, "must be a SweepResult (from run_sweep or Sweep.run)")
        for name, value in (("thumb", thumb), ("large", large)):
            if not isinstance(value, int) or isinstance(value, bool) or not 16 <= value <= 4096:
                raise ValidationError(name, value, "must be a size in pixels between 16 and 4096")
        self.result = result
        self.thumb, self.large = thumb, large
        sweep = result.sweep
        nz = sweep.shape[0]
        self.page = w.Dropdown(
            options=[(label, i) for i, label in enumerate(sweep.labels("z"))] or [("", 0)],
            description="Z",
            layout=w.Layout(display="" if nz > 1 else "none"),
        )
        self.cells = w.GridBox(layout=w.Layout(overflow_x="auto"))
        self.image = w.Image(
            format="png", layout=w.Layout(width=f"{large}px", height=f"{large}px", object_fit="contain")
        )
        self.info = w.HTML()
        self.selected: int | None = None
        self.page.observe(lambda _c: self.show_page(), names="value")
        self.container = w.VBox([self.page, w.HBox([self.cells, w.VBox([self.image, self.info])])])
        self.show_page()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.container._repr_mimebundle_(**kwargs) or {}
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = "GridViewer (run the notebook to use the viewer)"
        return data

    def show_page(self) -> None:
        """Lay out page ``self.page.value``: X labels on top, Y labels on the left, a tile per image."""
        w = _widgets()
        sweep = self.result.sweep
        _, ny, nx, ns = sweep.shape
        z = self.page.value or 0
        x_labels, y_labels = sweep.labels("x") or ("",), sweep.labels("y") or ("",)
        children = [w.HTML("")]
        for x in range(nx):
            children += [w.HTML(f"<b>{html.escape(x_labels[x])}</b>")] + [w.HTML("") for _ in range(ns - 1)]
        by_place = {(c.cell.y, c.cell.x, c.cell.seed_index): c for c in self.result.cells if c.cell.z == z}
        self.buttons = {}
        for y in range(ny):
            children.append(w.HTML(f"<b>{html.escape(y_labels[y])}</b>"))
            for x in range(nx):
                for s in range(ns):
                    outcome = by_place.get((y, x, s))
                    children.append(self._tile(outcome))
        self.cells.children = children
        self.cells.layout.grid_template_columns = f"auto repeat({nx * ns}, {self.thumb + 8}px)"

    def label(self, index: int) -> str:
        """Cell ``index``'s label: its axis values, then its seed (``CFG: 4, Steps: 10, seed 2``)."""
        sweep = self.result.sweep
        cell = self.result.cells[index].cell
        parts = [labels[getattr(cell, name)] for name in ("x", "y", "z") if (labels := sweep.labels(name))]
        if not ("seed" in (a.param for a in sweep.axes.values()) and sweep.shape[3] == 1):
            parts.append(f"seed {cell.params.seed}")
        return ", ".join(parts)

    def _tile(self, outcome: Any):
        w = _widgets()
        if outcome is None:
            return w.HTML("")
        index = outcome.cell.index
        label = self.label(index)
        button = w.Button(
            description=label,
            tooltip=f"{label}\n{outcome.error or outcome.cell.params.prompt}",
            layout=w.Layout(width=f"{self.thumb + 4}px"),
            button_style="" if outcome.ok else "danger",
        )
        button.style.font_size = "11px"
        button.on_click(lambda _b, i=index: self.select(i))
        self.buttons[index] = button
        if not outcome.ok:
            return w.VBox([w.HTML("<small>✕ failed</small>"), button])
        thumb = w.Image(
            value=png_bytes(outcome.image),
            format="png",
            layout=w.Layout(width=f"{self.thumb}px", height=f"{self.thumb}px", object_fit="contain"),
        )
        return w.VBox([thumb, button])

    def details(self, index: int) -> dict[str, Any]:
        """Cell ``index``'s parameters as made: the image's real width and height and the scheduler
        the backend used where the request left them to the model."""
        outcome = self.result.cells[index]
        shown = {k: v for k, v in outcome.cell.params.to_dict().items() if k != "num_images"}
        record = outcome.record or {}
        made = record.get("params") if isinstance(record.get("params"), Mapping) else {}
        for key in ("width", "height", "scheduler"):
            if shown.get(key) is None and made.get(key) is not None:
                shown[key] = made[key]
        if outcome.image is not None:
            shown["width"], shown["height"] = outcome.image.size
        if shown.get("scheduler") is None and isinstance(record.get("scheduler"), str):
            shown["scheduler"] = record["scheduler"]
        return {k: MODEL_DEFAULT if v is None else v for k, v in shown.items()}

    def select(self, index: int) -> None:
        """Show cell ``index`` (its place in ``result.cells``) large, with its label and parameters."""
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.result.cells):
            raise ValidationError("index", index, f"must be a cell index from 0 to {len(self.result.cells) - 1}")
        outcome = self.result.cells[index]
        self.selected = index
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.details(index).items()
        )
        head = f"<b>{html.escape(self.label(index))}</b>"
        if outcome.ok:
            self.image.value = png_bytes(outcome.image)
            self.info.value = f"{head}<table>{rows}</table>"
        else:
            self.image.value = b""
            self.info.value = (
                f"{head}<div style='color:#b00'>{html.escape(outcome.error or 'failed')}</div><table>{rows}</table>"
            )
