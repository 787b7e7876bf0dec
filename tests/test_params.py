import pytest

from sdkit import GenerationParams, ValidationError
from sdkit.params import MAX_SEED, parse_size


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", ""),
        ("prompt", "   "),
        ("prompt", None),
        ("negative_prompt", 3),
        ("seed", -1),
        ("seed", 2**32),
        ("seed", 1.5),
        ("num_inference_steps", 0),
        ("num_inference_steps", True),
        ("num_inference_steps", "20"),
        ("guidance_scale", -0.5),
        ("guidance_scale", float("nan")),
        ("guidance_scale", 1000),
        ("width", 100),
        ("width", 32),
        ("height", 4096),
        ("height", 64.0),
        ("scheduler", "Euler b"),
        ("num_images", 0),
        ("model", ""),
    ],
)
def test_bad_value_is_refused_naming_field_and_value(field, value):
    kwargs = {"prompt": "a red circle", field: value}
    with pytest.raises(ValidationError) as info:
        GenerationParams(**kwargs)
    assert info.value.field == field
    assert info.value.value == value or value != value  # nan
    assert field in str(info.value)
    assert repr(value) in str(info.value)


def test_validation_error_is_a_value_error():
    with pytest.raises(ValueError, match="width=100"):
        GenerationParams("x", width=100)


def test_seed_left_out_is_drawn_and_kept():
    a = GenerationParams("x")
    b = GenerationParams("x")
    assert 0 <= a.seed <= MAX_SEED
    assert a.seed != b.seed or a.seed != GenerationParams("x").seed
    assert a.replace(num_inference_steps=5).seed == a.seed


def test_image_seeds_follow_a1111_rule_and_wrap():
    assert GenerationParams("x", seed=7, num_images=3).seeds == (7, 8, 9)
    assert GenerationParams("x", seed=MAX_SEED, num_images=2).seeds == (MAX_SEED, 0)
    assert GenerationParams("x", seed=7, num_images=3).for_image(2) == GenerationParams("x", seed=9)


def test_scheduler_is_canonicalised():
    assert GenerationParams("x", scheduler="euler A").scheduler == "Euler a"
    assert GenerationParams("x", scheduler="dpmsolvermultistepscheduler").scheduler == "DPMSolverMultistepScheduler"


def test_params_are_frozen():
    p = GenerationParams("x", seed=1)
    with pytest.raises(AttributeError):
        p.seed = 2


def test_replace_validates_again():
    with pytest.raises(ValidationError, match="num_inference_steps"):
        GenerationParams("x").replace(num_inference_steps=-3)


def test_dict_round_trip_and_unknown_key():
    p = GenerationParams("x", seed=3, width=128, height=64, scheduler="DDIM")
    assert GenerationParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValidationError) as info:
        GenerationParams.from_dict({"prompt": "x", "cfg": 7})
    assert info.value.field == "cfg"


@pytest.mark.parametrize(("text", "size"), [("512x768", (512, 768)), ("64", (64, 64)), (" 128X64 ", (128, 64))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["512by512", "513x512", "x", "0x0"])
def test_parse_size_refuses(text):
    with pytest.raises(ValidationError):
        parse_size(text)


@pytest.mark.parametrize(
    ("kwargs", "meant"),
    [
        ({"cfg": 7}, "guidance_scale"),
        ({"steps": 4}, "num_inference_steps"),
        ({"sampler": "Euler a"}, "scheduler"),
        ({"guidance": 7.0}, "guidance_scale"),
        ({"negative_promt": "x"}, "negative_prompt"),
    ],
)
def test_an_unknown_field_is_a_validation_error_naming_the_field_meant(kwargs, meant):
    [(key, value)] = kwargs.items()
    with pytest.raises(ValidationError, match=f"did you mean '{meant}'") as info:
        GenerationParams("a red circle", **kwargs)
    assert (info.value.field, info.value.value) == (key, value)
    with pytest.raises(ValidationError, match=f"did you mean '{meant}'"):
        GenerationParams("a red circle", seed=1).replace(**kwargs)
    with pytest.raises(ValidationError, match=f"did you mean '{meant}'"):
        GenerationParams.from_dict({"prompt": "a red circle", **kwargs})


def test_unknown_field_check_keeps_the_signature_and_frozenness():
    import dataclasses
    import inspect

    params = inspect.signature(GenerationParams).parameters
    assert list(params)[:3] == ["prompt", "negative_prompt", "seed"]
    assert params["guidance_scale"].default == 7.5
    p = GenerationParams("a", 2 * "b", 3, 4)  # positional arguments still work
    assert (p.negative_prompt, p.seed, p.num_inference_steps) == ("bb", 3, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seed = 5
    with pytest.raises(ValidationError, match="prompt=None: is required"):
        GenerationParams()


def test_loras_are_validated_and_left_out_of_records_when_empty():
    plain = GenerationParams("a cat", seed=1)
    assert "loras" not in plain.to_dict()  # older records and sweep cache keys stay as they were
    with_lora = GenerationParams("a cat", seed=1, loras=[["hexagon", 1]])
    assert with_lora.loras == (("hexagon", 1.0),)
    assert with_lora.to_dict()["loras"] == [["hexagon", 1.0]]
    assert GenerationParams.from_dict(with_lora.to_dict()) == with_lora
    for bad, field in [
        ("hexagon", "loras"),
        ([("hexagon",)], "loras"),
        ([("", 1)], "loras"),
        ([("hexagon", "1")], "loras[hexagon]"),
        ([("hexagon", float("inf"))], "loras[hexagon]"),
        ([("a", 1), ("a", 0.5)], "loras"),
    ]:
        with pytest.raises(ValidationError) as info:
            GenerationParams("a cat", loras=bad)
        assert info.value.field == field
