import pytest

from sdkit import Axis, GenerationParams, Sweep, ValidationError, parse_axis, prompt_axis
from sdkit.sweeps.axis import dynamic_prompts, parse_values, prompt_matrix, split_csv


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ('darkness,"light, green",heat', ["darkness", "light, green", "heat"]),
        ('a, "b, c" , d', ["a", "b, c", "d"]),
        ("a,,b,", ["a", "b"]),
    ],
)
def test_value_lists_are_one_csv_row_like_a1111(text, values):
    assert split_csv(text) == values


@pytest.mark.parametrize(
    ("param", "text", "values"),
    [
        ("num_inference_steps", "1-5", (1, 2, 3, 4, 5)),
        ("num_inference_steps", "1-5 (+2)", (1, 3, 5)),
        ("num_inference_steps", "10-5 (-3)", (10, 7)),
        ("num_inference_steps", "5-20 (+5)", (5, 10, 15, 20)),
        ("num_inference_steps", "1-10 [5]", (1, 3, 5, 7, 10)),  # int() of linspace: 3.25 → 3, 7.75 → 7
        ("num_inference_steps", "2-3, 8, 10-12", (2, 3, 8, 10, 11, 12)),
        ("seed", "1-3", (1, 2, 3)),
        ("guidance_scale", "1,4,7.5", (1.0, 4.0, 7.5)),
        ("guidance_scale", "0.0-1.0 (+0.25)", (0.0, 0.25, 0.5, 0.75, 1.0)),
        ("guidance_scale", "0.0-1.0 [6]", (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        ("guidance_scale", "3-1 (-0.5)", (3.0, 2.5, 2.0, 1.5, 1.0)),
    ],
)
def test_ranges_expand_as_in_a1111(param, text, values):
    assert parse_values(param, text) == values
    assert all(type(v) is type(values[0]) for v in parse_values(param, text))


def test_values_are_typed_per_parameter():
    assert parse_axis("sampler=euler A,DDIM").values == ("Euler a", "DDIM")
    assert parse_axis("size=64x96,128").values == ("64x96", "128x128")
    assert parse_axis("steps=4").param == "num_inference_steps"
    assert parse_axis("cfg=2").values == (2.0,)
    assert parse_axis('negative_prompt=blurry,"ugly, dark"').values == ("blurry", "ugly, dark")


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("steps=5-20 (5)", "num_inference_steps", "needs its sign"),
        ("steps=five", "num_inference_steps", "must be an integer"),
        ("steps=0", "num_inference_steps", "between 1 and 500"),
        ("guidance_scale=200", "guidance_scale", "between 0 and 100"),
        ("seed=1-5 (+0)", "seed", "must not be 0"),
        ("steps=9-1", "num_inference_steps", "never goes from 9 to 1"),
        ("sampler=Nope", "scheduler", "unknown scheduler"),
        ("size=64x65", "height", "multiple of 8"),
        ("colour=red", "axis", "unknown parameter"),
        ("guidance_scale", "axis", "PARAM=VALUES"),
        ("steps=1-100000", "num_inference_steps", "more than 1000"),
    ],
)
def test_bad_axes_are_refused_naming_the_axis_and_value(text, field, words):
    with pytest.raises(ValidationError) as info:
        parse_axis(text)
    assert info.value.field == field
    assert words in str(info.value)


def test_sweep_errors_say_which_axis():
    with pytest.raises(ValidationError, match=r"^y axis num_inference_steps='five'"):
        Sweep(GenerationParams("x", seed=1), x="cfg=1,2", y="steps=five")


def test_axis_text_round_trips_with_quoting():
    axis = parse_axis('prompt_sr=cat,"dog, big",fox')
    assert axis.text == 'prompt_sr=cat,"dog, big",fox'
    assert parse_axis(axis.text) == axis
    assert parse_axis(parse_axis("cfg=1-2 [3]").text).values == (1.0, 1.5, 2.0)


def test_labels_name_the_parameter_and_value():
    assert parse_axis("cfg=1,7.5").labels == ("CFG: 1", "CFG: 7.5")
    assert parse_axis("steps=5").labels == ("Steps: 5",)
    assert parse_axis("prompt_sr=cat,dog").labels == ("cat", "dog")


def test_prompt_sr_replaces_in_prompt_and_negative_prompt():
    base = GenerationParams("a cat on a mat", negative_prompt="cat hair", seed=1)
    axis = parse_axis("prompt_sr=cat,dog")
    assert axis.apply(base, "cat") == base
    dog = axis.apply(base, "dog")
    assert (dog.prompt, dog.negative_prompt) == ("a dog on a mat", "dog hair")
    only_negative = GenerationParams("a mat", negative_prompt="cat hair", seed=1)
    assert axis.apply(only_negative, "dog").negative_prompt == "dog hair"


