"""Beyond plain txt2img on the local pipeline: variation seeds, img2img and hires fix (issue 16).

- **Variation seed**: image ``i`` starts from the spherical interpolation of the noise of ``seed + i`` and the
  noise of ``variation_seed + i`` (A1111's rule); strength 0 is exactly the seed's noise, 1 the variation seed's.
  The noise is drawn from the image's own CPU generator, which then goes on to the pipeline, so ancestral
  samplers' per-step noise follows the main seed as in A1111.
- **img2img**: the loaded pipeline's weights shared with ``AutoPipelineForImage2Image.from_pipe``.
- **Hires fix**: the first pass at the asked size, then an upscale (``latent``: the latents, bilinear;
  ``lanczos``: the decoded images) and an img2img pass at ``hires_denoising`` with fresh generators of the same seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sdkit.params import MAX_SEED, GenerationParams

__all__ = ["hires_size", "image2image", "slerp", "start_latents", "uses_variation", "variation_seeds"]


def uses_variation(p: GenerationParams) -> bool:
    return p.variation_seed is not None and p.variation_strength > 0


def variation_seeds(p: GenerationParams) -> tuple[int, ...]:
    """The variation seed of every image: ``variation_seed``, ``variation_seed + 1``, … (wrapping at 2**32)."""
    base = p.variation_seed if p.variation_seed is not None else 0
    return tuple((base + i) % (MAX_SEED + 1) for i in range(p.num_images))


def slerp(strength: float, a: Any, b: Any) -> Any:
    """Spherical interpolation from ``a`` (0) to ``b`` (1), over the whole tensor; ends exact; nearly
    parallel tensors are mixed linearly."""
    if strength <= 0:
        return a
    if strength >= 1:
        return b
    torch = _torch()
    fa, fb = a.double().flatten(), b.double().flatten()
    cos = torch.dot(fa / fa.norm(), fb / fb.norm()).clamp(-1.0, 1.0).item()
    if cos > 0.9995:
        out = (1 - strength) * fa + strength * fb
    else:
        omega = math.acos(cos)
        out = (math.sin((1 - strength) * omega) * fa + math.sin(strength * omega) * fb) / math.sin(omega)
    return out.reshape(a.shape).to(a.dtype)


def start_latents(
    pipe: Any, params: Sequence[GenerationParams], generators: Sequence[Any], width: int, height: int, dtype: Any
) -> Any:
    """The start noise of a batch (one row per image, in order), drawn on the CPU from ``generators`` like
    diffusers' ``randn_tensor`` does, each image's noise slerped towards its variation seed's."""
    torch = _torch()
    factor = getattr(pipe, "vae_scale_factor", 8)
    shape = (1, pipe.unet.config.in_channels, height // factor, width // factor)
    rows = []
    k = 0
    for p in params:
        for vseed in variation_seeds(p):
            noise = torch.randn(shape, generator=generators[k], device="cpu", dtype=dtype)
            if uses_variation(p):
                other = torch.randn(
                    shape, generator=torch.Generator("cpu").manual_seed(vseed), device="cpu", dtype=dtype
                )
                noise = slerp(p.variation_strength, noise, other)
            rows.append(noise)
            k += 1
    return torch.cat(rows)


def image2image(loaded: Any) -> Any:
    """An img2img pipeline sharing the loaded pipeline's modules (made once per loaded model)."""
    if getattr(loaded, "img2img", None) is None:
        from diffusers import AutoPipelineForImage2Image

        from sdkit.checkpoint import quiet_empty_fp32_notice

        quiet_empty_fp32_notice()
        loaded.img2img = AutoPipelineForImage2Image.from_pipe(loaded.pipe)
        loaded.img2img.set_progress_bar_config(**getattr(loaded.pipe, "_progress_bar_config", {}))
    i2i = loaded.img2img
    i2i.scheduler = loaded.pipe.scheduler
    return i2i


def hires_size(p: GenerationParams, width: int, height: int) -> tuple[int, int]:
    """The hires pass's size: ``hires_scale`` times the first pass's, down to a multiple of 8."""
    return int(width * p.hires_scale) // 8 * 8, int(height * p.hires_scale) // 8 * 8


def upscale_latents(latents: Any, width: int, height: int, factor: int) -> Any:
    torch = _torch()
    return torch.nn.functional.interpolate(
        latents, size=(height // factor, width // factor), mode="bilinear", align_corners=False
    )


def upscale_images(images: Sequence[Any], width: int, height: int) -> list[Any]:
    from PIL import Image

    return [im.resize((width, height), Image.Resampling.LANCZOS) for im in images]


def _torch():
    from sdkit.backends.local.cpu import import_torch

    return import_torch()


#: What the hires pass takes over from the first: the prompts (as text or embeddings) and the guidance.
SECOND_PASS_KEYS = (
    "prompt",
    "negative_prompt",
    "prompt_embeds",
    "negative_prompt_embeds",
    "pooled_prompt_embeds",
    "negative_pooled_prompt_embeds",
    "guidance_scale",
)


def run_pipeline(
    loaded: Any,
    params: Sequence[GenerationParams],
    call: dict[str, Any],
    width: int,
    height: int,
    dtype: Any,
    *,
    hires_callback: Any = None,
) -> list[Any]:
    """Run one batch (``call``: the txt2img keyword arguments, the prompts as text or as embeddings, one CPU
    generator per image) with the batch's variation seeds, init images and hires fix; the images, in order.
    ``hires_callback``: the prompt's per-step conditioning swaps for the hires pass (prompt editing)."""
    first = params[0]
    torch = _torch()
    pipe = loaded.pipe
    if any(uses_variation(p) for p in params):
        call["latents"] = start_latents(pipe, params, call["generator"], width, height, dtype)
    hires = first.hires_scale > 1
    if first.init_image is not None:
        from sdkit.initimage import load_init_image

        pipe = image2image(loaded)
        call.pop("width"), call.pop("height"), call.pop("latents", None)
        images = []
        for p in params:
            image = load_init_image(p.init_image)
            if image.size != (width, height):
                image = upscale_images([image], width, height)[0]
            images.extend([image] * p.num_images)
        call["image"] = images
        call["strength"] = at_least_one_step(first.denoising_strength, first.num_inference_steps)
        if call["strength"] == 0 and not hires:
            return images
    latent_hires = hires and first.hires_upscaler == "latent"
    if latent_hires:
        call["output_type"] = "latent"
    if call.get("strength") == 0:  # img2img at 0 with hires: the init image is the first pass
        out_images: Any = call["image"]
        if latent_hires:
            processed = pipe.image_processor.preprocess(out_images).to(loaded.pipe.vae.device, loaded.pipe.vae.dtype)
            out_images = loaded.pipe.vae.encode(processed).latent_dist.mode() * loaded.pipe.vae.config.scaling_factor
    else:
        out_images = pipe(**call).images
    if not hires:
        return list(out_images)
    big_w, big_h = hires_size(first, width, height)
    if latent_hires:
        factor = getattr(loaded.pipe, "vae_scale_factor", 8)
        image: Any = upscale_latents(out_images, big_w, big_h, factor)
    else:
        image = upscale_images(out_images, big_w, big_h)
    seeds = [s for p in params for s in p.seeds]
    second = {k: v for k, v in call.items() if k in SECOND_PASS_KEYS}
    if hires_callback is not None:
        second["callback_on_step_end"] = hires_callback
    second.update(
        image=image,
        strength=at_least_one_step(first.hires_denoising, first.hires_steps or first.num_inference_steps),
        num_inference_steps=first.hires_steps or first.num_inference_steps,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        output_type="pil",
    )
    return list(image2image(loaded)(**second).images)


def mode_key(p: GenerationParams) -> tuple:
    """What requests must share to run in one call: img2img's strength, the hires fix's settings."""
    img2img = (p.init_image is not None, p.denoising_strength if p.init_image is not None else None)
    hires = (p.hires_scale, p.hires_steps, p.hires_denoising, p.hires_upscaler) if p.hires_scale > 1 else ()
    return (*img2img, *hires)


def at_least_one_step(strength: float, steps: int) -> float:
    """diffusers runs ``int(steps * strength)`` img2img steps and fails on none: a strength above 0 that would
    run none runs one (as A1111 does); 0 stays 0 (the input image comes back unchanged)."""
    if strength > 0 and int(steps * strength) < 1:
        return min(1.0, (1 + 1e-6) / steps)
    return strength
