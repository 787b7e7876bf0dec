"""Widget controls for variation seeds, img2img and hires fix, shared by PromptLab and SweepPanel (issue 16)."""

from __future__ import annotations

from typing import Any

from sdkit.params import HIRES_UPSCALERS, MAX_HIRES_SCALE, MAX_SEED, GenerationParams

__all__ = ["ModeControls"]


class ModeControls:
    """Variation seed and strength, an init image (a path or URL, or the image shown) with its denoising
    strength, and hires fix (scale 1 = off, steps 0 = the first pass's, denoising, upscaler) in a folded
    accordion. :meth:`fields` gives only the fields that differ from GenerationParams' defaults."""

    def __init__(self, start: GenerationParams, *, use_shown: Any = None) -> None:
        from sdkit.notebook.widgets import _widgets

        w = _widgets()
        self.variation_seed = w.BoundedIntText(
            value=start.variation_seed or 0, min=0, max=MAX_SEED, description="Var. seed"
        )
        self.variation_strength = w.FloatSlider(
            value=start.variation_strength, min=0.0, max=1.0, step=0.05, description="Var. strength"
        )
        self.init_image = w.Text(
            value=start.init_image or "", description="Init image", placeholder="path, URL or sha256: key (img2img)"
        )
        self.denoising_strength = w.FloatSlider(
            value=start.denoising_strength, min=0.0, max=1.0, step=0.05, description="Denoising"
        )
        self.hires_scale = w.FloatSlider(
            value=start.hires_scale, min=1.0, max=MAX_HIRES_SCALE, step=0.25, description="Hires ×"
        )
        self.hires_steps = w.BoundedIntText(value=start.hires_steps or 0, min=0, max=500, description="Hires steps")
        self.hires_denoising = w.FloatSlider(
            value=start.hires_denoising, min=0.0, max=1.0, step=0.05, description="Hires denoise"
        )
        self.hires_upscaler = w.Dropdown(
            options=list(HIRES_UPSCALERS), value=start.hires_upscaler, description="Upscaler"
        )
        children = [
            w.HBox([self.variation_seed, self.variation_strength]),
            w.HBox([self.init_image, self.denoising_strength]),
            w.HBox([self.hires_scale, self.hires_steps]),
            w.HBox([self.hires_denoising, self.hires_upscaler]),
        ]
        if use_shown is not None:
            self.use_shown_button = w.Button(description="use shown image", tooltip="img2img from the image shown")
            self.use_shown_button.on_click(lambda _b: use_shown())
            children[1].children = (*children[1].children, self.use_shown_button)
        self.box = w.Accordion(children=[w.VBox(children)], titles=("Variation · img2img · hires fix",))
        self.box.selected_index = None

    @property
    def controls(self) -> tuple[Any, ...]:
        return (self.variation_seed, self.variation_strength, self.init_image, self.denoising_strength,
                self.hires_scale, self.hires_steps, self.hires_denoising, self.hires_upscaler)  # fmt: skip

    def fields(self) -> dict[str, Any]:
        """GenerationParams fields for what is switched on (variation strength > 0, an init image, hires > 1)."""
        out: dict[str, Any] = {}
        if self.variation_strength.value > 0 or self.variation_seed.value:  # a seed alone: for a strength axis
            out["variation_seed"] = self.variation_seed.value
        if self.variation_strength.value > 0:
            out["variation_strength"] = self.variation_strength.value
        if self.init_image.value.strip():
            out.update(init_image=self.init_image.value.strip(), denoising_strength=self.denoising_strength.value)
        if self.hires_scale.value > 1:
            out.update(
                hires_scale=self.hires_scale.value,
                hires_steps=self.hires_steps.value or None,
                hires_denoising=self.hires_denoising.value,
                hires_upscaler=self.hires_upscaler.value,
            )
        return out

    def set(self, params: GenerationParams) -> None:
        self.variation_seed.value = params.variation_seed or 0
        self.variation_strength.value = params.variation_strength
        self.init_image.value = params.init_image or ""
        self.denoising_strength.value = params.denoising_strength
        self.hires_scale.value = params.hires_scale
        self.hires_steps.value = params.hires_steps or 0
        self.hires_denoising.value = params.hires_denoising
        self.hires_upscaler.value = params.hires_upscaler
