"""Training the embedded ``tiny`` model from scratch on procedurally drawn shape scenes.

Two stages, both seeded and deterministic on the CPU (fixed thread count):

1. an ``AutoencoderKL`` (3 blocks, scale factor 4: 16×16 latents at 64×64) learns to reconstruct
   the scenes of :mod:`training.shapes`; it is then frozen and every scene is encoded once;
2. a ``UNet2DConditionModel`` (the caption steers it through cross-attention and, pooled,
   through the time embedding) and a ``CLIPTextModel`` learn together with the v-prediction
   loss, Min-SNR weighted; 10% of the captions are dropped so classifier-free guidance works.
   The saved weights are an exponential moving average of the trained ones.

The result is an ordinary diffusers ``StableDiffusionPipeline`` folder.
Run it with ``make train-tiny`` (or ``python -m training.tiny --out FOLDER``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "TrainReport", "train"]

NATIVE_SIZE = 64
#: The VAE's channels per block; each block after the first halves the picture, so the latents are
#: 16×16 at the native size, fine enough for a small triangle's corners.
VAE_CHANNELS = (16, 32, 64)
#: Pixels per latent cell (diffusers' ``vae_scale_factor``).
LATENT_FACTOR = 2 ** (len(VAE_CHANNELS) - 1)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (with the code itself)."""

    seed: int = 0
    threads: int = 2
    vae_steps: int = 2500
    vae_batch: int = 16
    vae_crop: int = 32
    vae_lr: float = 3e-3
    decoder_steps: int = 600
    decoder_batch: int = 8
    decoder_lr: float = 1e-3
    unet_steps: int = 3000
    unet_batch: int = 32
    unet_lr: float = 2e-3
    ema_decay: float = 0.998
    uncond_prob: float = 0.1
    snr_gamma: float = 5.0
    captions_per_scene: int = 8
    checkpoints: bool = False
    #: Train on a seeded sample of this many scenes instead of all of them (for quick checks).
    max_scenes: int | None = None


@dataclass(frozen=True)
class TrainReport:
    config: TrainConfig
    vae_s: float
    unet_s: float
    vae_loss: float
    unet_loss: float
    params: dict[str, int] = field(default_factory=dict)
    decoder_s: float = 0.0
    decoder_loss: float = 0.0
    #: Share of (a sample of) the scenes whose VAE reconstruction :func:`~training.shapes.classify` reads right.
    recon_shape_accuracy: float = 0.0
    recon_colour_accuracy: float = 0.0


def scheduler_config() -> dict[str, Any]:
    """The noise schedule of training and sampling: DDPM's linear betas (terminal SNR near zero,
    so the background colour comes from the prompt, not from the starting noise) with
    v-prediction (at high noise the model then predicts the picture itself, which the prompt
    decides; epsilon-prediction left the prompt almost no say there)."""
    return {
        "beta_start": 0.0001,
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "steps_offset": 1,
    }


