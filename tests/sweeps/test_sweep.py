import pytest

from sdkit import GenerationParams, Sweep, ValidationError, prompt_axis
from sdkit.sweeps.sweep import MAX_CELLS, parse_seeds

BASE = GenerationParams("a cat", seed=100, num_inference_steps=4)


def test_count_is_known_before_running():
    sweep = Sweep(BASE, x="guidance_scale=1,4,7.5", y="num_inference_steps=5-20 (+5)", z="sampler=Euler,DDIM", seeds=2)
    assert sweep.shape == (2, 4, 3, 2)
    assert sweep.count() == 48
    assert len(sweep.cells()) == 48


def test_cells_run_z_then_y_then_x_then_seed_and_are_deterministic():
    sweep = Sweep(BASE, x="cfg=1,2", y="steps=3,6", seeds=2)
    cells = sweep.cells()
    assert [(c.y, c.x, c.seed_index) for c in cells[:5]] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0)]
    assert [c.index for c in cells] == list(range(8))
    assert cells[2].params == BASE.replace(guidance_scale=2.0, num_inference_steps=3, seed=100)
    assert cells[3].params.seed == 101
    assert all(c.params.num_images == 1 for c in cells)
    assert Sweep(BASE, x="cfg=1,2", y="steps=3,6", seeds=2).cells() == cells


def test_seeds_per_cell_follow_the_seed_axis():
    cells = Sweep(BASE, x="seed=10,20", seeds=3).cells()
    assert [c.params.seed for c in cells] == [10, 11, 12, 20, 21, 22]


def test_an_explicit_seed_list_is_used_in_every_cell():
    cells = Sweep(BASE, x="cfg=1,2", seeds=[7, 3]).cells()
    assert [c.params.seed for c in cells] == [7, 3, 7, 3]


def test_seeds_default_to_the_base_num_images():
    assert Sweep(BASE.replace(num_images=3)).count() == 3


def test_seed_text_is_a_count_or_a_list():
    assert parse_seeds("4") == 4
    assert parse_seeds("1,5,9") == (1, 5, 9)
    assert parse_seeds("1-3") == (1, 2, 3)
    with pytest.raises(ValidationError, match=r"^seeds"):
        parse_seeds("x")


def test_size_sets_width_and_height():
    cells = Sweep(BASE, x="size=64x96,128").cells()
    assert [(c.params.width, c.params.height) for c in cells] == [(64, 96), (128, 128)]


def test_prompt_axis_is_applied_before_prompt_sr():
    sweep = Sweep(BASE, x=prompt_axis("a cat|in snow", "matrix"), y="prompt_sr=cat,dog")
    assert [c.params.prompt for c in sweep.cells()] == ["a cat", "a cat, in snow", "a dog", "a dog, in snow"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"x": "cfg=1,2", "y": "guidance_scale=3"}, "axes"),
        ({"x": "size=64", "y": "width=64"}, "axes"),
        ({"x": "seed=1,2", "seeds": [1, 2]}, "seeds"),
        ({"seeds": 0}, "seeds"),
        ({"seeds": [1, -1]}, "seeds"),
        ({"x": "seed=1-100", "y": "steps=1-100", "z": "cfg=1-2"}, "sweep"),
        ({"x": 5}, "x"),
    ],
)
def test_bad_specs_are_refused_on_construction(kwargs, field):
    with pytest.raises(ValidationError) as info:
        Sweep(BASE, **kwargs)
    assert info.value.field == field
    assert MAX_CELLS == 10_000


def test_spec_round_trips_through_a_dict():
    sweep = Sweep(BASE, x="prompt_sr=cat,dog", y="steps=2-6 (+2)", z="sampler=Euler a,DDIM", seeds=[4, 2])
    again = Sweep.from_dict(sweep.to_dict())
    assert again == sweep
    assert again.cells() == sweep.cells()
    with pytest.raises(ValidationError, match="unknown sweep key"):
        Sweep.from_dict({**sweep.to_dict(), "w": 1})


def test_parse_takes_a_prompt_and_text():
    sweep = Sweep.parse("a dog", x="cfg=1,2", seeds="2")
    assert sweep.count() == 4
    assert sweep.base.prompt == "a dog"
