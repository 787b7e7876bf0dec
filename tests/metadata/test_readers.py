"""Readers tested on real files: sd-parsers' MIT-licensed test images (fixtures/sd-parsers, with its licence),
written by AUTOMATIC1111, Fooocus, InvokeAI 2 and 3, NovelAI and ComfyUI."""

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sdkit.metadata.imagemeta import parse_metadata, read_image_metadata
from sdkit.metadata.stealth import read_stealth_infotext, write_stealth_infotext

FIXTURES = Path(__file__).parent / "fixtures" / "sd-parsers"

DUCK = ("photo of a duck", "monochrome", 235284042, 15, 5.0, 512, 400, "UniPC", "realistic_realisticVisionV20_v20")
INVOKE2 = (
    "professional full body photo of young woman, hyper long brunette hair, elegant hair, wearing a bikini top and "
    "asymmetric short skirt, curvy body, long legs, (imperfect skin), detailed skin, intense freckles, super long "
    "eye lashes, at night, outside, city background, 8k ultra detailed, realistic, high quality, film grain, low "
    "contrast",
    "rendering, glowing eyes, skinny",
    2980747362,
    50,
    5.0,
    512,
    768,
    "k_lms",
)


def fields(m):
    return (m.prompt, m.negative_prompt, m.seed, m.steps, m.guidance_scale, m.width, m.height, m.sampler, m.model)


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("automatic1111_cropped.png", "a1111", DUCK),
        ("automatic1111_cropped.jpg", "a1111", DUCK),
        ("text_after_idat.png", "a1111", DUCK),
        (
            "automatic1111_stealth.png",
            "a1111",
            ("a circle", "a square", 2015833630, 20, 7.0, 64, 64, "Euler", "realisticVisionV51_v51VAE"),
        ),
        (
            "fooocus1_cropped.png",
            "fooocus",
            (
                "a smiling goldfish",
                "",
                6952411511246973023,
                30,
                4.0,
                768,
                1280,
                "dpmpp_2m_sde_gpu",
                "juggernautXL_v8Rundiffusion",
            ),
        ),
        ("invokeai_dream1.png", "invokeai", (*INVOKE2, None)),
        ("invokeai_sdmeta1.png", "invokeai", (*INVOKE2, "deliberateForInvoke_v08")),
        (
            "novelai1_cropped.png",
            "novelai",
            (
                "masterpiece, best quality,  cat, space, icon",
                "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
                "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry, "
                "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
                "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry",
                2253955223,
                50,
                10.0,
                None,
                None,
                "k_euler_ancestral",
                "Stable Diffusion 1D44365E",
            ),
        ),
    ],
)
def test_reads_real_files(name, source, expected):
    m = read_image_metadata(FIXTURES / name)
    assert m.source == source
    assert fields(m) == expected


def test_parameters_chunk_after_the_image_data_is_read():
    with Image.open(FIXTURES / "text_after_idat.png") as im:
        assert "parameters" not in im.info  # Pillow shows it only once the image is decoded
    assert read_image_metadata(FIXTURES / "text_after_idat.png").raw["parameters"].startswith("photo of a duck")


def test_fooocus_json_is_not_read_as_an_a1111_prompt():
    with Image.open(FIXTURES / "fooocus1_cropped.png") as im:
        text = dict(im.info)
    del text["fooocus_scheme"]  # the scheme in the JSON is enough
    m = parse_metadata(text)
    assert (m.source, m.prompt, m.steps) == ("fooocus", "a smiling goldfish", 30)


def test_invokeai3_still_read_from_its_own_chunk():
    m = read_image_metadata(FIXTURES / "invokeai_imeta1.png")
    assert fields(m)[:7] == (
        "digital artwork, oil painting. painterly brushstrokes, holidays,",
        "grainy+, photo, oversaturated, overexposed, blurry, compressed jpg+, noisy++, unfocused , black and white",
        3293022630,
        35,
        8.0,
        1024,
        1024,
    )


