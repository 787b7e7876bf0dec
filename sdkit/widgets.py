"""ipywidgets front ends: :class:`PromptLab` for prompt experiments.

Every handler is a plain method (``generate``, ``restore``…) that updates widget values, so it
can be driven and tested without a browser; the buttons only call those methods.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import MissingDependencyError, SdkitError, ValidationError
from .params import MAX_SEED, GenerationParams
from .schedulers import A1111_SCHEDULERS

if TYPE_CHECKING:
    from .backend import Backend
    from .result import GenerationResult

__all__ = ["PromptLab", "python_call"]

MODEL_DEFAULT = "(model default)"
SIZES = (64, 128, 256, 384, 512, 640, 768, 896, 1024)


def _widgets():
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependencyError("ipywidgets", "notebooks") from None
    return ipywidgets


def png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


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
        backend: Backend | Mapping[str, Backend],
        *,
        models: Sequence[str] = ("tiny",),
        params: GenerationParams | None = None,
        history_size: int = 12,
        backend_code: Mapping[str, str] | None = None,
    ) -> None:
        w = _widgets()
        self.backends: dict[str, Backend] = dict(backend) if isinstance(backend, Mapping) else {backend.name: backend}
        if not self.backends:
            raise ValidationError("backend", backend, "needs at least one backend")
        self.backend_code = dict(backend_code or {})
        self.history: list[HistoryEntry] = []
        self.history_size = history_size
        self.last: GenerationResult | None = None
        start = params or GenerationParams("a red circle on a blue background", seed=1, model=models[0])
        sizes = [(str(s), s) for s in SIZES]
        self.prompt = w.Textarea(value=start.prompt, description="Prompt", layout=w.Layout(width="100%"))
        self.negative_prompt = w.Textarea(
            value=start.negative_prompt, description="Negative", layout=w.Layout(width="100%")
        )
        self.seed = w.BoundedIntText(value=start.seed, min=0, max=MAX_SEED, description="Seed")
        self.lock_seed = w.Checkbox(value=True, description="lock seed", indent=False)
        self.steps = w.IntSlider(value=start.num_inference_steps, min=1, max=150, description="Steps")
        self.guidance = w.FloatSlider(value=start.guidance_scale, min=0.0, max=30.0, step=0.5, description="Guidance")
        self.width = w.Dropdown(options=[("native", 0), *sizes], value=start.width or 0, description="Width")
        self.height = w.Dropdown(options=[("native", 0), *sizes], value=start.height or 0, description="Height")
        self.scheduler = w.Dropdown(
            options=[MODEL_DEFAULT, *A1111_SCHEDULERS], value=start.scheduler or MODEL_DEFAULT, description="Scheduler"
        )
        self.backend = w.Dropdown(options=list(self.backends), description="Backend")
        self.model = w.Combobox(value=start.model, options=list(models), description="Model", ensure_option=False)
        self.generate_button = w.Button(description="Generate", button_style="primary", icon="paint-brush")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="50%"))
        self.status = w.HTML(value="")
        self.image = w.Image(format="png", layout=w.Layout(width="256px", height="256px"))
        self.history_box = w.HBox(layout=w.Layout(overflow_x="auto"))
        self.code = w.Textarea(
            value="", description="Code", disabled=False, layout=w.Layout(width="100%", height="9em")
        )
        self.generate_button.on_click(lambda _b: self.generate())
        controls = w.VBox(
            [
                self.prompt,
                self.negative_prompt,
                w.HBox([self.seed, self.lock_seed]),
                self.steps,
                self.guidance,
                w.HBox([self.width, self.height]),
                self.scheduler,
                w.HBox([self.backend, self.model]),
                w.HBox([self.generate_button, self.progress]),
                self.status,
            ],
            layout=w.Layout(width="60%"),
        )
        self.container = w.VBox(
            [w.HBox([controls, self.image]), w.HTML("<b>History</b> (click to restore)"), self.history_box, self.code]
        )

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
        )

    def set_params(self, params: GenerationParams, backend: str | None = None) -> None:
        """Put ``params`` into the controls."""
        self.prompt.value = params.prompt
        self.negative_prompt.value = params.negative_prompt
        self.seed.value = params.seed
        self.steps.value = params.num_inference_steps
        self.guidance.value = params.guidance_scale
        self.width.value = params.width if params.width in SIZES else 0
        self.height.value = params.height if params.height in SIZES else 0
        self.scheduler.value = params.scheduler or MODEL_DEFAULT
        self.model.value = params.model
        if backend in self.backends:
            self.backend.value = backend

    # --- actions ---------------------------------------------------------------------------

    def _show_error(self, exc: Exception) -> None:
        import html

        self.status.value = f'<span style="color:#b00">{html.escape(str(exc))}</span>'

    def generate(self) -> GenerationResult | None:
        """Generate with the current settings; show the image, add it to the history, show its code.
        Errors are shown in the status line, never raised into the notebook."""
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
        self.progress.max, self.progress.value = params.num_inference_steps, 0
        self.status.value = "generating…"

        def on_step(step: int, total: int) -> None:
            self.progress.max, self.progress.value = total, step

        try:
            if "on_step" in inspect.signature(backend.generate).parameters:
                result = backend.generate(params, on_step=on_step)
            else:
                result = backend.generate(params)
        except SdkitError as exc:
            self._show_error(exc)
            return None
        finally:
            self.generate_button.disabled = False
        self.progress.value = self.progress.max
        self.last = result
        self.image.value = png_bytes(result.images[0])
        self.code.value = python_call(result.params, self.backend_code.get(self.backend.value, _backend_code(backend)))
        self.status.value = (
            f"seed {result.seeds[0]} · {result.params.width}×{result.params.height} · {result.timings.generate_s:.2f}s"
        )
        self._add_history(HistoryEntry(params=result.params, backend=self.backend.value, result=result))
        return result

    def restore(self, index: int) -> None:
        """Put history entry ``index`` (0 = oldest shown) back into the controls and show its image."""
        entry = self.history[index]
        self.set_params(entry.params, entry.backend)
        self.lock_seed.value = True
        self.last = entry.result
        self.image.value = png_bytes(entry.result.images[0])
        self.code.value = python_call(entry.params, self.backend_code.get(entry.backend, "sdkit.LocalBackend()"))

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


def _backend_code(backend: Backend) -> str:
    if backend.name == "local":
        return "sdkit.LocalBackend()"
    return f"...  # the {backend.name} backend"
