import io
import os
import time
from itertools import pairwise
from pathlib import Path

import pytest

from sdkit import GenerationParams
from sdkit.backends.base import Capabilities
from sdkit.notebook.widgets import PromptLab, png_bytes, python_call

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
    from sdkit.notebook.widgets import SweepPanel

    panel = SweepPanel(backend)
    assert "12 image(s)" in panel.count.value and "3 × 4" in panel.count.value
    panel.seeds.value = "2"
    assert "24 image(s)" in panel.count.value
    panel.axis_values["y"].value = "5-20 (5)"  # the step needs its sign
    assert "step needs its sign" in panel.count.value and panel.run_button.disabled
    panel.axis_params["y"].value = "(none)"
    assert "6 image(s)" in panel.count.value and not panel.run_button.disabled


def test_sweep_panel_runs_shows_the_grid_and_a_viewer(backend):
    from sdkit.notebook.widgets import SweepPanel

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


def test_grid_viewer_shows_failed_cells_with_their_error():
    from sdkit import Sweep, run_sweep
    from sdkit.notebook.widgets import GridViewer
    from tests.sweeps.test_runner import FakeBackend  # a prompt holding FAIL fails

    sweep = Sweep(GenerationParams("x", seed=1, num_inference_steps=1), x="prompt=x,FAIL here")
    result = run_sweep(sweep, FakeBackend(), progress=False)
    viewer = GridViewer(result)
    viewer.buttons[1].click()
    assert "GenerationError: cannot draw &#x27;FAIL here&#x27;" in viewer.info.value  # escaped as HTML
    assert viewer.buttons[1].button_style == "danger"


# --- the progress bar follows the steps while the call runs -------------------------------------


def test_progress_bar_takes_each_step_while_generating(lab):
    """Each step moves the bar and its update is sent to the front end at once (before the call
    returns and the image is sent), which is what a browser needs to see it move."""
    lab.steps.value = 4
    seen, sent = [], []
    lab.progress.observe(lambda change: seen.append(change["new"]), names="value")

    def recorder(name):
        def send(data=None, metadata=None, buffers=None):
            state = dict(data.get("state", {}))
            state.update({path[0]: "<buffer>" for path in data.get("buffer_paths", [])})  # bytes travel apart
            sent.append((name, state))

        return send

    lab.progress.comm.send, lab.image.comm.send = recorder("progress"), recorder("image")
    lab.generate()
    assert seen == [1, 2, 3, 4]
    steps_sent = [state["value"] for name, state in sent if name == "progress" and state.get("value")]
    first_image = next(i for i, (name, state) in enumerate(sent) if name == "image" and "value" in state)
    before_image = [state["value"] for name, state in sent[:first_image] if name == "progress" and state.get("value")]
    assert steps_sent == before_image == [1, 2, 3, 4]


KERNEL_CODE = """
import time, sdkit
from sdkit.notebook.widgets import PromptLab
lab = PromptLab(sdkit.LocalBackend(progress=False))
lab.steps.value = 4
lab.generate()  # loads the model
lab.seed.value = 2
lab.progress.observe(lambda _change: time.sleep(0.25), names="value")  # each step takes a visible while
print(lab.generate_button.comm.comm_id, lab.progress.comm.comm_id)
"""


