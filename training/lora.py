"""Training the ``hexagon`` LoRA: teaching the embedded ``tiny`` model a shape it has never seen.

The base model (``sdkit/models/shapes``) stays frozen; low-rank adapters (peft) on the UNet's
attention, feed-forward and time-embedding layers learn,
with the base model's own loss (v-prediction, Min-SNR weighted), from hexagon scenes drawn by
:mod:`training.shapes` in every colour, background, size and position. Half of every batch replays
the base model's own scenes (circles, squares, triangles) so it does not forget them, and 10% of the
captions are dropped as in the base training, so guidance works.

Seeded and deterministic on the CPU (fixed thread count). Saved in diffusers' LoRA format
(``unet.…lora_A.weight``), float16, to ``sdkit/models/shapes/loras/hexagon.safetensors``.
Run it with ``make train-lora`` (or ``python -m training.lora --out FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["LoraConfig", "LoraReport", "train_lora"]

BASE_MODEL = Path(__file__).resolve().parent.parent / "sdkit" / "models" / "shapes"
#: The UNet's layers that get adapters (attention, feed-forward, time embedding, ResNet convs).
#: The text encoder gets none: "hexagon" is a word the tiny tokenizer knows (its embedding
#: untrained but distinct), and transformers 5 loads text-encoder LoRAs only with peft >= 0.22,
#: newer than the registry here offers.
UNET_TARGETS = (
    *("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"),
    *("time_emb_proj", "conv1", "conv2"),  # the ResNets' convs: a hexagon's corners are drawn at 16×16
)


@dataclass(frozen=True)
class LoraConfig:
    """Everything that decides the trained adapter (with the base model and the code)."""

    seed: int = 0
    threads: int = 2
    rank: int = 8
    steps: int = 1000
    batch: int = 16
    lr: float = 3e-3
    #: Share of each batch drawn from the base model's own scenes (no forgetting).
    replay: float = 0.3
    uncond_prob: float = 0.1
    snr_gamma: float = 5.0
    captions_per_scene: int = 8
    #: Train on a seeded sample of this many hexagon scenes (and as many replayed) instead of all (quick checks).
    max_scenes: int | None = None


@dataclass(frozen=True)
class LoraReport:
    config: LoraConfig
    seconds: float
    loss: float
    params: int
    bytes: int


def _latents(vae: Any, scenes: list[Any]) -> Any:
    import torch

    from training.tiny import _images, _to_float

    images = _images(scenes)
    with torch.no_grad():
        mean = torch.cat(
            [vae.encode(_to_float(images[i : i + 256])).latent_dist.mean for i in range(0, len(images), 256)]
        )
    return mean * vae.config.scaling_factor


def train_lora(out: Path, config: LoraConfig | None = None, log: Callable[[str], None] = print) -> LoraReport:
    """Train the hexagon LoRA on the shipped ``tiny`` model and save it to the file ``out``."""
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from peft import LoraConfig as PeftConfig
    from peft import get_peft_model_state_dict

    from training.shapes import COLOURS, NEW_SHAPES, POSITIONS, SIZES, Scene, all_scenes, caption
    from training.tiny import _tokenize, scheduler_config

    config = config or LoraConfig()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(config.seed)
    pipe = StableDiffusionPipeline.from_pretrained(str(BASE_MODEL), safety_checker=None, requires_safety_checker=False)
    unet, text_encoder, vae, tokenizer = pipe.unet, pipe.text_encoder, pipe.vae, pipe.tokenizer
    for model in (unet, text_encoder, vae):
        model.requires_grad_(False)

    new = [
        Scene(shape, colour, background, size, position)
        for shape in NEW_SHAPES
        for colour in COLOURS
        for background in COLOURS
        if background != colour
        for size in SIZES
        for position in POSITIONS
    ]
    if config.max_scenes is not None:
        new = random.Random(config.seed).sample(new, config.max_scenes)
    old = random.Random(config.seed).sample(all_scenes(), len(new))
    rng = random.Random(config.seed + 1)
    per = config.captions_per_scene
    texts = [caption(s, rng=rng) for group in (new, old) for s in group for _ in range(per)] + [""]
    tokens = _tokenize(tokenizer, texts)
    latents = _latents(vae, new + old)
    log(f"{len(new)} new scenes + {len(old)} replayed, {len(texts) - 1} captions, e.g. {texts[0]!r}")

    torch.manual_seed(config.seed + 2)
    unet.add_adapter(
        PeftConfig(
            r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian", target_modules=list(UNET_TARGETS)
        )
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    log(f"trainable LoRA parameters: {n_params}")

    from training.tiny import _cosine_lr

    noise_sched = DDPMScheduler(**scheduler_config())
    alphas = noise_sched.alphas_cumprod
    gen = torch.Generator().manual_seed(config.seed + 20)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    empty = tokens[-1]
    n_new, n_old = len(new), len(old)
    unet.train()
    running = 0.0
    start = time.perf_counter()
    for step in range(config.steps):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, config.steps, config.lr, warmup=30)
        b = config.batch
        b_old = round(b * config.replay)
        scene = torch.cat(
            [
                torch.randint(0, n_new, (b - b_old,), generator=gen),
                n_new + torch.randint(0, n_old, (b_old,), generator=gen),
            ]
        )
        which = torch.randint(0, per, (b,), generator=gen)
        ids = tokens[scene * per + which]
        drop = torch.rand(b, generator=gen) < config.uncond_prob
        ids = torch.where(drop[:, None], empty[None, :], ids)
        x0 = latents[scene]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (b,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(xt, t, encoder_hidden_states=text_encoder(ids)[0]).sample
        target = a.sqrt() * noise - (1 - a).sqrt() * x0
        snr = a / (1 - a)
        weight = snr.clamp(max=config.snr_gamma) / (snr + 1)
        loss = (weight * (pred - target).pow(2)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 50 == 0 or step == config.steps - 1:
            log(f"lora step {step}/{config.steps} loss {running:.4f}")
    seconds = time.perf_counter() - start

    half = {k: v.detach().half().contiguous() for k, v in get_peft_model_state_dict(unet).items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        str(out.parent),
        unet_lora_layers=half,
        weight_name=out.name,
        safe_serialization=True,
    )
    report = LoraReport(config, seconds, running, n_params, out.stat().st_size)
    out.with_suffix(".json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    log(f"saved {out} ({report.bytes} bytes) after {seconds:.0f} s, loss {running:.4f}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.lora", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    parser.add_argument("--seed", type=int, default=LoraConfig.seed)
    parser.add_argument("--steps", type=int, default=LoraConfig.steps)
    parser.add_argument("--rank", type=int, default=LoraConfig.rank)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    train_lora(
        args.out,
        LoraConfig(seed=args.seed, steps=args.steps, rank=args.rank),
        log=lambda line: print(f"[{time.perf_counter() - start:7.1f} s] {line}", flush=True),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
