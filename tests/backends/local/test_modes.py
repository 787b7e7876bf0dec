"""Variation seeds, img2img, hires fix and single-file checkpoints on the embedded models (issue 16)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdkit import GenerationParams
from sdkit.errors import InvalidModelError, ValidationError

PROMPT = "a red circle on a blue background"


def pixels(image):
    return np.asarray(image, dtype=np.int16)


@pytest.fixture
def base():
    return GenerationParams(PROMPT, seed=11, num_inference_steps=6, scheduler="Euler")


def test_variation_strength_0_is_the_seed_and_1_the_variation_seed(backend, base):
    plain = pixels(backend.generate(base).images[0])
    other = pixels(backend.generate(base.replace(seed=99)).images[0])
    zero = pixels(backend.generate(base.replace(variation_seed=99, variation_strength=0.0)).images[0])
    one = pixels(backend.generate(base.replace(variation_seed=99, variation_strength=1.0)).images[0])
    half = pixels(backend.generate(base.replace(variation_seed=99, variation_strength=0.5)).images[0])
    assert np.array_equal(zero, plain)
    assert np.abs(one - other).max() <= 1
    assert np.abs(half - plain).max() > 1 and np.abs(half - other).max() > 1


def test_variation_seeds_in_a_batch_take_one_generator_pair_per_image(backend, base):
    batch = backend.generate(base.replace(num_images=3, variation_seed=99, variation_strength=0.3))
    for i, image in enumerate(batch.images):
        alone = backend.generate(base.replace(seed=11 + i, variation_seed=99 + i, variation_strength=0.3))
        assert np.abs(pixels(image) - pixels(alone.images[0])).max() <= 1  # batching moves a level at most


def test_ancestral_noise_follows_the_main_seed(backend, base):
    ancestral = base.replace(scheduler="Euler a")
    other = pixels(backend.generate(ancestral.replace(seed=99)).images[0])
    one = pixels(backend.generate(ancestral.replace(variation_seed=99, variation_strength=1.0)).images[0])
    assert np.abs(one - other).max() > 1  # start noise from 99, step noise from 11 (as in A1111)


def test_img2img_moves_further_from_the_init_image_as_strength_rises(backend, base):
    init = Image.new("RGB", (64, 64), (30, 160, 40))
    distances = []
    for strength in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0):
        params = base.replace(num_inference_steps=20, init_image=init, denoising_strength=strength)
        distances.append(float(np.abs(pixels(backend.generate(params).images[0]) - pixels(init)).mean()))
    assert distances[0] == 0.0  # strength 0: the picture itself
    # measured: 0, 10, 20, 88, 94, 95 (the tiny model has redrawn the picture by 0.3; then it levels off)
    assert distances[0] < distances[1] < distances[2] < distances[3], distances
    assert min(distances[3:]) > distances[2] + 30, distances


def test_init_image_is_recorded_by_its_pixels_sha256(tmp_path, base):
    init = Image.new("RGB", (64, 64), (200, 10, 10))
    init.save(tmp_path / "a.png")
    init.save(tmp_path / "b.webp", lossless=True)
    by_path = base.replace(init_image=str(tmp_path / "a.png"))
    assert by_path.init_image.startswith("sha256:") and len(by_path.init_image) == 71
    assert base.replace(init_image=tmp_path / "b.webp").init_image == by_path.init_image
    assert base.replace(init_image=init).init_image == by_path.init_image
    assert json.loads(json.dumps(by_path.to_dict()))["init_image"] == by_path.init_image
    other = base.replace(init_image=Image.new("RGB", (64, 64), (200, 10, 11)))
    assert other.init_image != by_path.init_image


def test_new_fields_at_their_defaults_leave_records_and_cache_keys_as_they_were(base):
    from sdkit.sweeps.runner import cache_key

    assert set(base.to_dict()) == {
        "prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "width", "height",
        "scheduler", "num_images", "model",
    }  # fmt: skip
    assert cache_key({"device": "cpu"}, base) == cache_key({"device": "cpu"}, base.replace(denoising_strength=0.75))
    assert cache_key({"device": "cpu"}, base) != cache_key({"device": "cpu"}, base.replace(hires_scale=2))
    assert GenerationParams.from_dict(base.replace(hires_scale=2).to_dict()).hires_scale == 2.0


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"variation_strength": 1.5}, "variation_strength", "must be between 0 and 1"),
        ({"variation_strength": 0.5}, "variation_strength", "needs a variation_seed"),
        ({"variation_seed": -1}, "variation_seed", "must be between 0 and"),
        ({"denoising_strength": "high"}, "denoising_strength", "must be a number"),
        ({"init_image": "/no/such.png"}, "init_image", "no such file"),
        ({"init_image": 42}, "init_image", "must be a path, an http(s) URL, a PIL image"),
        ({"init_image": "sha256:abc"}, "init_image", "64 lower-case hex digits"),
        ({"hires_scale": 0.5}, "hires_scale", "between 1 (off) and 4"),
        ({"hires_steps": 0}, "hires_steps", "must be between 1 and"),
        ({"hires_upscaler": "lanczoss"}, "hires_upscaler", "did you mean 'lanczos'?"),
    ],
)
def test_new_fields_are_refused_by_name(base, change, field, says):
    with pytest.raises(ValidationError) as info:
        base.replace(**change)
    assert info.value.field == field and says in str(info.value)


def test_an_unknown_init_image_key_fails_before_the_model_runs(backend, base):
    params = base.replace(init_image="sha256:" + "0" * 64)
    with pytest.raises(ValidationError, match="no picture with this key on this machine"):
        backend.generate(params)


@pytest.mark.parametrize("upscaler", ["latent", "lanczos"])
def test_hires_fix_takes_the_tiny_model_from_64_to_128(backend, base, upscaler):
    result = backend.generate(base.replace(hires_scale=2, hires_steps=4, hires_upscaler=upscaler))
    assert result.images[0].size == (128, 128)
    assert result.params.width == 64  # A1111 records the first pass's size and the upscale
    small = backend.generate(base).images[0].resize((128, 128), Image.Resampling.LANCZOS)
    assert np.abs(pixels(result.images[0]) - pixels(small)).mean() < 60  # the same picture, redrawn larger


def test_the_infotext_carries_a1111_keys(tmp_path, backend, base):
    from sdkit.metadata.pngfile import read_png_metadata, save_result

    hires = backend.generate(
        base.replace(hires_scale=2, hires_upscaler="lanczos", variation_seed=3, variation_strength=0.25)
    )
    (path,) = save_result(hires, tmp_path)
    text = read_png_metadata(path)["text"]["parameters"]
    for pair in ("Variation seed: 3", "Variation seed strength: 0.25", "Denoising strength: 0.5", "Hires upscale: 2",
                 "Hires upscaler: Lanczos"):  # fmt: skip
        assert pair in text, text
    i2i = backend.generate(base.replace(init_image=Image.new("RGB", (64, 64)), denoising_strength=0.4))
    (path,) = save_result(i2i, tmp_path)
    assert read_png_metadata(path)["parameters"]["Denoising strength"] == "0.4"


def test_a_single_file_checkpoint_gives_the_folder_models_pixels(tmp_path, backend, base):
    from sdkit.backends.local.embedded import embedded_model_path
    from sdkit.checkpoint import file_sha256, write_single_file

    path = write_single_file(embedded_model_path("tiny-random"), tmp_path / "tiny-random.safetensors")
    folder = backend.generate(base.replace(model="tiny-random", num_images=2))
    single = backend.generate(base.replace(model=str(path), num_images=2))
    for a, b in zip(folder.images, single.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))
    assert single.details["model_hash"] == file_sha256(path)  # A1111's Model hash: its first 10 digits


def test_a_safetensors_file_that_is_not_a_checkpoint_is_refused_by_its_header(tmp_path):
    from safetensors.numpy import save_file

    from sdkit.backends.local.pipeline import check_model

    save_file({"lora_unet_down.weight": np.zeros(2, dtype=np.float32)}, str(tmp_path / "style.safetensors"))
    with pytest.raises(InvalidModelError, match="holds no UNet weights"):
        check_model(str(tmp_path / "style.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(InvalidModelError, match=r"not a readable \.safetensors file"):
        check_model(str(tmp_path / "junk.safetensors"))


def test_a_model_convert_cannot_map_is_refused_naming_the_weight(tmp_path):
    from sdkit.backends.local.embedded import embedded_model_path
    from sdkit.checkpoint import write_single_file
    from sdkit.errors import ModelError

    with pytest.raises(ModelError, match="add_embedding"):  # tiny's text-conditioned time embedding has no LDM name
        write_single_file(embedded_model_path("tiny"), tmp_path / "tiny.safetensors")


STUDY = """
name: denoise
model: tiny
params: {{prompt: "a red hexagon on a blue background <lora:hexagon:1>", num_inference_steps: 4, init_image: "{init}"}}
axes:
  x: "denoising_strength=0.25,0.5,1"
  y: "lora_weight=0,1"