def test_progress_reaches_a_front_end_step_by_step_from_a_real_kernel():
    """What a browser receives: a kernel runs the panel, a Generate click arrives as a comm message
    (as JupyterLab sends it) and each step's update leaves the kernel while the handler still runs."""
    manager = pytest.importorskip("jupyter_client.manager")
    pytest.importorskip("ipykernel")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    km, kc = manager.start_new_kernel(kernel_name="python3", env=env, cwd=root)
    try:
        output = []
        kc.execute_interactive(KERNEL_CODE, timeout=180, output_hook=output.append)
        assert not [m for m in output if m["msg_type"] == "error"], output
        button, progress = "".join(m["content"].get("text", "") for m in output if m["msg_type"] == "stream").split()
        click = kc.session.msg(
            "comm_msg", {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
        )
        kc.shell_channel.send(click)
        received, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != click["header"]["msg_id"]:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            if msg["msg_type"] == "comm_msg":
                comm, state = msg["content"]["comm_id"], msg["content"]["data"].get("state", {})
                received.append((time.monotonic(), comm, state))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    steps = [(t, state["value"]) for t, comm, state in received if comm == progress and state.get("value")]
    assert [value for _, value in steps] == [1, 2, 3, 4]
    assert all(later - earlier > 0.15 for (earlier, _), (later, _) in pairwise(steps))  # not one burst
    enabled_again = next(t for t, comm, state in received if comm == button and state.get("disabled") is False)
    assert steps[-1][0] <= enabled_again  # all of them before the handler finished


def test_progress_bar_stays_within_its_range_when_the_backend_counts_more_steps(lab):
    class Backend:  # a second-order scheduler calls back more often than it has steps
        name = "fake"
        capabilities = Capabilities(step_progress=True)

        def generate(self, params, *, on_step=None):
            for step in range(1, 2 * params.num_inference_steps):
                on_step(step, params.num_inference_steps)
            raise RuntimeError("stopped after the steps")

    lab = PromptLab(Backend())
    lab.steps.value = 3
    seen = []
    lab.progress.observe(lambda change: seen.append(change["new"]), names="value")
    lab.generate()
    assert seen == [1, 2, 3] and lab.progress.max == 3


# --- errors are shown in the panel -------------------------------------------------------------


def test_backend_failure_is_shown_in_the_panel_not_raised():
    class Broken:
        name = "broken"

        def generate(self, params):
            raise ImportError("LMSDiscreteScheduler requires the scipy library")

    lab = PromptLab(Broken())
    assert lab.generate() is None
    assert "ImportError: LMSDiscreteScheduler requires the scipy library" in lab.status.value
    assert lab.progress.bar_style == "danger" and not lab.generate_button.disabled
    assert lab.history == []


def test_a_backend_that_leaves_the_size_to_the_model_shows_the_images_size_and_its_own_code():
    from PIL import Image

    from sdkit import ValidationError
    from sdkit.result import GenerationResult

    class Remote:
        name = "relay"

        def generate(self, params):
            image = Image.new("RGB", (96, 64))
            return GenerationResult(params, (image,), (params.seed,), params.model, self.name)

    lab = PromptLab({"relay": Remote()})
    lab.generate()
    assert "96×64" in lab.status.value and "None" not in lab.status.value
    lab.code.value = ""
    lab.history_box.children[0].children[1].click()
    assert "sdkit.create_backend('relay')" in lab.code.value and "LocalBackend" not in lab.code.value
    with pytest.raises(ValidationError, match="index=1: must be a history entry from 0 to 0"):
        lab.restore(1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backend": None}, "backend=None"),
        ({"backend": {"a": object()}}, "backend['a']"),
        ({"models": ()}, "models=()"),
        ({"history_size": 0}, "history_size=0"),
        ({"params": "a cat"}, "params='a cat'"),
    ],
)
def test_prompt_lab_refuses_bad_arguments_by_name(backend, kwargs, field):
    from sdkit import ValidationError

    args = {"backend": backend, **kwargs}
    with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        PromptLab(args.pop("backend"), **args)


def test_prompt_lab_keeps_a_size_or_steps_outside_its_menus(backend):
    start = GenerationParams("a cat", seed=1, width=320, height=192, num_inference_steps=200)
    lab = PromptLab(backend, params=start)
    assert (lab.width.value, lab.height.value, lab.steps.value) == (320, 192, 200)
    assert lab.params() == start.replace(model="tiny")
    lab.set_params(GenerationParams("a dog", seed=2, width=96, height=64))
    assert (lab.width.value, lab.height.value) == (96, 64)
    lab.set_params(start)
    assert lab.params() == start.replace(model="tiny")


