import hashlib

import torch

from training.tiny import TrainConfig, train

QUICK = TrainConfig(
    max_scenes=16,
    vae_steps=2,
    vae_batch=2,
    decoder_steps=2,
    decoder_batch=2,
    unet_steps=3,
    unet_batch=2,
    captions_per_scene=2,
)


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


def test_training_is_deterministic_and_saves_a_loadable_pipeline(tmp_path):
    from diffusers import StableDiffusionPipeline

    logs = []
    report = train(tmp_path / "a", QUICK, log=logs.append)
    train(tmp_path / "b", QUICK, log=lambda line: None)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert set(a) == {
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    }
    assert a == b
    assert report.config == QUICK
    assert any("unet step 2/3" in line for line in logs)
    assert any("vae reconstructions read right" in line for line in logs)
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "a"))
    assert pipe.unet.dtype == pipe.text_encoder.dtype == pipe.vae.dtype == torch.float32  # stored as float16
    assert pipe.vae.config.scaling_factor != 0.18215  # measured on the training latents
    assert (tmp_path / "a" / "training.json").is_file()
    c = train(tmp_path / "c", TrainConfig(**{**QUICK.__dict__, "seed": 1}), log=lambda line: None)
    assert c.config.seed == 1
    assert _digest(tmp_path / "c") != a