seeds: [1]
threads: 1
"""


def test_a_study_with_a_denoising_strength_by_lora_weight_grid_verifies_in_a_new_process(tmp_path, backend):
    from sdkit import load_manifest, run_study

    Image.new("RGB", (64, 64), (240, 220, 30)).save(tmp_path / "init.png")
    spec = tmp_path / "denoise.yaml"
    spec.write_text(STUDY.format(init=tmp_path / "init.png"))
    out = tmp_path / "run"
    run = run_study(spec, out, backend=backend, progress=False)
    assert (run.made, run.total) == (6, 6)
    entries = load_manifest(out)
    assert {e["params"]["denoising_strength"] for e in entries if "denoising_strength" in e["params"]} == {
        0.25,
        0.5,
        1.0,
    }
    assert len(list((out / "inputs").glob("*.png"))) == 1  # the folder carries its init image
    weights = sorted({tuple(map(tuple, e["params"].get("loras", []))) or e["params"]["prompt"] for e in entries})
    assert len(weights) == 2  # lora_weight 0 and 1 both made
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
           "SDKIT_CACHE_DIR": str(tmp_path / "fresh-cache")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "sdkit", "study", "verify", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_checkpoint_of_a_family_sdkit_carries_no_configs_for_is_refused_offline_naming_it(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from sdkit.backends.local.pipeline import check_model
    from sdkit.errors import ModelError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # SD 1.x, 2.x and SDXL base files load offline (tests/test_checkpoint.py)
    marker = "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias"
    weights = {"model.diffusion_model.out.2.bias": np.zeros(4, dtype=np.float32), marker: np.zeros(2, np.float32)}
    save_file(weights, str(tmp_path / "sd_xl_refiner_1.0.safetensors"))
    with pytest.raises(ModelError, match=r"a SDXL refiner checkpoint; sdkit carries the configs of SD 1\.x"):
        check_model(str(tmp_path / "sd_xl_refiner_1.0.safetensors"))


def test_the_repr_shows_the_new_fields_only_when_set(base):
    assert "hires" not in repr(base) and "init_image" not in repr(base)
    assert repr(base).endswith("num_images=1, model='tiny')")
    assert "hires_scale=2.0" in repr(base.replace(hires_scale=2))


def test_verify_refuses_a_manifest_whose_init_image_is_not_a_key(tmp_path, backend):
    from sdkit import run_study, verify_study

    Image.new("RGB", (64, 64), (240, 220, 30)).save(tmp_path / "init.png")
    spec = tmp_path / "denoise.yaml"
    spec.write_text(STUDY.format(init=tmp_path / "init.png").replace('"hires_scale=1,2"', '"hires_scale=1"'))
    out = tmp_path / "run"
    run_study(spec, out, backend=backend, progress=False)
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    lines[0] = lines[0].replace(json.loads(lines[0])["params"]["init_image"], "/etc/hostname")
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError, match="must be a 'sha256:' key"):
        verify_study(out, backend=backend, progress=False)


def test_img2img_requests_with_different_init_images_share_one_call(backend, base):
    yellow, cyan = Image.new("RGB", (64, 64), (250, 250, 0)), Image.new("RGB", (64, 64), (0, 250, 250))
    asks = [base.replace(init_image=im, denoising_strength=0.3) for im in (yellow, cyan)]
    together = backend.generate_many(asks)
    assert [r.details["batch_size"] for r in together] == [2, 2]
    for made, ask in zip(together, asks, strict=True):
        alone = backend.generate(ask)
        assert np.abs(pixels(made.images[0]) - pixels(alone.images[0])).max() <= 1