@pytest.mark.parametrize(
    ("name", "seed", "size"),
    [
        ("img2img_cropped.png", 280823642470253, (None, None)),  # its latent comes from pixels (VAEEncode)
        ("night_evening_day_morning_cropped.png", 335608130539327, (704, 1280)),
        # the first sampler in the graph works on a LatentUpscale to 1920x1088, not the first EmptyLatentImage
        ("noisy_latents_3_subjects_cropped.png", 1084614416978598, (1920, 1088)),
        ("unclip_2pass_cropped.png", 1106257833005336, (1280, 704)),
    ],
)
def test_comfyui_size_is_the_latent_the_sampler_used(name, seed, size):
    m = read_image_metadata(FIXTURES / name)
    assert (m.source, m.seed, (m.width, m.height)) == ("comfyui", seed, size)


def test_comfyui_latent_followed_through_samplers_and_upscale_by():
    graph = {
        "1": {"class_type": "KSampler", "inputs": {"seed": 1, "latent_image": ["2", 0]}},
        "2": {"class_type": "LatentUpscaleBy", "inputs": {"scale_by": 1.5, "samples": ["3", 0]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 2, "latent_image": ["4", 0]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    }
    m = parse_metadata({"prompt": json.dumps(graph)})
    assert (m.seed, m.width, m.height) == (1, 768, 1152)


# --- stealth infotext -------------------------------------------------------------------------------------------

TEXT = "a lighthouse, 夜\nNegative prompt: fog\nSteps: 25, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 48x40"


@pytest.mark.parametrize(("mode", "compressed"), [("alpha", True), ("alpha", False), ("rgb", True), ("rgb", False)])
def test_stealth_infotext_round_trips_in_every_layout(tmp_path, mode, compressed):
    base = Image.effect_noise((48, 40), 60).convert("RGB")
    hidden = write_stealth_infotext(base, TEXT, mode=mode, compressed=compressed)
    hidden.save(tmp_path / "s.png")
    m = read_image_metadata(tmp_path / "s.png")
    assert (m.source, m.prompt, m.negative_prompt, m.seed, m.width) == ("a1111", "a lighthouse, 夜", "fog", 123, 48)
    diff = max(abs(a - b) for a, b in zip(hidden.convert("RGB").tobytes(), base.tobytes(), strict=True))
    assert diff <= 1  # only the lowest bit moves


def test_stealth_reader_ignores_images_without_a_signature():
    assert read_stealth_infotext(Image.effect_noise((64, 64), 60).convert("RGBA")) is None
    assert read_stealth_infotext(Image.new("RGBA", (3, 3))) is None  # too small for even the signature
    assert read_stealth_infotext(Image.new("L", (64, 64))) is None


def test_text_chunks_win_over_stealth_bits(tmp_path):
    hidden = write_stealth_infotext(Image.new("RGB", (48, 40)), TEXT)
    info = PngInfo()
    info.add_text("parameters", "from the chunk\nSteps: 5, Sampler: DDIM, CFG scale: 3, Seed: 9")
    hidden.save(tmp_path / "s.png", pnginfo=info)
    assert read_image_metadata(tmp_path / "s.png").prompt == "from the chunk"


def test_stealth_text_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="do not fit"):
        write_stealth_infotext(Image.new("RGB", (8, 8)), TEXT, compressed=False)


# --- sd-parsers, an independent reader --------------------------------------------------------------------------


def test_new_keys_round_trip_through_sd_parsers():
    sd_parsers = pytest.importorskip("sd_parsers")
    from sdkit.metadata.pngfile import png_bytes

    record = {
        "params": {"prompt": "a cat", "negative_prompt": "ugly", "num_inference_steps": 20,
                   "guidance_scale": 12.3456789, "width": 64, "height": 64},
        "seed": 5, "scheduler": "Euler a", "model": "tiny", "model_hash": "0123456789abcdef",
    }  # fmt: skip
    extras = {"Clip skip": 2, "Variation seed": 7, "Variation seed strength": 0.3, "Denoising strength": 0.5,
              "Hires upscale": 2.0, "Hires steps": 10, "Hires upscaler": "Latent"}  # fmt: skip
    with Image.open(io.BytesIO(png_bytes(Image.new("RGB", (8, 8)), record, infotext_extras=extras))) as im:
        info = sd_parsers.ParserManager().parse(im)
    assert info is not None and info.generator.name == "AUTOMATIC1111"
    (sampler,) = info.samplers
    assert sampler.name == "Euler a"
    assert sampler.parameters["cfg_scale"] == "12.3456789"
    assert (sampler.model.name, sampler.model.hash) == ("tiny", "0123456789")
    assert [p.value for p in sampler.prompts] == ["a cat"]
    assert [p.value for p in sampler.negative_prompts] == ["ugly"]
    assert {k: info.metadata[k] for k in extras} == {
        "Clip skip": "2", "Variation seed": "7", "Variation seed strength": "0.3", "Denoising strength": "0.5",
        "Hires upscale": "2", "Hires steps": "10", "Hires upscaler": "Latent",
    }  # fmt: skip


def test_stealth_writer_is_read_by_sd_parsers():
    sd_parsers = pytest.importorskip("sd_parsers")
    hidden = write_stealth_infotext(Image.new("RGB", (48, 40), "navy"), TEXT)  # sd-parsers reads stealth_pngcomp
    buf = io.BytesIO()
    hidden.save(buf, format="PNG")
    from sd_parsers.extractors import Eagerness

    with Image.open(io.BytesIO(buf.getvalue())) as im:
        info = sd_parsers.ParserManager(eagerness=Eagerness.EAGER).parse(im)  # EAGER: it reads pixel bits
    (sampler,) = info.samplers
    assert [p.value for p in sampler.prompts] == ["a lighthouse, 夜"]
    assert (sampler.name, sampler.parameters["seed"]) == ("Euler a", "123")


def test_read_png_metadata_does_not_parse_fooocus_json_as_infotext():
    from sdkit.metadata.pngfile import read_png_metadata

    out = read_png_metadata(FIXTURES / "fooocus1_cropped.png")
    assert "parameters" not in out and out["text"]["fooocus_scheme"] == "fooocus"
    assert read_png_metadata(FIXTURES / "automatic1111_stealth.png")["parameters"]["Clip skip"] == "2"


# --- the keys sdkit's own images now carry, end to end on the tiny model -----------------------------------------


def test_clip_skip_and_ti_hashes_reach_the_png_and_read_back(tmp_path):
    torch = pytest.importorskip("torch")
    from sdkit import GenerationParams, LocalBackend, save_result
    from sdkit.metadata.infotext import parse_infotext

    folder = tmp_path / "embeddings"
    folder.mkdir()
    backend = LocalBackend(progress=False, embeddings=folder)
    width = backend.load("tiny").text_encoder.get_input_embeddings().weight.shape[1]
    torch.save({"string_to_param": {"*": torch.zeros(1, width)}, "name": "crimzon"}, folder / "crimzon.pt")
    params = GenerationParams("a crimzon circle", seed=1, num_inference_steps=2, clip_skip=2)
    (path,) = save_result(backend.generate(params), tmp_path / "out")
    text = read_image_metadata(path).raw["parameters"]
    pairs = parse_infotext(text)
    assert pairs["Clip skip"] == "2"
    assert re.fullmatch(r"crimzon: [0-9a-f]{12}", pairs["TI hashes"])
    assert text.index("Clip skip") < text.index("TI hashes") < text.index("Version")
    plain = GenerationParams("a red circle", seed=1, num_inference_steps=2)
    (path,) = save_result(backend.generate(plain), tmp_path / "plain")
    text = read_image_metadata(path).raw["parameters"]
    assert "Clip skip" not in text and "TI hashes" not in text
