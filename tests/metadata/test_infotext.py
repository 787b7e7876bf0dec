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
