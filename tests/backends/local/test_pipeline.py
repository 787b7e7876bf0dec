import numpy as np
import pytest

from sdkit import GenerationParams, GenerationResult, LocalBackend, ModelError, ValidationError


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_generates_a_64px_image_with_full_result(backend):
    result = backend.generate(GenerationParams("a red circle", seed=7, num_inference_steps=20))
    assert isinstance(result, GenerationResult)
    assert result.images[0].size == (64, 64)
    assert result.seeds == (7,)
    assert (result.params.width, result.params.height) == (64, 64)  # native size resolved and recorded
    assert result.model == "tiny"
    assert result.backend == "local"
    assert result.timings.generate_s > 0
    assert result.details["generator"] == "cpu"
    assert result.details["scheduler_class"] == "DDIMScheduler"  # the trained model's own
    assert len(result.details["model_hash"]) == 64


def test_same_seed_same_pixels_other_seed_other_pixels(backend):
    p = GenerationParams("a blue square", seed=11, num_inference_steps=4)
    a = backend.generate(p).images[0]
    b = backend.generate(p).images[0]
    c = backend.generate(p.replace(seed=12)).images[0]
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))


def test_batch_uses_one_generator_per_image(backend):
    batch = backend.generate(GenerationParams("a star", seed=5, num_images=3, num_inference_steps=4))
    assert batch.seeds == (5, 6, 7)
    assert batch.details["batch_size"] == 3
    for i, seed in enumerate(batch.seeds):
        alone = backend.generate(GenerationParams("a star", seed=seed, num_inference_steps=4)).images[0]
        assert np.abs(pixels(alone) - pixels(batch.images[i])).max() <= 1
    assert not np.array_equal(pixels(batch.images[0]), pixels(batch.images[1]))


def test_generate_many_batches_compatible_requests_in_order(backend):
    params = [
        GenerationParams("a", seed=1, num_inference_steps=2),
        GenerationParams("b", seed=2, num_inference_steps=3),
        GenerationParams("c", seed=3, num_inference_steps=2),
    ]
    results = backend.generate_many(params)
    assert [r.params.prompt for r in results] == ["a", "b", "c"]
    assert [r.details["batch_size"] for r in results] == [2, 1, 2]
    assert [r.details["batch_offset"] for r in results] == [0, 0, 1]


def test_scheduler_by_a1111_name(backend):
    result = backend.generate(GenerationParams("x", seed=1, num_inference_steps=3, scheduler="DPM++ 2M Karras"))
    assert result.details["scheduler_class"] == "DPMSolverMultistepScheduler"
    assert result.details["scheduler_config"]["use_karras_sigmas"] is True
    assert result.details["scheduler"] == "DPM++ 2M Karras"
    default = backend.generate(GenerationParams("x", seed=1, num_inference_steps=3))
    assert default.details["scheduler_class"] == "DDIMScheduler"


def test_other_size_and_sdxl_path():
    xl = LocalBackend(progress=False)
    result = xl.generate(
        GenerationParams("a red circle", seed=3, num_inference_steps=2, width=128, height=64, model="tiny-sdxl")
    )
    assert result.images[0].size == (128, 64)
    assert result.details["pipeline_class"] == "StableDiffusionXLPipeline"


def test_pipeline_is_loaded_once(backend):
    backend.generate(GenerationParams("x", seed=1, num_inference_steps=1))
    pipe = backend.load("tiny")
    again = backend.generate(GenerationParams("y", seed=2, num_inference_steps=1))
    assert backend.load("tiny") is pipe
    assert again.timings.load_s == 0.0


def test_step_callback_reports_progress(backend):
    steps = []
    backend.generate(GenerationParams("x", seed=1, num_inference_steps=3), on_step=lambda s, n: steps.append((s, n)))
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_memory_preset_t4_enables_vae_slicing_and_tiling():
    b = LocalBackend(memory="t4", progress=False)
    pipe = b.load("tiny")
    assert pipe.vae.use_slicing and pipe.vae.use_tiling


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"memory": "huge"}, "memory"),
        ({"memory": "low"}, "memory"),
        ({"device": "tpu"}, "device"),
        ({"dtype": "int8"}, "dtype"),
        ({"device": "cuda"}, "device"),
    ],
)
def test_bad_backend_options(kwargs, field):
    with pytest.raises(ValidationError) as info:
        LocalBackend(**kwargs)
    assert info.value.field == field


