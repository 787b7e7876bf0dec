import pytest

from sdkit import GenerationParams
from sdkit.widgets import PromptLab, png_bytes, python_call

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def lab(backend):
    return PromptLab(backend, models=("tiny", "tiny-sdxl"))


def test_generate_button_shows_image_history_and_code(lab):
    lab.prompt.value = "a green square"
    lab.seed.value = 42
    lab.steps.value = 3
    lab.generate_button.click()
    assert bytes(lab.image.value).startswith(PNG)
    assert len(lab.history) == 1 and len(lab.history_box.children) == 1
    assert lab.progress.value == lab.progress.max == 3
    assert "seed 42" in lab.status.value
    assert "seed=42" in lab.code.value and "'a green square'" in lab.code.value


def test_copied_code_reproduces_the_image(lab):
    lab.seed.value, lab.steps.value = 9, 2
    result = lab.generate()
    namespace = {}
    exec(lab.code.value.replace("result.images[0]", "image = result.images[0]"), namespace)
    assert namespace["image"].tobytes() == result.images[0].tobytes()


def test_unlocked_seed_is_drawn_and_shown(lab):
    lab.lock_seed.value = False
    lab.steps.value = 1
    a = lab.generate()
    b = lab.generate()
    assert a.seeds[0] == a.params.seed
    assert a.seeds[0] != b.seeds[0]
    assert lab.seed.value == b.seeds[0]


def test_history_entry_restores_its_settings(lab):
    lab.prompt.value, lab.seed.value, lab.steps.value, lab.scheduler.value = "first", 1, 2, "DDIM"
    first = lab.generate()
    lab.prompt.value, lab.seed.value, lab.steps.value, lab.scheduler.value = "second", 2, 3, "Euler a"
    lab.generate()
    restore_button = lab.history_box.children[0].children[1]
    restore_button.click()
    assert (lab.prompt.value, lab.seed.value, lab.steps.value, lab.scheduler.value) == ("first", 1, 2, "DDIM")
    assert lab.params() == first.params
    assert bytes(lab.image.value) == png_bytes(first.images[0])
    assert "'first'" in lab.code.value


def test_bad_input_is_shown_not_raised(lab):
    lab.prompt.value = "   "
    assert lab.generate() is None
    assert "prompt" in lab.status.value
    assert lab.history == []


def test_python_call_leaves_defaults_out():
    code = python_call(GenerationParams("a cat", seed=3))
    assert "seed=3" in code and "guidance_scale" not in code


def test_sweep_panel_counts_before_running_and_refuses_bad_values(backend):
    from sdkit.widgets import SweepPanel

    panel = SweepPanel(backend)
    assert "12 image(s)" in panel.count.value and "3 × 4" in panel.count.value
    panel.seeds.value = "2"
    assert "24 image(s)" in panel.count.value
    panel.axis_values["y"].value = "5-20 (5)"  # the step needs its sign
    assert "step needs its sign" in panel.count.value and panel.run_button.disabled
    panel.axis_params["y"].value = "(none)"
    assert "6 image(s)" in panel.count.value and not panel.run_button.disabled


def test_sweep_panel_runs_shows_the_grid_and_a_viewer(backend):
    from sdkit.widgets import SweepPanel

    panel = SweepPanel(backend)
    panel.axis_values["x"].value = "1,7"
    panel.axis_values["y"].value = "1-2"
    panel.run_button.click()
    assert panel.result is not None and len(panel.result.cells) == 4
    assert panel.progress.value == 4
    assert bytes(panel.grid.value).startswith(PNG)
    assert "4 image(s): 4 made" in panel.status.value
    viewer = panel.viewer
    viewer.buttons[3].click()
    assert viewer.selected == 3
    assert bytes(viewer.image.value) == png_bytes(panel.result.cells[3].image)
    assert "guidance_scale" in viewer.info.value and ">7.0<" in viewer.info.value


def test_grid_viewer_shows_failed_cells_with_their_error(backend):
    from sdkit import Sweep, run_sweep
    from sdkit.widgets import GridViewer

    sweep = Sweep(GenerationParams("x", seed=1, num_inference_steps=1), x="model=tiny,/nonexistent/model")
    result = run_sweep(sweep, backend, progress=False)
    viewer = GridViewer(result)
    viewer.buttons[1].click()
    assert "nonexistent" in viewer.info.value
    assert viewer.buttons[1].button_style == "danger"