def build_models(tokenizer: Any) -> tuple[Any, Any, Any]:
    """(vae, text_encoder, unet), freshly initialised from torch's current random state."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    vae = AutoencoderKL(
        block_out_channels=VAE_CHANNELS,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(VAE_CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_CHANNELS),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=NATIVE_SIZE,
    )
    torch.manual_seed(torch.initial_seed() + 1)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    torch.manual_seed(torch.initial_seed() + 2)
    unet = UNet2DConditionModel(
        sample_size=NATIVE_SIZE // LATENT_FACTOR,
        in_channels=4,
        out_channels=4,
        block_out_channels=(48, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
        # The caption, pooled, also steers every block through the time embedding (FiLM):
        # cross-attention alone let the model learn colours long before shapes.
        addition_embed_type="text",
        addition_embed_type_num_heads=4,
        resnet_time_scale_shift="scale_shift",
    )
    return vae, text_encoder, unet


def _images(scenes: list[Any]) -> Any:
    import numpy as np
    import torch

    from training.shapes import render

    arr = np.stack([np.asarray(render(s), dtype=np.uint8) for s in scenes])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _to_float(images: Any) -> Any:
    return images.float() / 127.5 - 1.0


def _cosine_lr(step: int, steps: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_vae(vae: Any, images: Any, config: TrainConfig, log: Callable[[str], None]) -> float:
    import torch

    gen = torch.Generator().manual_seed(config.seed + 10)
    opt = torch.optim.Adam(vae.parameters(), lr=config.vae_lr)
    vae.train()
    running = 0.0
    for step in range(config.vae_steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, config.vae_steps, config.vae_lr)
        idx = torch.randint(0, len(images), (config.vae_batch,), generator=gen)
        # The autoencoder is convolutional: random crops teach it as well, at a fraction of the cost.
        c = config.vae_crop
        top, left = (int(v) for v in torch.randint(0, NATIVE_SIZE - c + 1, (2,), generator=gen))
        x = _to_float(images[idx, :, top : top + c, left : left + c])
        # A plain autoencoder on the posterior mean (what the UNet is trained on), with a small
        # penalty that keeps the latents bounded; sampling the posterior only slowed learning.
        z = vae.encode(x).latent_dist.mean
        recon = vae.decode(z).sample
        loss = (recon - x).abs().mean() + (recon - x).pow(2).mean() + 1e-4 * z.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 250 == 0 or step == config.vae_steps - 1:
            log(f"vae step {step}/{config.vae_steps} loss {running:.4f}")
    vae.eval()
    return running


def finetune_decoder(vae: Any, images: Any, latents: Any, config: TrainConfig, log: Callable[[str], None]) -> float:
    """Fine-tune the decoder alone on whole pictures (the crops leave its borders and colours rough).

    ``latents`` are the frozen encoder's (unscaled), so the UNet's targets do not move."""
    import torch

    gen = torch.Generator().manual_seed(config.seed + 30)
    params = [p for name, p in vae.named_parameters() if name.startswith(("decoder.", "post_quant_conv."))]
    opt = torch.optim.Adam(params, lr=config.decoder_lr)
    vae.train()
    running = 0.0
    for step in range(config.decoder_steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, config.decoder_steps, config.decoder_lr, warmup=20)
        idx = torch.randint(0, len(images), (config.decoder_batch,), generator=gen)
        x = _to_float(images[idx])
        recon = vae.decode(latents[idx]).sample
        loss = (recon - x).abs().mean() + (recon - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 100 == 0 or step == config.decoder_steps - 1:
            log(f"decoder step {step}/{config.decoder_steps} loss {running:.4f}")
    vae.eval()
    return running


def _reconstruction_accuracy(vae: Any, scenes: list[Any], latents: Any, seed: int) -> tuple[float, float]:
    """(shape colour, shape) accuracy of :func:`~training.shapes.classify` on VAE reconstructions of up to 240 scenes.

    The UNet cannot draw a shape better than the VAE decodes it: check this before training the UNet."""
    import torch
    from PIL import Image

    from training.shapes import classify

    picks = sorted(random.Random(seed + 40).sample(range(len(scenes)), min(240, len(scenes))))
    with torch.no_grad():
        recon = vae.decode(latents[picks]).sample
    pixels = ((recon.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    colour = shape = 0
    for i, px in zip(picks, pixels, strict=True):
        got_colour, _, got_shape = classify(Image.fromarray(px))
        colour += got_colour == scenes[i].colour
        shape += got_shape == scenes[i].shape
    return colour / len(picks), shape / len(picks)


def train_unet(
    unet: Any,
    text_encoder: Any,
    latents: Any,
    tokens: Any,
    config: TrainConfig,
    log: Callable[[str], None],
    checkpoint: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Returns (final smoothed loss, EMA state dicts of unet and text encoder)."""
    import torch
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler(**scheduler_config())
    alphas = noise_sched.alphas_cumprod
    gen = torch.Generator().manual_seed(config.seed + 20)
    models = {"unet": unet, "text_encoder": text_encoder}
    params = [p for m in models.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=0.01)
    ema = {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in models.items()}
    empty = tokens[-1]  # the last row is the empty caption
    per_scene = config.captions_per_scene
    n_scenes = (tokens.shape[0] - 1) // per_scene
    unet.train()
    text_encoder.train()
    running = 0.0
    for step in range(config.unet_steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, config.unet_steps, config.unet_lr)
        b = config.unet_batch
        scene = torch.randint(0, n_scenes, (b,), generator=gen)
        which = torch.randint(0, per_scene, (b,), generator=gen)
        ids = tokens[scene * per_scene + which]
        drop = torch.rand(b, generator=gen) < config.uncond_prob
        ids = torch.where(drop[:, None], empty[None, :], ids)
        x0 = latents[scene]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (b,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        context = text_encoder(ids)[0]
        pred = unet(xt, t, encoder_hidden_states=context).sample
        target = a.sqrt() * noise - (1 - a).sqrt() * x0  # v
        # Min-SNR weighting: nearly clean steps (fine texture) count less, the middle steps where
        # the shape is decided count fully; converges in far fewer steps.
        snr = a / (1 - a)
        weight = snr.clamp(max=config.snr_gamma) / (snr + 1)
        loss = (weight * (pred - target).pow(2)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, m in models.items():
                for k, v in m.state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[name][k].mul_(decay).add_(v.detach(), alpha=1 - decay)
                    else:
                        ema[name][k].copy_(v)
        running = 0.99 * running + 0.01 * loss.item() if step else loss.item()
        if step % 500 == 0 or step == config.unet_steps - 1:
            log(f"unet step {step}/{config.unet_steps} loss {running:.4f}")
        if checkpoint is not None and step and step % 500 == 0:
            checkpoint(step, ema)
    unet.eval()
    text_encoder.eval()
    return running, ema


def store_half(folder: Path) -> None:
    """Rewrite every ``*.safetensors`` under ``folder`` with float16 values (half the bytes).

    The configs still say float32 and ``from_pretrained`` loads the values into float32 models;
    the rounding changed none of the adherence benchmark's 192 images' readings."""
    from safetensors.torch import load_file, save_file

    for path in sorted(Path(folder).rglob("*.safetensors")):
        tensors = load_file(path)
        half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(half, path, metadata={"format": "pt"})


def _tokenize(tokenizer: Any, texts: list[str]) -> Any:
    return tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


def train(out: Path, config: TrainConfig | None = None, log: Callable[[str], None] = print) -> TrainReport:
    """Train the shapes model from scratch and save it as a diffusers pipeline folder ``out``."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from sdkit.backends.local.embedded import _load_tokenizer, write_tokenizer
    from training.shapes import all_scenes, caption

    config = config or TrainConfig()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    out = Path(out)
    tok_dir = out.parent / f".{out.name}-tokenizer"
    write_tokenizer(tok_dir)
    tokenizer = _load_tokenizer(tok_dir)

    scenes = all_scenes()
    if config.max_scenes is not None:
        scenes = random.Random(config.seed).sample(scenes, config.max_scenes)
    images = _images(scenes)
    rng = random.Random(config.seed)
    texts = [caption(s, rng=rng) for s in scenes for _ in range(config.captions_per_scene)] + [""]
    tokens = _tokenize(tokenizer, texts)
    log(f"{len(scenes)} scenes, {len(texts) - 1} captions, e.g. {texts[0]!r}")

    torch.manual_seed(config.seed)
    vae, text_encoder, unet = build_models(tokenizer)
    counts = {
        name: sum(p.numel() for p in m.parameters())
        for name, m in (("vae", vae), ("text_encoder", text_encoder), ("unet", unet))
    }
    log(f"parameters: {counts}")

    start = time.perf_counter()
    vae_loss = train_vae(vae, images, config, log)
    vae_s = time.perf_counter() - start
    with torch.no_grad():
        latents = torch.cat(
            [vae.encode(_to_float(images[i : i + 256])).latent_dist.mean for i in range(0, len(images), 256)]
        )
    scale = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scale)
    log(f"vae done in {vae_s:.0f} s, loss {vae_loss:.4f}, scaling factor {scale:.4f}")
    start = time.perf_counter()
    decoder_loss = finetune_decoder(vae, images, latents, config, log)
    decoder_s = time.perf_counter() - start
    log(f"decoder done in {decoder_s:.0f} s, loss {decoder_loss:.4f}")
    recon_colour, recon_shape = _reconstruction_accuracy(vae, scenes, latents, config.seed)
    log(f"vae reconstructions read right: shape colour {recon_colour:.1%}, shape {recon_shape:.1%}")
    latents = latents * scale

    def save(folder: Path, ema: dict[str, Any]) -> None:
        unet_copy, text_copy = copy.deepcopy(unet), copy.deepcopy(text_encoder)
        unet_copy.load_state_dict(ema["unet"])
        text_copy.load_state_dict(ema["text_encoder"])
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_copy.eval(),
            tokenizer=tokenizer,
            unet=unet_copy.eval(),
            scheduler=DDIMScheduler(
                **scheduler_config(), timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=False
            ),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(str(folder))
        store_half(folder)

    def checkpoint(step: int, ema: dict[str, Any]) -> None:
        if config.checkpoints:
            save(out.parent / f"{out.name}-step{step}", ema)

    start = time.perf_counter()
    unet_loss, ema = train_unet(unet, text_encoder, latents, tokens, config, log, checkpoint)
    unet_s = time.perf_counter() - start
    log(f"unet done in {unet_s:.0f} s, loss {unet_loss:.4f}")
    save(out, ema)
    import shutil

    shutil.rmtree(tok_dir, ignore_errors=True)
    report = TrainReport(
        config, vae_s, unet_s, vae_loss, unet_loss, counts, decoder_s, decoder_loss, recon_shape, recon_colour
    )
    (out / "training.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the pipeline folder to write")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--vae-steps", type=int, default=TrainConfig.vae_steps)
    parser.add_argument("--unet-steps", type=int, default=TrainConfig.unet_steps)
    parser.add_argument("--checkpoints", action="store_true", help="also save the model every 500 UNet steps")
    args = parser.parse_args(argv)
    # Idle OpenMP threads must sleep, not spin: on a busy machine spinning made a step ~10x slower.
    # (Set before torch loads; it changes the speed, never the numbers.)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    config = TrainConfig(
        seed=args.seed, vae_steps=args.vae_steps, unet_steps=args.unet_steps, checkpoints=args.checkpoints
    )
    start = time.perf_counter()
    train(args.out, config, log=lambda line: print(f"[{time.perf_counter() - start:7.1f} s] {line}", flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