# --- SweepPanel and GridViewer ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_sweep(backend):
    from sdkit.notebook.widgets import SweepPanel

    panel = SweepPanel(backend)
    panel.steps.value = 2
    panel.axis_values["x"].value = "4,7"
    panel.axis_values["y"].value = "2-3"
    panel.seeds.value = "2"
    panel.run_button.click()
    return panel


def test_grid_viewer_buttons_read_their_cells_label(small_sweep):
    viewer = small_sweep.viewer
    descriptions = [viewer.buttons[i].description for i in sorted(viewer.buttons)]
    assert descriptions == [
        f"CFG: {cfg}, Steps: {steps}, seed {seed}" for steps in (2, 3) for cfg in (4, 7) for seed in (1, 2)
    ]


def test_grid_viewer_details_show_the_size_and_scheduler_as_made(small_sweep):
    viewer = small_sweep.viewer
    viewer.buttons[3].click()
    info = viewer.info.value
    assert "<b>CFG: 7, Steps: 2, seed 2</b>" in info
    assert "<th style='text-align:left'>width</th><td>64</td>" in info
    assert "<th style='text-align:left'>height</th><td>64</td>" in info
    assert "<th style='text-align:left'>scheduler</th><td>DDIM</td>" in info
    assert "None" not in info


def test_sweep_panel_shows_the_grid_at_its_own_size(small_sweep):
    from PIL import Image

    from sdkit.notebook.widgets import GRID_CELL_PX

    grid = Image.open(io.BytesIO(bytes(small_sweep.grid.value)))
    # 64 px images: the grid draws them at 128 px already, so it is shown 1:1, capped at the panel's width
    assert small_sweep.grid.layout.width == f"{grid.width}px"
    assert small_sweep.grid.layout.max_width == "100%" and small_sweep.grid.layout.height == "auto"
    assert grid.width < 4 * (GRID_CELL_PX + 16) + 200  # 2 columns of 2 seeds, not stretched


def test_grid_scale_brings_small_cells_up_to_about_grid_cell_px(small_sweep):
    from PIL import Image

    from sdkit.notebook.widgets import grid_scale

    page = Image.new("RGB", (300, 200))
    assert grid_scale(small_sweep.result, page) == 1  # 64 px images are drawn at 128 px in the grid
    big = small_sweep.result.cells[0].image.resize((16, 16))
    tiny_cells = type(small_sweep.result)(
        small_sweep.result.sweep,
        tuple(type(c)(c.cell, c.key, c.status, image=big) for c in small_sweep.result.cells),
        small_sweep.result.backend,
    )
    assert grid_scale(tiny_cells, page) == 1  # 16 px images are drawn at 128 px too


def test_sweep_panel_shows_each_z_page(backend):
    from sdkit import ValidationError
    from sdkit.notebook.widgets import SweepPanel

    panel = SweepPanel(backend)
    panel.steps.value = 1
    panel.axis_values["x"].value = "4"
    panel.axis_params["y"].value = "(none)"
    panel.axis_params["z"].value = "seed"
    panel.axis_values["z"].value = "5,6"
    panel.run_button.click()
    assert panel.grid_page.layout.display == "" and panel.grid_page.options == (("Seed: 5", 0), ("Seed: 6", 1))
    first = bytes(panel.grid.value)
    panel.grid_page.value = 1
    assert bytes(panel.grid.value) == png_bytes(panel.pages[1]) != first
    assert [b.description for b in panel.viewer.buttons.values()] == ["CFG: 4, Seed: 5"]
    with pytest.raises(ValidationError, match="z=2: must be a grid page from 0 to 1"):
        panel.show_grid(2)


def test_sweep_panel_names_an_output_folder_it_cannot_write(backend, tmp_path):
    from sdkit.notebook.widgets import SweepPanel

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    panel = SweepPanel(backend, out=blocker / "sweep")
    panel.axis_params["y"].value = "(none)"
    assert panel.run() is None
    assert f"out=&#x27;{blocker / 'sweep'}&#x27;: cannot write there" in panel.status.value
    assert panel.progress.bar_style == "danger" and not panel.run_button.disabled


