"""The embedded default models: tiny Stable Diffusion pipelines built by sdkit's own code.

No download. Every one is a diffusers folder loaded with ``from_pretrained(folder)`` exactly
like a real model.

- ``tiny`` (the default): SD 1.x architecture, 64×64, *trained* by :mod:`training.tiny` on
  scenes of coloured shapes (:mod:`training.shapes`) and shipped inside the package
  (``sdkit/models/shapes``): "a large red circle on a blue background" draws just that.
- ``tiny-random``: the same architecture family with random weights, built from a fixed seed
  into the cache folder (noise-like pictures); for tests of the plumbing.
- ``tiny-sdxl``: SDXL architecture (two text encoders), 64×64, random weights; for the SDXL path.

The tokenizers are small hand-made CLIP BPE vocabularies: whole words for a word list, single
bytes for anything else.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

from sdkit.errors import ModelError
from sdkit.suggestions import did_you_mean

__all__ = ["EMBEDDED_MODELS", "cache_dir", "embedded_model_path", "is_embedded"]

#: Bump when a build changes, so caches rebuild.
BUILD_VERSION = 2
NATIVE_SIZE = 64
EMBEDDED_MODELS = ("tiny", "tiny-random", "tiny-sdxl")
#: The trained model shipped with the package (``tiny``).
SHIPPED_MODELS = {"tiny": "shapes"}

#: Words the tiny tokenizer knows whole; anything else falls back to single bytes.
VOCAB_WORDS = """
a an the of on in at with and or by to is red green blue yellow orange purple pink white black gray
grey brown cyan magenta circle square triangle star cross ring heart diamond hexagon rectangle shape
shapes small large big tiny huge medium left right top bottom center middle corner background
backdrop scene photo painting drawing sketch picture image art portrait landscape cat dog bird tree
house car flower sky sea sun moon mountain river city street light dark bright golden hour lighting
sharp detailed high definition masterpiece quality best worst low blurry ugly beautiful stunning
scenic digital rendering color colour palette
""".split()


def cache_dir() -> Path:
    """Where sdkit keeps built models: ``$SDKIT_CACHE_DIR`` or the platform's cache folder."""
    env = os.environ.get("SDKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("sdkit"))


def is_embedded(model: str) -> bool:
    return model in EMBEDDED_MODELS


def embedded_model_path(name: str = "tiny") -> Path:
    """The folder of embedded model ``name``, built on first use."""
    if name not in EMBEDDED_MODELS:
        hint = did_you_mean(name, EMBEDDED_MODELS) or f"known: {', '.join(EMBEDDED_MODELS)}"
        raise ModelError(f"model={name!r}: not an embedded model; {hint}")
    if name in SHIPPED_MODELS:
        return shipped_model_path(name)
    folder = cache_dir() / "models" / f"{name}-v{BUILD_VERSION}"
    if (folder / "model_index.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        _BUILDERS[name](tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process built it first
            if not (folder / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def built_model_path(name: str) -> Path | None:
    """The folder of embedded model ``name`` when it is shipped or already built, else None (never builds)."""
    if name in SHIPPED_MODELS:
        folder = Path(__file__).parents[2] / "models" / SHIPPED_MODELS[name]
    else:
        folder = cache_dir() / "models" / f"{name}-v{BUILD_VERSION}"
    return folder if (folder / "model_index.json").is_file() else None


def shipped_model_path(name: str = "tiny") -> Path:
    """The package folder of a trained model shipped with sdkit."""
    folder = Path(__file__).parents[2] / "models" / SHIPPED_MODELS[name]  # sdkit/models
    if not (folder / "model_index.json").is_file():
        raise ModelError(f"model={name!r}: its files are missing from the package ({folder})")
    return folder


# --- tokenizer -----------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte → printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """The pieces CLIP's BPE makes of ``word`` with the merges ``ranks`` (lowest rank first)."""
    parts = [*list(word[:-1]), word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = set(itertools.pairwise(parts))
        best = min(pairs, key=lambda pair: ranks.get(pair, len(ranks) + 1))
        if best not in ranks:
            break
        out: list[str] = []
        i = 0
        while i < len(parts):
            if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                out.append(parts[i] + parts[i + 1])
                i += 2
            else:
                out.append(parts[i])
                i += 1
        parts = out
    return parts


def write_tokenizer(folder: Path, words: list[str] | None = None) -> None:
    """A CLIP BPE tokenizer: 512 byte symbols, whole-word merges for ``words``, 2 specials."""
    words = VOCAB_WORDS if words is None else words
    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(s, len(vocab))
    merges: list[str] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(words):
        # Join whatever pieces the merges so far leave, left to right: every word becomes one token,
        # and merges added later never change an earlier word (its own merges always rank first).
        parts = _bpe(word, ranks)
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in ranks:
                ranks[pair] = len(merges)
                merges.append(f"{parts[0]} {parts[1]}")
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "do_lower_case": True,
            }
        )
    )


def _load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    # transformers 5: building from vocab/merges files directly yields an empty tokenizer;
    # from_pretrained with model_max_length is the reliable path.
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


# --- builders ------------------------------------------------------------------------------


def _quiet() -> None:
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(16, 16, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=NATIVE_SIZE,
    )


def _text_config(tokenizer, **extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        **extra,
    )


def _build_sd(folder: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    _quiet()
    tok_dir = folder / "_tok"
    write_tokenizer(tok_dir)
    tokenizer = _load_tokenizer(tok_dir)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=NATIVE_SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    torch.manual_seed(1)
    vae = _vae()
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(_text_config(tokenizer))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    shutil.rmtree(tok_dir)
    pipe.save_pretrained(str(folder))


def _build_sdxl(folder: Path) -> None:
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    _quiet()
    tok_dir = folder / "_tok"
    write_tokenizer(tok_dir)
    tokenizer = _load_tokenizer(tok_dir)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=NATIVE_SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
        cross_attention_dim=64,
        norm_num_groups=1,
    )
    torch.manual_seed(1)
    vae = _vae()
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(_text_config(tokenizer))
    torch.manual_seed(3)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer, projection_dim=32))
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        force_zeros_for_empty_prompt=True,
    )
    shutil.rmtree(tok_dir)
    pipe.save_pretrained(str(folder))


_BUILDERS = {"tiny-random": _build_sd, "tiny-sdxl": _build_sdxl}
