"""parse_attention against A1111's documented examples and a golden table of cases worked out by hand from its
documented rules (×1.1 per "(", ÷1.1 per "[", explicit weights, nesting multiplies, unbalanced brackets close at
the end, escapes are literal, equal neighbours merge)."""

import pytest

from sdkit.prompts import BREAK, BREAK_WEIGHT, parse_attention, plain_text

B = (BREAK, BREAK_WEIGHT)
D = 1 / 1.1

GOLDEN = [
    # A1111's own documented examples
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.573),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641),
            (".", 1.1),
        ],
    ),
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (b)", [("a ", 1.0), ("b", 1.1)]),
    # emphasis
    ("(a)", [("a", 1.1)]),
    ("((a))", [("a", 1.21)]),
    ("(((a)))", [("a", 1.331)]),
    ("[a]", [("a", D)]),
    ("[[a]]", [("a", D * D)]),
    ("([a])", [("a", 1.0)]),
    ("[(a)]", [("a", 1.0)]),
    ("(a:1.5)", [("a", 1.5)]),
    ("(a:0.5)", [("a", 0.5)]),
    ("(a:2)", [("a", 2.0)]),
    ("(a:.5)", [("a", 0.5)]),
    ("(a: 1.5 )", [("a", 1.5)]),
    ("(a:0)", [("a", 0.0)]),
    ("(a:-1)", [("a", -1.0)]),
    ("((a:1.5))", [("a", 1.65)]),
    ("((a:1.5):2)", [("a", 3.0)]),
    ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
    ("(a [b] c)", [("a ", 1.1), ("b", 1.0), (" c", 1.1)]),
    ("[a (b) c]", [("a ", D), ("b", 1.0), (" c", D)]),
    ("(a:1.2) (b:1.2)", [("a", 1.2), (" ", 1.0), ("b", 1.2)]),
    ("(a:1.2)(b:1.2)", [("ab", 1.2)]),
    ("(a)(b:1.1)", [("ab", 1.1)]),
    ("a (b:1.0) c", [("a b c", 1.0)]),
    ("x (a:1.3:)", [("x ", 1.0), ("a:1.3:", 1.1)]),  # a weight must close its bracket
    ("(a:b)", [("a:b", 1.1)]),
    ("a:1.5)", [("a:1.5)", 1.0)]),  # a weight with no "(" open is text
    # unbalanced brackets
    ("((a)", [("a", 1.21)]),
    ("[[a]", [("a", D * D)]),
    ("a)", [("a)", 1.0)]),
    ("a]", [("a]", 1.0)]),
    ("(a [b", [("a ", 1.1), ("b", 1.0)]),
    (")(a", [(")", 1.0), ("a", 1.1)]),
    ("(a))", [("a", 1.1), (")", 1.0)]),
    # escapes
    ("\\(a\\)", [("(a)", 1.0)]),
    ("\\[a\\]", [("[a]", 1.0)]),
    ("(\\(a\\))", [("(a)", 1.1)]),
    ("a\\\\b", [("a\\b", 1.0)]),
    ("a\\b", [("a\\b", 1.0)]),
    ("smile \\(emoji\\) (face:1.2)", [("smile (emoji) ", 1.0), ("face", 1.2)]),
    # BREAK
    ("a BREAK b", [("a", 1.0), B, ("b", 1.0)]),
    ("a BREAK BREAK b", [("a", 1.0), B, B, ("b", 1.0)]),
    ("BREAK a", [B, ("a", 1.0)]),
    ("a break b", [("a break b", 1.0)]),  # upper case only
    ("aBREAK b", [("aBREAK b", 1.0)]),  # a word of its own
    ("(a BREAK b)", [("a", 1.1), B, ("b", 1.1)]),
    ("a,BREAK,b", [("a,", 1.0), B, (",b", 1.0)]),
    # other characters pass through
    ("", [("", 1.0)]),
    ("a, b: c", [("a, b: c", 1.0)]),
    ("3:4 ratio", [("3:4 ratio", 1.0)]),
    ("a | b", [("a | b", 1.0)]),
    ("<lora:x:1>", [("<lora:x:1>", 1.0)]),
    ("multi\nline", [("multi\nline", 1.0)]),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN, ids=[repr(t) for t, _ in GOLDEN])
def test_golden_table(text, expected):
    got = parse_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], rel=1e-9)


def test_the_table_is_big_enough():
    assert len(GOLDEN) >= 47  # the documented examples and over 40 more


def test_plain_text_takes_the_syntax_out():
    assert plain_text("a (red:1.5) [circle] BREAK on \\(blue\\)") == "a red circle on (blue)"
