"""A1111's prompt language on the embedded models: what changes an image and what must not."""

import logging
import warnings

import numpy as np
import pytest

from sdkit import GenerationParams, LocalBackend, ValidationError

BASE = "a red circle on a blue background"


def pixels(backend, prompt, model="tiny", **kw):
    kw.setdefault("num_inference_steps", 6)
    result = backend.generate(GenerationParams(prompt, seed=3, model=model, **kw))
    return np.asarray(result.images[0], dtype=np.int16)


@pytest.fixture(scope="module")
def base(backend):
    return pixels(backend, BASE)


@pytest.mark.parametrize(
    "prompt",
    ["a (red:1.0) circle on a blue background", "(a red circle on a blue background:1)"],
)
def test_weight_one_is_the_plain_prompt_pixel_for_pixel(backend, base, prompt):
    assert np.array_equal(pixels(backend, prompt), base)


@pytest.mark.parametrize(
    "prompt",
    [
        "a (red:1.5) circle on a blue background",
        "a ((red)) circle on a blue background",
        "a red circle BREAK on a blue background",
        "a [red:green:0.5] circle on a blue background",
        "a [red|green] circle on a blue background",
    ],
)
def test_each_piece_of_syntax_changes_the_image(backend, base, prompt):
    assert not np.array_equal(pixels(backend, prompt), base)


def test_clip_skip_two_changes_the_image_and_one_is_the_last_layer(backend, base):
    assert np.array_equal(pixels(backend, BASE, clip_skip=1), base)
    assert not np.array_equal(pixels(backend, BASE, clip_skip=2), base)


def test_clip_skip_past_the_text_encoder_is_refused_naming_it(backend):
    with pytest.raises(ValidationError, match=r"clip_skip.*2 text-encoder layers"):
        backend.generate(GenerationParams(BASE, seed=1, num_inference_steps=1, clip_skip=5))


def test_prompts_that_differ_after_their_80th_token_differ_and_nothing_is_cut(backend):
    long = BASE + ", " + "plain shape, " * 40  # well past 75 tokens on the tiny tokenizer
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger("diffusers").addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a = pixels(backend, long + "red")
            b = pixels(backend, long + "green")
    finally:
        logging.getLogger("diffusers").removeHandler(handler)
    assert not np.array_equal(a, b)
    assert not [r for r in records if "truncated" in r.getMessage()]


def test_a_weighted_negative_prompt_is_read_too(backend):
    plain = pixels(backend, BASE, negative_prompt="green")
    assert np.array_equal(pixels(backend, BASE, negative_prompt="(green:1)"), plain)
    assert not np.array_equal(pixels(backend, BASE, negative_prompt="(green:1.4)"), plain)


def test_batches_mix_prompts_with_and_without_syntax_and_lengths(backend):
    """Different prompts, one generate_many: each image equals the one made with its own kind of neighbours."""
    prompts = [BASE, "a (red:1.5) circle on a blue background", BASE + ", " + "plain shape, " * 40]
    params = [GenerationParams(p, seed=3, num_inference_steps=6) for p in prompts]
    together = backend.generate_many(params)
    alone = [backend.generate(p) for p in params]
    # the long prompt needs two chunks: it runs in its own call, so padding never reaches its neighbours
    assert together[2].details["prompt_chunks"] >= 2 and together[2].details["batch_size"] == 1
    assert together[0].details["batch_size"] == 2
    for t, a in zip(together, alone, strict=True):
        assert abs(np.asarray(t.images[0], dtype=np.int16) - np.asarray(a.images[0], dtype=np.int16)).max() <= 2


def test_sdxl_weights_break_editing_and_clip_skip():
    backend = LocalBackend(progress=False)
    base = pixels(backend, BASE, model="tiny-sdxl", num_inference_steps=4)
    same = pixels(backend, "a (red:1.0) circle on a blue background", model="tiny-sdxl", num_inference_steps=4)
    assert np.array_equal(same, base)
    negative = pixels(backend, BASE, model="tiny-sdxl", num_inference_steps=4, negative_prompt="green")
    weighted_one = pixels(
        backend,
        "a (red:1.0) circle on a blue background",
        model="tiny-sdxl",
        num_inference_steps=4,
        negative_prompt="green",
    )
    assert np.array_equal(weighted_one, negative)  # both encoders, the pooled embedding and the negative alike
    for prompt, kw in [
        ("a (red:1.5) circle on a blue background", {}),
        ("a red circle BREAK on a blue background", {}),
        ("a [red:green:0.5] circle on a blue background", {}),
        (BASE, {"clip_skip": 2}),
        (BASE, {"negative_prompt": "(green:1.3)"}),
    ]:
        assert not np.array_equal(pixels(backend, prompt, model="tiny-sdxl", num_inference_steps=4, **kw), base)


def test_an_unknown_lora_tag_is_refused_before_any_work_naming_it(backend):
    from sdkit.backends.base import check

    params = GenerationParams(BASE + " <lora:nosuch:0.8>", seed=1)
    with pytest.raises(ValidationError, match="nosuch"):
        check(backend, [params])
    with pytest.raises(ValidationError, match="hypernetworks"):
        check(backend, [params.replace(prompt=BASE + " <hypernet:h:1>")])


def test_a_pipeline_without_clip_text_encoders_takes_plain_text_and_refuses_the_language():
    from sdkit.backends.local.encoding import TextOnlyEncoder, encoder_for

    class NoClip:
        pass

    encoder = encoder_for(NoClip(), None)
    assert isinstance(encoder, TextOnlyEncoder)
    assert encoder.conditioning(["a cat"], [""], steps=4).kwargs == {"prompt": ["a cat"], "negative_prompt": None}
    with pytest.raises(ValidationError, match=r"prompt='a \(cat:1.2\)'.*NoClip"):
        encoder.conditioning(["a (cat:1.2)"], [""], steps=4)
    with pytest.raises(ValidationError, match="clip_skip"):
        encoder.conditioning(["a cat"], [""], steps=4, clip_skip=2)
