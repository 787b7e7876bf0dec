import pytest
from PIL import Image

from sdkit import GenerationParams, Sweep, ValidationError, grid_figure, image_grid, labelled_grid, sweep_grids
from sdkit.sweeps.grid import MIN_TILE, PLACEHOLDER, wrap_text
from sdkit.sweeps.runner import run_sweep
from tests.sweeps.test_runner import FakeBackend


def solid(colour, size=(64, 64)):
    return Image.new("RGB", size, colour)


def test_image_grid_takes_any_number_of_images():
    grid = image_grid([solid("red")] * 5, cols=3)
    assert grid.size == (192, 128)
    assert grid.getpixel((10, 70)) == (255, 0, 0)
    assert grid.getpixel((150, 100)) == (255, 255, 255)  # the short last row leaves its place empty
    assert image_grid([solid("red")] * 5).size == (192, 128)  # as square as possible
    assert image_grid([solid("red")], cols=4).size == (64, 64)


def test_image_grid_sizes_places_by_the_largest_image_and_keeps_holes():
    grid = image_grid([solid("red", (32, 32)), None, solid("blue", (64, 48))], cols=3, gap=2)
    assert grid.size == (64 * 3 + 4, 48)
    assert grid.getpixel((70, 10)) == (255, 255, 255)


def test_image_grid_refuses_nothing_and_bad_cols():
    with pytest.raises(ValidationError, match="images"):
        image_grid([])
    with pytest.raises(ValidationError, match="cols"):
        image_grid([solid("red")], cols=0)


def test_labelled_grid_adds_label_bands_and_scales_small_tiles():
    tiles = [[solid("red"), solid("green")], [solid("blue"), solid("black")]]
    grid = labelled_grid(tiles, x_labels=["CFG: 1", "CFG: 7"], y_labels=["Steps: 5", "Steps: 10"], gap=0)
    plain = labelled_grid(tiles, gap=0)
    assert plain.size == (2 * MIN_TILE, 2 * MIN_TILE)
    assert grid.width > plain.width
    assert grid.height > plain.height
    assert grid.getpixel((grid.width - 1, grid.height - 1)) == (0, 0, 0)  # the last tile ends the grid
    assert grid.getpixel((grid.width - MIN_TILE - 1, grid.height - 1)) == (0, 0, 255)
    strip = grid.crop((0, 0, grid.width, grid.height - 2 * MIN_TILE))
    assert strip.getextrema() != ((255, 255), (255, 255), (255, 255))  # the labels are drawn


def test_failed_tiles_are_drawn_as_placeholders():
    grid = labelled_grid([[solid("red"), "GenerationError: out of memory"]], gap=0)
    assert grid.getpixel((MIN_TILE + 2, 2)) == PLACEHOLDER
    assert grid.getpixel((2, 2)) == (255, 0, 0)


def test_long_labels_are_wrapped_to_the_tile_width():
    from sdkit.sweeps.grid import _font

    font = _font(12)
    lines = wrap_text("a very long prompt about a cat sitting in the snow at night", font, 100)
    assert len(lines) > 2
    assert all(font.getlength(line) <= 100 for line in lines)
    assert wrap_text("x" * 50, font, 40)[0] != "x" * 50  # one long word is cut
    short = labelled_grid([[solid("red")]], x_labels=["short"])
    long = labelled_grid([[solid("red")]], x_labels=["a very long prompt about a cat sitting in the snow at night"])
    assert long.height > short.height
    assert long.width == short.width


def test_megapixel_guard_says_how_large_and_what_to_do():
    tiles = [[solid("red", (512, 512))] * 4] * 4
    with pytest.raises(ValidationError, match=r"2048x2048 pixels \(4.2 MP\).*raise max_megapixels") as info:
        labelled_grid(tiles, max_megapixels=1, gap=0)
    assert info.value.field == "max_megapixels"


def test_label_counts_must_match_the_tiles():
    with pytest.raises(ValidationError, match="x_labels"):
        labelled_grid([[solid("red")]], x_labels=["a", "b"])


def sweep_result(**kwargs):
    sweep = Sweep(GenerationParams("a cat", seed=1, num_inference_steps=2), **kwargs)
    return run_sweep(sweep, FakeBackend(), None, progress=False)


def test_sweep_grids_make_one_page_per_z_value():
    result = sweep_result(x="cfg=1,2,3", y="steps=2,4", z="seed=1,2")
    pages = sweep_grids(result)
    assert len(pages) == 2
    assert pages[0].size == pages[1].size
    assert pages[0].width > 3 * MIN_TILE
    assert pages[0].tobytes() != pages[1].tobytes()


def test_seeds_of_a_cell_sit_side_by_side():
    one = sweep_grids(sweep_result(x="cfg=1,2"))[0]
    two = sweep_grids(sweep_result(x="cfg=1,2", seeds=2))[0]
    assert two.width > one.width


def test_failed_cells_show_in_the_sweep_grid():
    result = sweep_result(x="prompt_sr=cat,FAIL")
    page = sweep_grids(result, font_size=12)[0]
    assert PLACEHOLDER in {page.getpixel((x, page.height - 5)) for x in range(page.width)}


def test_grid_figure_has_a_titled_axes_per_cell():
    pytest.importorskip("matplotlib")
    result = sweep_result(x="cfg=1,2,3", y="steps=2,4", z="seed=1,2")
    fig = grid_figure(result, z=1)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["CFG: 1", "CFG: 2", "CFG: 3"]
    assert fig.axes[3].get_ylabel() == "Steps: 4"
    assert fig.get_suptitle() == "Seed: 2"
    with pytest.raises(ValidationError, match=r"^z=2"):
        grid_figure(result, z=2)
