"""PromptLab and SweepPanel offer variation seeds, img2img and hires fix (issue 16)."""

import io

from PIL import Image

from sdkit.notebook.widgets import PromptLab, SweepPanel


def test_prompt_lab_makes_a_hires_image_then_img2img_from_the_image_shown(backend):
    lab = PromptLab(backend)
    lab.steps.value = 3
    assert lab.modes.fields() == {}  # folded and off: params as before
    lab.modes.hires_scale.value = 2.0
    result = lab.generate()
    assert result.images[0].size == (128, 128) and "128×128" in lab.status.value
    assert "hires_scale=2.0" in lab.code.value
    lab.modes.hires_scale.value = 1.0
    lab.modes.use_shown_button.click()
    assert lab.modes.init_image.value.startswith("sha256:")
    lab.modes.denoising_strength.value = 0.5
    again = lab.generate()
    assert again.params.init_image == lab.modes.init_image.value and again.params.denoising_strength == 0.5
    lab.restore(0)  # the history puts the hires entry back, init image cleared
    assert lab.modes.hires_scale.value == 2.0 and lab.modes.init_image.value == ""
    assert Image.open(io.BytesIO(bytes(lab.image.value))).size == (128, 128)


def test_sweep_panel_offers_the_new_axes_and_counts_a_variation_sweep(backend):
    panel = SweepPanel(backend)
    for name in ("variation_strength", "denoising_strength", "hires_scale", "hires_upscaler"):
        assert name in panel.axis_params["x"].options
    panel.axis_params["x"].value = "variation_strength"
    panel.axis_values["x"].value = "0,0.5,1"
    panel.axis_params["y"].value = "(none)"
    assert "needs a variation_seed" in panel.count.value and panel.run_button.disabled
    panel.modes.variation_seed.value = 7
    assert "3 image(s)" in panel.count.value and not panel.run_button.disabled
