import json
import re

from PIL import Image

from sdkit import GenerationParams, GenerationResult, parse_infotext, read_png_metadata, save_result


def _result(n=2, seed=40):
    params = GenerationParams(
        "a red circle",
        negative_prompt="blurry, dark",
        seed=seed,
        num_images=n,
        width=64,
        height=64,
        num_inference_steps=4,
        guidance_scale=7.0,
    )
    images = tuple(Image.new("RGB", (64, 64), (i * 50, 0, 0)) for i in range(n))
    return GenerationResult(
        params=params,
        images=images,
        seeds=params.seeds,
        model="tiny",
        backend="local",
        details={"scheduler": "Euler a", "model_hash": "abcdef0123456789", "generator": "cpu"},
    )


def test_png_carries_a1111_parameters_and_sdkit_record(tmp_path):
    paths = save_result(_result(), tmp_path)
    assert [p.name for p in paths] == ["00000-40.png", "00001-41.png"]
    meta = read_png_metadata(paths[1])
    text = meta["text"]["parameters"]
    last = text.split("\n")[-1]
    assert len(re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', last)) >= 3
    p = parse_infotext(text)
    assert p["Prompt"] == "a red circle"
    assert p["Negative prompt"] == "blurry, dark"
    assert (p["Steps"], p["Sampler"], p["CFG scale"], p["Seed"], p["Size"]) == ("4", "Euler a", "7", "41", "64x64")
    assert p["Model hash"] == "abcdef0123"
    record = json.loads(meta["text"]["sdkit"])
    assert record == meta["sdkit"]
    assert record["seed"] == 41 and record["image_index"] == 1
    assert record["params"]["prompt"] == "a red circle"
    assert Image.open(paths[1]).getpixel((0, 0)) == (50, 0, 0)


def test_saving_again_never_overwrites(tmp_path):
    first = save_result(_result(n=1, seed=1), tmp_path)
    second = save_result(_result(n=1, seed=1), tmp_path)
    assert first[0].name == "00000-1.png"
    assert second[0].name == "00001-1.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000-1.png", "00001-1.png"]  # no temp files left


def test_image_without_parameters(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    meta = read_png_metadata(tmp_path / "plain.png")
    assert "parameters" not in meta and "sdkit" not in meta