def test_prompt_sr_text_in_neither_prompt_is_refused():
    with pytest.raises(ValidationError, match="in neither the prompt 'a dog'"):
        Sweep(GenerationParams("a dog", negative_prompt="blur", seed=1), x="prompt_sr=cat,fox")


def test_prompt_matrix_makes_every_subset_in_a1111_order():
    assert prompt_matrix("a cat|in snow|at night") == [
        "a cat",
        "a cat, in snow",
        "a cat, at night",
        "a cat, in snow, at night",
    ]
    axis = prompt_axis("a cat|in snow|at night", "matrix")
    assert axis.param == "prompt"
    assert axis.labels == ("(base)", "in snow", "at night", "in snow + at night")
    assert parse_axis("prompt_matrix=a|b").values == ("a", "a, b")


def test_dynamic_prompts_combinatorial_enumerates_every_variant():
    assert dynamic_prompts("a {red|blue} {cat|dog}") == ["a red cat", "a red dog", "a blue cat", "a blue dog"]
    assert dynamic_prompts("a {red|blue} {cat|dog}", count=3) == ["a red cat", "a red dog", "a blue cat"]


def test_dynamic_prompts_random_is_reproducible_with_a_seed():
    first = dynamic_prompts("a {red|green|blue|gold} {cat|dog|fox}", mode="random", count=6, seed=5)
    again = dynamic_prompts("a {red|green|blue|gold} {cat|dog|fox}", mode="random", count=6, seed=5)
    assert first == again
    assert len(first) == 6
    assert all(p.startswith("a ") for p in first)


def test_dynamic_prompts_reads_wildcard_files(tmp_path):
    (tmp_path / "animal.txt").write_text("cat\ndog\n")
    assert dynamic_prompts("a __animal__", wildcards=str(tmp_path)) == ["a cat", "a dog"]


def test_an_axis_can_be_built_from_typed_values():
    axis = Axis("steps", (4, 8))
    assert axis.param == "num_inference_steps"
    with pytest.raises(ValidationError, match="num_inference_steps=0"):
        Axis("num_inference_steps", (4, 0))


@pytest.mark.parametrize(("text", "meant"), [("cfgg=1,2", "guidance_scale"), ("Stepz=1,2", "num_inference_steps")])
def test_a_misspelt_axis_name_suggests_the_parameter(text, meant):
    with pytest.raises(ValidationError, match=f"did you mean '{meant}'") as info:
        parse_axis(text)
    assert info.value.field == "axis"


@pytest.mark.parametrize(
    ("param", "text"),
    [
        ("num_inference_steps", "1 2"),  # was read as 12
        ("num_inference_steps", "+ 5"),  # was read as 5
        ("seed", "1 000"),
        ("guidance_scale", "7. 5"),
        ("guidance_scale", "- 3-1 (-0.5)"),
        ("num_inference_steps", "5-20 (+ 5)"),
        ("num_inference_steps", "1 0-20"),
    ],
)
def test_a_space_inside_a_number_is_refused_naming_axis_and_value(param, text):
    with pytest.raises(ValidationError) as info:
        parse_values(param, text)
    assert info.value.field == param
    assert info.value.value == text.strip()


@pytest.mark.parametrize("text", ["1_000", "nan", "inf", "0x10", "½"])
def test_only_plain_numbers_are_numbers(text):
    with pytest.raises(ValidationError, match="must be"):
        parse_values("seed" if text in ("1_000", "0x10", "½") else "guidance_scale", text)


@pytest.mark.parametrize(
    ("param", "text", "values"),
    [
        ("guidance_scale", "1e-3", (0.001,)),
        ("guidance_scale", "2.5E1, .5", (25.0, 0.5)),
        ("guidance_scale", "1e-3-3e-3 [3]", (0.001, 0.002, 0.003)),
        ("guidance_scale", "1e0-3 (+1e0)", (1.0, 2.0, 3.0)),
        ("num_inference_steps", " 5 - 20 ( +5 ) ", (5, 10, 15, 20)),  # spaces around the parts stay allowed
        ("num_inference_steps", "+5", (5,)),
    ],
)
def test_exponents_and_spaces_between_parts_work(param, text, values):
    assert parse_values(param, text) == values


def test_float_ranges_never_overshoot_their_end():
    # A1111's numpy.arange(1, 1.3 + 0.1, 0.1) gives 1.4000000000000004 as a fifth value (README's table)
    assert parse_values("guidance_scale", "1-1.3 (+0.1)") == (1.0, 1.1, 1.2, 1.3)
