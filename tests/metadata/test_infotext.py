from sdkit import format_infotext, parse_infotext

A1111_SAMPLE = (
    "masterpiece, a cat\nsitting on a mat\n"
    "Negative prompt: blurry, ugly\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x768, Model hash: 45dee52b, "
    'Model: v1-5, Lora hashes: "a: 1, b: 2", Version: v1.6.0'
)


def test_parses_a1111_infotext():
    p = parse_infotext(A1111_SAMPLE)
    assert p["Prompt"] == "masterpiece, a cat\nsitting on a mat"
    assert p["Negative prompt"] == "blurry, ugly"
    assert p["Steps"] == "20"
    assert p["Sampler"] == "Euler a"
    assert p["CFG scale"] == "7"
    assert p["Seed"] == "965400086"
    assert (p["Size-1"], p["Size-2"]) == ("512", "768")
    assert p["Lora hashes"] == "a: 1, b: 2"


def test_last_line_with_fewer_than_three_pairs_is_prompt():
    p = parse_infotext("a photo\nstyle: cinematic, mood: dark")
    assert p["Prompt"] == "a photo\nstyle: cinematic, mood: dark"
    assert "style" not in p


def test_format_matches_a1111_layout():
    text = format_infotext(
        "a red circle",
        "blurry",
        {"Steps": 20, "Sampler": "Euler a", "CFG scale": 7.0, "Seed": 1, "Size": "64x64", "Model hash": None},
    )
    assert (
        text == "a red circle\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64"
    )


def test_empty_negative_line_is_left_out_and_values_are_quoted():
    text = format_infotext("p", "", {"Steps": 4, "Sampler": "DDIM", "CFG scale": 7.5, "Model": "a, b: c"})
    assert "Negative prompt" not in text
    assert 'Model: "a, b: c"' in text
    assert parse_infotext(text)["Model"] == "a, b: c"


# --- issue 15: writing without loss, reading as A1111 does ------------------------------------------------------

import re  # noqa: E402

import pytest  # noqa: E402

from sdkit.metadata.infotext import A1111_EXTRA_KEYS, A1111_KEYS, a1111_order, format_value  # noqa: E402
from sdkit.metadata.pngfile import record_infotext  # noqa: E402

# A1111's reading of a parameters line (its documented `key: value` pairs, a value quoted when it holds
# `,` `:` or a newline), kept here on its own so that sdkit's parser is measured against it, not itself.
A1111_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_pairs(line):
    import json

    return {k: json.loads(v) if v[:1] == '"' and v[-1:] == '"' else v for k, v in A1111_PAIR.findall(line)}


RECORD = {
    "params": {
        "prompt": "a red circle",
        "negative_prompt": "blurry",
        "num_inference_steps": 20,
        "guidance_scale": 7.5,
        "width": 64,
        "height": 64,
    },
    "seed": 5,
    "scheduler": "Euler a",
    "model": "tiny",
    "model_hash": "0123456789abcdef",
    "generator": "cpu",
    "sdkit": "0.1.0",
}

EXTRAS = {
    "TI hashes": "easynegative: c74b4e810b03",
    "Lora hashes": "add_detail: 7c6bad76eb54, other: 0123456789ab",
    "Hires upscaler": "Latent",
    "Hires steps": 10,
    "Hires upscale": 2.0,
    "Clip skip": 2,
    "Denoising strength": 0.5,
    "Variation seed strength": 0.3,
    "Variation seed": 123,
}


@pytest.mark.parametrize(
    ("value", "written"),
    [(12.3456789, "12.3456789"), (7.0, "7"), (7.5, "7.5"), (7, "7"), (0.1 + 0.2, "0.30000000000000004"), (2.0, "2")],
)
def test_floats_keep_full_precision_and_whole_numbers_lose_their_point(value, written):
    assert format_value(value) == written
    text = format_infotext("p", "", {"Steps": 20, "Sampler": "Euler", "CFG scale": value, "Seed": 1})
    assert parse_infotext(text)["CFG scale"] == written
    assert float(parse_infotext(text)["CFG scale"]) == value


