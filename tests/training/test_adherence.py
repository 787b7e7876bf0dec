"""A fast slice of the prompt-adherence benchmark (the full one: `make adherence`)."""

import sdkit
from benchmarks.adherence import cases, score
from training.shapes import classify


def test_tiny_draws_the_colours_and_shapes_it_is_asked_for(backend):
    chosen = cases()[::4]  # 6 of the 24 colour x shape prompts, every shape twice
    s = score(backend, chosen, seeds=2)
    assert s.n == 12
    assert s.colour >= 0.9
    assert s.background >= 0.9
    assert s.shape >= 0.75


def test_changing_only_the_shape_word_changes_the_shape(backend):
    # Same seeds, same colours: the word alone decides what is drawn (most of the time: ~96% in the benchmark).
    drawn = {}
    for shape in ("circle", "square", "triangle"):
        params = sdkit.GenerationParams(f"a blue {shape} on a yellow background", seed=3, num_images=3)
        drawn[shape] = [classify(image)[2] for image in backend.generate(params).images]
    for shape, kinds in drawn.items():
        assert kinds.count(shape) >= 2, drawn
