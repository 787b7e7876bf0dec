import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sdkit import GenerationParams, GenerationResult, save_result
from sdkit.metadata.imagemeta import parse_metadata, read_image_metadata

COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["6", 0],
            "negative": ["7", 0],
            "model": ["4", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
}

INVOKE = {
    "positive_prompt": "a cat",
    "negative_prompt": "blurry",
    "seed": 42,
    "steps": 30,
    "cfg_scale": 6.5,
    "width": 1024,
    "height": 1024,
    "scheduler": "dpmpp_2m",
    "model": {"name": "sdxl-base", "base": "sdxl"},
}


def test_reads_comfyui_prompt_graph():
    m = parse_metadata({"prompt": json.dumps(COMFY_PROMPT), "workflow": "{}"})
    assert m.source == "comfyui"
    assert (m.prompt, m.negative_prompt) == ("beautiful scenery", "text, watermark")
    assert (m.seed, m.steps, m.guidance_scale, m.sampler) == (156680208700286, 20, 8.0, "euler")
    assert (m.width, m.height, m.model) == (512, 768, "v1-5-pruned-emaonly.safetensors")


def test_reads_invokeai_metadata():
    m = parse_metadata({"invokeai_metadata": json.dumps(INVOKE)})
    assert m.source == "invokeai"
    assert (m.prompt, m.negative_prompt, m.seed, m.steps, m.guidance_scale) == ("a cat", "blurry", 42, 30, 6.5)
    assert (m.width, m.height, m.sampler, m.model) == (1024, 1024, "dpmpp_2m", "sdxl-base")


def test_broken_chunk_falls_through_to_next_source():
    m = parse_metadata({"sdkit": "{not json", "parameters": "a dog\nSteps: 5, Sampler: DDIM, CFG scale: 3, Seed: 9"})
    assert m.source == "a1111"
    assert (m.prompt, m.steps, m.sampler, m.guidance_scale, m.seed) == ("a dog", 5, "DDIM", 3.0, 9)


def test_nothing_found():
    assert parse_metadata({"Software": "GIMP"}).source is None


def test_reads_sdkit_png_with_its_record(tmp_path):
    params = GenerationParams("a red circle", seed=5, width=64, height=64, num_inference_steps=4)
    result = GenerationResult(
        params, (Image.new("RGB", (64, 64)),), (5,), "tiny", "local", details={"scheduler": "Euler"}
    )
    (path,) = save_result(result, tmp_path)
    m = read_image_metadata(path)
    assert m.source == "sdkit"
    assert (m.prompt, m.seed, m.steps, m.width, m.sampler, m.model) == ("a red circle", 5, 4, 64, "Euler", "tiny")
    assert m.record["backend"] == "local"
    assert "parameters" in m.raw


def test_reads_a1111_from_jpeg_exif_user_comment(tmp_path):
    text = "a lighthouse\nNegative prompt: fog\nSteps: 25, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    Image.new("RGB", (16, 16)).save(tmp_path / "a.jpg", exif=exif)
    m = read_image_metadata(tmp_path / "a.jpg")
    assert m.source == "a1111"
    assert (m.prompt, m.negative_prompt, m.seed, m.width) == ("a lighthouse", "fog", 123, 512)


def test_reads_comfyui_png(tmp_path):
    info = PngInfo()
    info.add_text("prompt", json.dumps(COMFY_PROMPT))
    Image.new("RGB", (8, 8)).save(tmp_path / "c.png", pnginfo=info)
    assert read_image_metadata(tmp_path / "c.png").prompt == "beautiful scenery"
