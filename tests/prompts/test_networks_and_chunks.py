"""Network tags lifted out of the text; tokens in 75-token chunks (BREAK, comma backtrack); the counter."""

import pytest

from sdkit import ValidationError, count_tokens
from sdkit.prompts import BREAK, BREAK_WEIGHT, NetworkTag, chunk_fragments, lift_networks


def test_lora_tags_are_lifted_with_their_weights():
    text, tags = lift_networks("a cat <lora:hexagon:0.5>, <lora:style> <LYCO:other:1:0.25>")
    assert text == "a cat ,  "
    assert tags == (
        NetworkTag("lora", "hexagon", 0.5),
        NetworkTag("lora", "style", 1.0),
        NetworkTag("lora", "other", 1.0, 0.25),
    )
    assert lift_networks("<hypernet:h:0.7>")[1] == (NetworkTag("hypernet", "h", 0.7),)


def test_other_angle_brackets_stay_text():
    assert lift_networks("<foo:bar> a < b > c") == ("<foo:bar> a < b > c", ())


@pytest.mark.parametrize("tag", ["<lora:x:abc>", "<lora:x:nan>", "<lora::1>"])
def test_a_bad_tag_names_itself(tag):
    with pytest.raises(ValidationError, match="prompt") as info:
        lift_networks("a " + tag)
    assert tag in str(info.value)


def letters(text):
    return [[ord(c)] for c in text if c != " "]


def test_chunks_of_75_and_break():
    chunks = chunk_fragments([("a" * 80, 1.2)], letters)
    assert [len(c.tokens) for c in chunks] == [75, 5]
    assert set(chunks[0].weights) == {1.2}
    chunks = chunk_fragments([("ab", 1.0), (BREAK, BREAK_WEIGHT), ("cd", 1.5)], letters)
    assert [(c.tokens, c.weights) for c in chunks] == [((97, 98), (1.0, 1.0)), ((99, 100), (1.5, 1.5))]
    assert chunk_fragments([("", 1.0)], letters)[0].tokens == ()


def test_a_full_chunk_moves_the_words_after_its_last_comma_when_near():
    comma = ord(",")
    chunks = chunk_fragments([("a" * 70 + "," + "b" * 10, 1.0)], letters, comma_id=comma)
    assert [len(c.tokens) for c in chunks] == [71, 10]  # "bbbb…" kept together in the next chunk
    chunks = chunk_fragments([("a" * 30 + "," + "b" * 50, 1.0)], letters, comma_id=comma)
    assert [len(c.tokens) for c in chunks] == [75, 6]  # the comma is too far back: cut at 75


def test_an_embedding_is_never_split():
    def pieces(text):
        return [[1]] * 74 + [[7, 8, 9]]

    chunks = chunk_fragments([("x", 1.0)], pieces)
    assert [len(c.tokens) for c in chunks] == [74, 3]


def test_count_tokens_on_the_tiny_model():
    count = count_tokens("a red circle on a blue background")
    assert (count.tokens, count.chunks, str(count), count.label) == (7, 1, "7/75", "1 chunk")
    weighted = count_tokens("a (red:1.5) circle on a [blue] background <lora:x:1>")
    assert weighted.tokens == 7  # weights' brackets and tags are not tokens
    assert count_tokens("a red circle BREAK on a blue background").chunks == 2
    long = count_tokens("red " * 80)
    assert (long.tokens, long.chunks, str(long)) == (80, 2, "80/150")
