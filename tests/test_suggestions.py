import pytest

from sdkit.suggestions import close_names, did_you_mean


@pytest.mark.parametrize(
    ("word", "choices", "expected"),
    [
        ("tiny2", ["tiny", "tiny-random", "tiny-sdxl"], ["tiny"]),
        ("Tiny", ["tiny", "tiny-random", "tiny-sdxl"], ["tiny"]),  # only the case differs: that one alone
        ("Eular a", ["Euler", "Euler a", "DDIM"], ["Euler a", "Euler"]),
        ("seed", ["seeds", "name", "params"], ["seeds"]),
        ("zzzz", ["tiny", "seed"], []),
        (None, ["tiny"], []),
    ],
)
def test_close_names_are_the_likely_ones_best_first(word, choices, expected):
    assert close_names(word, choices) == expected


def test_aliases_name_the_field_meant():
    aliases = {"cfg": "guidance_scale", "steps": "num_inference_steps"}
    fields = ["guidance_scale", "num_inference_steps", "seed"]
    assert close_names("cfg", fields, aliases=aliases) == ["guidance_scale"]
    assert close_names("CFG", fields, aliases=aliases) == ["guidance_scale"]
    assert close_names("stepz", fields, aliases=aliases) == ["num_inference_steps"]  # close to an alias


def test_did_you_mean_reads_as_a_question_or_is_empty():
    assert did_you_mean("tiny2", ["tiny"]) == "did you mean 'tiny'?"
    assert did_you_mean("x", ["x1", "x2"]) == "did you mean 'x1' or 'x2'?"
    assert did_you_mean("qqq", ["tiny"]) == ""
