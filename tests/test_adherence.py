"""A fast slice of the prompt-adherence benchmark (the full one: `make adherence`)."""

from benchmarks.adherence import cases, score


def test_tiny_draws_the_colours_and_shapes_it_is_asked_for(backend):
    chosen = cases()[::4]  # 6 of the 24 colour x shape prompts, all three shapes
    s = score(backend, chosen, seeds=2)
    assert s.n == 12
    assert s.colour >= 0.8
    assert s.background >= 0.8
    assert s.shape >= 0.6


def test_guidance_makes_the_prompt_matter_more(backend):
    chosen = cases()[1::4]
    low = score(backend, chosen, seeds=2, guidance_scale=1.0)
    high = score(backend, chosen, seeds=2, guidance_scale=7.5)
    assert high.mean > low.mean