def test_cfg_scale_of_a_record_is_written_at_full_precision():
    record = {**RECORD, "params": {**RECORD["params"], "guidance_scale": 12.3456789}}
    assert "CFG scale: 12.3456789," in record_infotext(record)


def test_record_without_extras_gives_the_text_it_always_gave():
    assert record_infotext(RECORD) == (
        "a red circle\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 5, Size: 64x64, Model hash: 0123456789, Model: tiny, "
        "RNG: CPU, Version: sdkit 0.1.0"
    )


def test_extras_land_in_a1111_order_and_spelling():
    text = record_infotext(RECORD, EXTRAS)
    last = text.split("\n")[-1]
    assert [k for k, _ in A1111_PAIR.findall(last)] == [
        "Steps",
        "Sampler",
        "CFG scale",
        "Seed",
        "Size",
        "Model hash",
        "Model",
        "Variation seed",
        "Variation seed strength",
        "Denoising strength",
        "Clip skip",
        "RNG",
        "Hires upscale",
        "Hires steps",
        "Hires upscaler",
        "Lora hashes",
        "TI hashes",
        "Version",
    ]
    assert 'Lora hashes: "add_detail: 7c6bad76eb54, other: 0123456789ab"' in last
    assert "Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent" in last


def test_extras_read_back_by_a1111s_rule_and_by_sdkit():
    text = record_infotext(RECORD, EXTRAS)
    theirs = a1111_pairs(text.split("\n")[-1])
    ours = parse_infotext(text)
    for key, value in EXTRAS.items():
        assert theirs[key] == ours[key] == format_value(value).strip('"'), key


def test_extras_from_the_record_and_none_values_left_out():
    record = {**RECORD, "infotext": {"Clip skip": 2, "Variation seed": None}}
    text = record_infotext(record, {"TI hashes": None})
    assert "Clip skip: 2, RNG: CPU" in text
    assert "Variation seed" not in text and "TI hashes" not in text


def test_order_puts_unknown_keys_after_a1111s_and_before_version():
    pairs = {"Version": "v", "Backend": "x", "Lora hashes": "a", "Steps": 1, "Clip skip": 2, "Seed": 3}
    assert list(a1111_order(pairs)) == ["Steps", "Seed", "Clip skip", "Lora hashes", "Backend", "Version"]
    assert set(A1111_KEYS).isdisjoint(A1111_EXTRA_KEYS)


def test_whole_text_is_stripped_as_a1111_does():
    text = format_infotext("  a cat ", "", {"Steps": 20, "Sampler": "Euler", "CFG scale": 7, "Seed": 1})
    assert text == "a cat \nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1"
    assert format_infotext("", "", {"Steps": 20, "Sampler": "Euler", "CFG scale": 7}) == (
        "Steps: 20, Sampler: Euler, CFG scale: 7"
    )


@pytest.mark.parametrize("space", [" ", "  ", "\t", " \t "])
def test_negative_prompt_line_after_whitespace_is_the_negative_prompt(space):
    text = f"a cat\n{space}Negative prompt: dogs\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1"
    p = parse_infotext(text)
    assert (p["Prompt"], p["Negative prompt"]) == ("a cat", "dogs")


def test_prompt_lines_are_stripped_and_blank_lines_joined_as_a1111_does():
    text = "\n  line one  \n\nline two\nNegative prompt:   \n  n1 \nn2\nSteps: 1, Sampler: Euler, CFG scale: 7"
    p = parse_infotext(text)
    assert p["Prompt"] == "line one\n\nline two"
    assert p["Negative prompt"] == "n1\nn2"


def test_every_wxh_value_is_split_like_size():
    p = parse_infotext("p\nSteps: 1, Sampler: Euler, CFG scale: 7, Size: 512x768, Hires resize: 1024x1536")
    assert (p["Size-1"], p["Size-2"], p["Hires resize-1"], p["Hires resize-2"]) == ("512", "768", "1024", "1536")
    assert p["Size"] == "512x768"
