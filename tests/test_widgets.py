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