def test_missing_model_folder_is_a_model_error(tmp_path):
    b = LocalBackend(progress=False)
    with pytest.raises(ModelError, match="empty"):
        b.generate(GenerationParams("x", model=str(tmp_path / "empty")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="could not load"):
        b.generate(GenerationParams("x", model=str(tmp_path / "empty")))


def test_generate_many_reports_each_result_and_can_keep_going(backend):
    seen = []
    params = [
        GenerationParams("a", seed=1, num_inference_steps=1),
        GenerationParams("b", seed=2, num_inference_steps=2),
    ]
    results = backend.generate_many(params, on_result=lambda i, r: seen.append((i, r.params.prompt)))
    assert sorted(seen) == [(0, "a"), (1, "b")]
    broken = [*params, GenerationParams("c", seed=3, model="/nonexistent/model")]
    results = backend.generate_many(broken, return_errors=True)
    assert isinstance(results[2], ModelError)
    assert [r.params.prompt for r in results[:2]] == ["a", "b"]
    with pytest.raises(ModelError):
        backend.generate_many(broken)


def closed_loopback_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hub_unreachable(monkeypatch):
    """Online mode, with the hub on a closed loopback port: a connection fails at once."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_loopback_port()}")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def make_model_paths(tmp_path):
    (tmp_path / "v1-5-pruned.safetensors").write_bytes(b"\0" * 16)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "style.safetensors").write_bytes(b"\0" * 16)
    (tmp_path / "download" / "sd15").mkdir(parents=True)
    (tmp_path / "download" / "sd15" / "model_index.json").write_text("{}")


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("tiny2", "not an embedded model, a local folder or a Hugging Face hub id (owner/name); did you mean 'tiny'?"),
        ("Tiny", "did you mean 'tiny'?"),
        ("{tmp}/v1-5-pruned.safetensors", "not a readable .safetensors file (its header is damaged)"),
        ("{tmp}/notes.txt", "a file, not a model folder"),
        (
            "{tmp}/loras",
            "folder without model_index.json; sdkit loads diffusers folders (model_index.json); it holds "
            "single-file checkpoints (style.safetensors): give one of them",
        ),
        ("{tmp}/download", "did you mean '{tmp}/download/sd15'?"),
        ("{tmp}/missing", "no such folder"),
        ("./missing", "no such folder"),
        ("v1-5-pruned-emaonly.ckpt", "no such file"),
    ],
)
def test_a_model_that_cannot_be_one_is_refused_at_once_saying_what_it_is(tmp_path, hub_unreachable, model, says):
    import time

    from sdkit.backends.local.pipeline import check_model
    from sdkit.errors import InvalidModelError

    make_model_paths(tmp_path)
    model = model.format(tmp=tmp_path)
    start = time.perf_counter()
    with pytest.raises(InvalidModelError) as info:
        check_model(model)
    assert time.perf_counter() - start < 1.0  # no hub call, no retries
    assert (info.value.field, info.value.value) == ("model", model)
    assert says.format(tmp=tmp_path) in str(info.value)
    assert isinstance(info.value, ModelError) and isinstance(info.value, ValidationError)


def test_a_hub_id_not_cached_fails_at_once_when_offline(monkeypatch):
    from sdkit.backends.local.pipeline import check_model
    from sdkit.errors import InvalidModelError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE is set") as info:
        check_model("sdkit-tests/not-cached")
    assert not isinstance(info.value, InvalidModelError)  # not a typo: the hub is out of reach (exit 1)


def test_a_hub_id_not_cached_fails_within_the_check_bound_when_the_hub_cannot_be_reached(hub_unreachable):
    import time

    from sdkit.backends.local.pipeline import HUB_CHECK_S, check_model

    start = time.perf_counter()
    with pytest.raises(ModelError, match=r"not in the local Hugging Face cache, and the hub cannot be reached \(127"):
        check_model("sdkit-tests/not-cached")
    assert time.perf_counter() - start < HUB_CHECK_S + 1


def test_a_cached_hub_id_loads_from_the_cache_without_asking_the_hub(tmp_path, monkeypatch, hub_unreachable):
    from huggingface_hub import constants

    from sdkit.backends.local.pipeline import _model_folder

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--sdkit-tests--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "model_index.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    folder, revision = _model_folder("sdkit-tests/cached")
    assert folder == repo / "snapshots" / commit
    assert revision == commit


def test_a_local_diffusers_folder_and_the_embedded_models_pass(tmp_path):
    from sdkit.backends.local.pipeline import _model_folder, check_model

    make_model_paths(tmp_path)
    assert _model_folder(str(tmp_path / "download" / "sd15")) == (tmp_path / "download" / "sd15", None)
    for name in ("tiny", "tiny-random", "tiny-sdxl"):
        check_model(name)  # embedded: nothing is built to check them


def test_a_near_miss_embedded_name_suggests_the_right_one():
    from sdkit.backends.local.embedded import embedded_model_path

    with pytest.raises(ModelError, match="did you mean 'tiny-sdxl'"):
        embedded_model_path("tiny_sdxl")


@pytest.mark.parametrize("scheduler", ["Heun", "PNDM", "Euler"])
def test_progress_reaches_its_total_exactly_once_whatever_the_scheduler(scheduler):
    # Heun and PNDM call the step callback more often than num_inference_steps: the bar must not sit full.
    seen = []
    backend = LocalBackend(progress=False)
    params = GenerationParams("a red circle", seed=1, num_inference_steps=4, scheduler=scheduler)
    backend.generate(params, on_step=lambda step, total: seen.append((step, total)))
    totals = {t for _, t in seen}
    assert len(totals) == 1
    assert [s for s, _ in seen] == list(range(1, totals.pop() + 1))


def test_a_step_count_the_scheduler_cannot_run_is_refused_before_the_model_loads():
    from sdkit.backends.base import check

    b = LocalBackend(progress=False)
    bad = GenerationParams("a red circle", seed=1, num_inference_steps=2, scheduler="PNDM")
    with pytest.raises(ValidationError) as info:
        check(b, [GenerationParams("a red circle", seed=1, num_inference_steps=4, scheduler="PNDM"), bad])
    assert (info.value.field, info.value.value) == ("num_inference_steps", 2)
    with pytest.raises(ValidationError, match="PNDM needs at least 4 steps"):
        b.generate(bad)
    assert b._loaded is None  # refused from the scheduler config on disk: nothing loaded


def test_a_model_whose_config_is_not_on_disk_is_checked_after_loading_before_the_call(backend, monkeypatch):
    import sdkit.backends.local.pipeline as pipeline

    monkeypatch.setattr(pipeline, "built_model_path", lambda name: None)
    bad = GenerationParams("a red circle", seed=1, num_inference_steps=3, scheduler="PNDM")
    backend.check([bad])  # nothing on disk to read: the check waits for the loaded config
    with pytest.raises(ValidationError, match="num_inference_steps=3"):
        backend.generate(bad)
    (error,) = backend.generate_many([bad], return_errors=True)
    assert isinstance(error, ValidationError)
