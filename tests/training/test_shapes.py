import random

import pytest

from training.shapes import COLOURS, SHAPES, Scene, all_scenes, caption, classify, random_scene, render


def test_classifier_reads_back_the_scenes_it_draws():
    scenes = all_scenes()
    assert len(scenes) == len(SHAPES) * len(COLOURS) * (len(COLOURS) - 1) * 3 * 5
    sample = random.Random(0).sample(scenes, 250)
    wrong = [s for s in sample if classify(render(s)) != (s.colour, s.background, s.shape)]
    assert wrong == []


def test_classifier_tells_hexagons_from_circles_in_every_size_and_place():
    hexagons = [
        Scene(shape, colour, background, size, position)
        for shape in ("hexagon", "circle")
        for colour, background in (("red", "blue"), ("white", "black"), ("yellow", "orange"))
        for size in ("small", "medium", "large")
        for position in ("center", "left", "top")
    ]
    wrong = [s for s in hexagons if classify(render(s)) != (s.colour, s.background, s.shape)]
    assert wrong == []
    assert all(s.shape != "hexagon" for s in all_scenes())  # the base model's data stays as it was


def test_classifier_reads_soft_edges_and_faint_pairs_right():
    # A generated picture is never as crisp as a rendering: a blurred shape keeps its kind,
    # also where shape and background are close colours (its outline is the half-way level).
    from PIL import ImageFilter

    sample = random.Random(1).sample(all_scenes(), 200)
    sample += [Scene("triangle", "yellow", "white", "small"), Scene("square", "orange", "red", "small", "left")]
    blurred = [(s, render(s).filter(ImageFilter.GaussianBlur(1))) for s in sample]
    wrong = [s for s, image in blurred if classify(image) != (s.colour, s.background, s.shape)]
    assert wrong == []


def test_classifier_says_none_on_a_plain_picture():
    from PIL import Image

    assert classify(Image.new("RGB", (64, 64), COLOURS["blue"])) == ("none", "blue", "none")


def test_captions_name_the_scene_and_vary():
    scene = Scene("triangle", "orange", "white", "medium", "left")
    assert caption(scene, 0) == "an orange triangle on a white background"
    rng = random.Random(3)
    texts = {caption(scene, rng=rng) for _ in range(50)}
    assert len(texts) > 5
    assert all("orange triangle" in t for t in texts)
    assert any(t.startswith("an orange") for t in texts)  # "an" before a vowel


def test_scenes_are_seeded_and_never_same_colour_on_same_colour():
    a = [random_scene(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert all(s.colour != s.background for s in all_scenes())
    with pytest.raises(ValueError, match="both 'red'"):
        Scene("circle", "red", "red")
