"""Prompt editing and alternation: which text each step reads (A1111's documented rules; steps from 1)."""

import pytest

from sdkit.prompts import ScheduleEntry, has_schedule, prompt_schedule


def texts_by_step(text, steps):
    schedule = prompt_schedule(text, steps)
    return [next(e.text for e in schedule if s <= e.end) for s in range(1, steps + 1)]


def test_from_to_when_as_a_fraction_and_as_a_step():
    assert prompt_schedule("a [fantasy:cyberpunk:0.5] landscape", 20) == (
        ScheduleEntry(10, "a fantasy landscape"),
        ScheduleEntry(20, "a cyberpunk landscape"),
    )
    assert texts_by_step("[a:b:16]", 20) == ["a"] * 16 + ["b"] * 4  # "after step 16 it switches"


def test_add_after_and_remove_after():
    assert texts_by_step("x [to:2]", 4) == ["x "] * 2 + ["x to"] * 2
    assert texts_by_step("x [from::2]", 4) == ["x from"] * 2 + ["x "] * 2


def test_when_zero_and_past_the_end():
    assert texts_by_step("[a:b:0]", 3) == ["b"] * 3
    assert texts_by_step("[a:b:50]", 3) == ["a"] * 3
    assert texts_by_step("[a:b:1]", 3) == ["a", "b", "b"]  # 1 or more is a step number


def test_alternation_switches_every_step():
    assert texts_by_step("a [cow|horse]", 5) == ["a cow", "a horse", "a cow", "a horse", "a cow"]
    assert texts_by_step("[x|y|z]", 4) == ["x", "y", "z", "x"]
    assert texts_by_step("[x|]", 3) == ["x", "", "x"]


def test_nesting_and_emphasis_kept_for_the_attention_parser():
    assert texts_by_step("[a:[b:c:2]:3]", 4) == ["a", "a", "a", "c"]
    assert texts_by_step("(x:1.2) [a:(b:1.3):1] [c]", 2) == ["(x:1.2) a [c]", "(x:1.2) (b:1.3) [c]"]
    assert texts_by_step("([red|green] circle:1.2)", 2) == ["(red circle:1.2)", "(green circle:1.2)"]
    assert texts_by_step("[a:b:2] [c|d]", 3) == ["a c", "a d", "b c"]


@pytest.mark.parametrize(
    "text",
    ["plain", "[emphasis]", "[a:b]", "[a:b:c]", "a [b", "a ]b[", "[a:b:1:2]", "(a:1.2)", "3:4", "a|b", "[a:b|c:1]"],
)
def test_text_without_an_edit_is_read_unchanged(text):
    assert not has_schedule(text)
    assert prompt_schedule(text, 10) == (ScheduleEntry(10, text),)


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps"):
        prompt_schedule("[a:b:0.5]", 0)


def test_escaped_brackets_are_not_edits():
    assert not has_schedule("\\[a:b:0.5\\]")
