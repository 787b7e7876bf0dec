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