def test_sweep_panel_asks_for_seeds_when_the_field_is_empty(backend):
    from sdkit.notebook.widgets import SweepPanel

    panel = SweepPanel(backend)
    panel.seeds.value = " "
    assert "seeds=&#x27;&#x27;: type a count of images per cell" in panel.count.value
    assert panel.run_button.disabled


def test_grid_viewer_refuses_bad_arguments_by_name(small_sweep):
    from sdkit import ValidationError
    from sdkit.notebook.widgets import GridViewer

    with pytest.raises(ValidationError, match="thumb=0"):
        GridViewer(small_sweep.result, thumb=0)
    with pytest.raises(ValidationError, match="result="):
        GridViewer([])
    with pytest.raises(ValidationError, match="index=8: must be a cell index from 0 to 7"):
        small_sweep.viewer.select(8)


# --- display -------------------------------------------------------------------------------


def test_result_html_shows_the_image_size_when_the_params_leave_it_to_the_model():
    from PIL import Image

    from sdkit.notebook.display import result_html
    from sdkit.result import GenerationResult

    result = GenerationResult(
        params=GenerationParams("a cat", seed=3),
        images=(Image.new("RGB", (96, 64)),),
        seeds=(3,),
        model="some/model",
        backend="remote",
    )
    text = result_html(result)
    assert "96×64" in text and "None" not in text and "model default" in text


def test_panels_take_a_backend_kind_by_name_through_the_registry():
    import sdkit
    from sdkit.notebook.widgets import SweepPanel

    lab = PromptLab({"local": "local"})
    assert isinstance(lab.backends["local"], sdkit.LocalBackend)
    assert isinstance(SweepPanel("local").backend_, sdkit.LocalBackend)
    with pytest.raises(sdkit.ValidationError, match="did you mean 'local'"):
        PromptLab("locl")


def test_prompt_lab_counts_tokens_as_the_prompt_changes_and_takes_the_syntax(lab):
    lab.prompt.value = "a (red:1.5) circle on a [blue] background"
    assert "7/75 · 1 chunk" in lab.tokens.value
    lab.prompt.value = "red " * 80
    assert "80/150 · 2 chunks" in lab.tokens.value
    lab.negative_prompt.value = "green"
    assert "negative 1/75" in lab.tokens.value
    lab.negative_prompt.value = ""
    lab.prompt.value = "a [red:green:0.5] circle BREAK on a blue background"
    lab.clip_skip.value = 2
    result = lab.generate()
    assert result is not None and result.params.clip_skip == 2
    assert "clip_skip=2" in lab.code.value
    lab.clip_skip.value = 1
    assert lab.params().clip_skip is None
    lab.set_params(result.params)
    assert lab.clip_skip.value == 2
    lab.model.value = "no/such-model-here"
    assert lab.tokens.value == ""  # no tokenizer on this machine: no counter, no error


def test_prompt_labs_picker_offers_the_image_services(backend):
    import sdkit

    key = "sk-planted-lab-0123456789"
    with sdkit.FakeStability(api_key=key) as stability, sdkit.FakeBFL(api_key=key) as flux:
        backends = {
            "local": backend,
            "stability": sdkit.create_backend("stability", base_url=stability.url, api_key=key),
            "flux": sdkit.create_backend("bfl", base_url=flux.url, api_key=key, poll_interval=0.01),
        }
        lab = PromptLab(backends, models=("tiny",))
        assert list(lab.backend.options) == ["local", "stability", "flux"]
        lab.prompt.value, lab.seed.value = "a lighthouse", 5
        lab.width.value = lab.height.value = 64
        for name, api in (("stability", "stability"), ("flux", "bfl")):
            lab.backend.value = name
            result = lab.generate()
            assert result is not None and result.backend == api and result.seeds == (5,)
            assert bytes(lab.image.value).startswith(PNG) and "seed 5" in lab.status.value
            assert f"sdkit.create_backend({api!r})" in lab.code.value
            assert key not in lab.code.value + lab.status.value
        assert len(stability.api_requests) == 1 and len(flux.api_requests) == 1
