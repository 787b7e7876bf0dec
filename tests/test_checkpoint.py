"""The configs sdkit ships for A1111/Civitai single-file checkpoints (issue 16 item 5): real SD 1.5, 2.1 and SDXL base
files load through diffusers' ``from_single_file`` with no hub. No real checkpoint is at hand here (4-7 GB each):
these tests prove the shipped configs build the real architectures (on the meta device, no memory), the tokenizer
gives CLIP's published ids, the family is read from a file's header, and the loading path asks no hub."""

import fnmatch
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tomllib

from sdkit import checkpoint
from sdkit.checkpoint import SHIPPED_CONFIGS, checkpoint_family, clip_vocabulary, shipped_config_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SDKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_clip_vocabulary_has_clips_size_and_special_ids():
    vocab, merges = clip_vocabulary()
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["a</w>"] == 320


@pytest.mark.parametrize("family", sorted(SHIPPED_CONFIGS))
def test_the_shipped_tokenizers_give_clips_published_ids(cache, family):
    from transformers import CLIPTokenizer

    folder = shipped_config_folder(family)
    for sub in sorted(p.name for p in folder.glob("tokenizer*")):
        tok = CLIPTokenizer.from_pretrained(folder / sub)
        # the ids CLIP's own tokenizer gives (open_clip, HF's openai/clip-vit-*), as published in many test suites
        assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
        assert tok.model_max_length == 77
        # SD 2.x's and SDXL's second (OpenCLIP) tokenizer pad with "!" (id 0), SD 1.x's and SDXL's first with EOS
        pads_with_bang = family == "SD 2.x" or sub == "tokenizer_2"
        assert tok.pad_token_id == (0 if pads_with_bang else 49407), (family, sub)
        # a pad token is special: like the hub's own SD 2 tokenizer, a "!" in the text becomes it (id 0, not 256)
        exclaim = 0 if pads_with_bang else 256
        assert tok("Hello, world!").input_ids == [49406, 3306, 267, 1002, exclaim, 49407]


def test_the_config_folder_is_made_once_and_names_what_it_was_made_from(cache):
    first = shipped_config_folder("SD 1.x")
    stamp = (first / "tokenizer" / "vocab.json").stat().st_mtime_ns
    assert shipped_config_folder("SD 1.x") == first
    assert (first / "tokenizer" / "vocab.json").stat().st_mtime_ns == stamp
    assert first.parent == cache / "single-file-configs" and first.name.startswith("sd15-")
    assert not list(first.parent.glob("*.partial-*"))


# Parameter counts of the released models (model cards, diffusers' docs): a wrong config value changes them.
PARAMETERS = {
    ("SD 1.x", "unet"): 859_520_964,
    ("SD 1.x", "vae"): 83_653_863,
    ("SD 1.x", "text_encoder"): 123_060_480,
    ("SD 2.x", "unet"): 865_910_724,
    ("SD 2.x", "vae"): 83_653_863,
    ("SDXL base", "unet"): 2_567_463_684,
    ("SDXL base", "vae"): 83_653_863,
    ("SDXL base", "text_encoder"): 123_060_480,
}


@pytest.mark.parametrize("family", sorted(SHIPPED_CONFIGS))
def test_the_shipped_configs_build_the_real_architectures_on_the_meta_device(cache, family):
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    folder = shipped_config_folder(family)
    index = json.loads((folder / "model_index.json").read_text())
    pipeline = getattr(diffusers, index["_class_name"])
    assert pipeline.__name__ == ("StableDiffusionXLPipeline" if family == "SDXL base" else "StableDiffusionPipeline")
    counts = {}
    for name, (library, class_name) in sorted((k, v) for k, v in index.items() if isinstance(v, list) and v[0]):
        cls = getattr(diffusers if library == "diffusers" else transformers, class_name)
        if name == "scheduler":
            scheduler = cls.from_pretrained(folder, subfolder=name)
            assert scheduler.config.prediction_type == ("v_prediction" if family == "SD 2.x" else "epsilon")
            continue
        if name.startswith("tokenizer"):
            continue
        with init_empty_weights():
            if library == "diffusers":
                model = cls.from_config(cls.load_config(folder / name))
            else:
                model = cls(cls.config_class.from_pretrained(folder / name))
        counts[name] = sum(p.numel() for p in model.parameters())
    for (fam, name), count in PARAMETERS.items():
        if fam == family:
            assert counts[name] == count, (family, name, counts[name])
    if family == "SD 2.x":  # OpenCLIP ViT-H/14 with its last layer dropped, as SD 2 uses it
        assert (
            counts["text_encoder"] < counts["unet"]
            and json.loads((folder / "text_encoder" / "config.json").read_text())["num_hidden_layers"] == 23
        )
    if family == "SDXL base":  # OpenCLIP ViT-bigG/14 with its projection
        assert counts["text_encoder_2"] > 690_000_000


def _save(path, tensors):
    from safetensors.numpy import save_file

    save_file({k: np.zeros(shape, dtype=np.float16) for k, shape in tensors.items()}, str(path))
    return path


UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
ATTN2_K = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
SD1_CLIP = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"


def test_the_family_is_read_from_the_headers_names_and_shapes(tmp_path):
    sd1 = {UNET_IN: (320, 4, 3, 3), ATTN2_K: (320, 768), SD1_CLIP: (77, 768)}
    assert checkpoint_family(_save(tmp_path / "v1.safetensors", sd1)) == "SD 1.x"
    sd2 = {UNET_IN: (320, 4, 3, 3), ATTN2_K: (320, 1024), "cond_stage_model.model.token_embedding.weight": (8, 1024)}
    assert checkpoint_family(_save(tmp_path / "v2.safetensors", sd2)) == "SD 2.x"
    xl = {UNET_IN: (320, 4, 3, 3), checkpoint._SDXL_BASE: (1280,)}
    assert checkpoint_family(_save(tmp_path / "xl.safetensors", xl)) == "SDXL base"
    refiner = {UNET_IN: (384, 4, 3, 3), checkpoint._SDXL_REFINER: (1280,)}
    assert checkpoint_family(_save(tmp_path / "refiner.safetensors", refiner)) == "SDXL refiner"
    inpaint = {**sd1, UNET_IN: (320, 9, 3, 3)}
    assert checkpoint_family(_save(tmp_path / "inpaint.safetensors", inpaint)) == "inpainting"


def test_an_a1111_sd1_file_passes_the_offline_check_and_an_inpainting_one_is_refused_naming_it(tmp_path, monkeypatch):
    from sdkit.backends.local.pipeline import check_model
    from sdkit.errors import ModelError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sd1 = {UNET_IN: (320, 4, 3, 3), ATTN2_K: (320, 768), SD1_CLIP: (77, 768)}
    check_model(str(_save(tmp_path / "v1-5-pruned.safetensors", sd1)))  # sdkit carries its configs: no refusal
    inpaint = _save(tmp_path / "inpaint.safetensors", {**sd1, UNET_IN: (320, 9, 3, 3)})
    with pytest.raises(ModelError, match=r"an inpainting checkpoint; sdkit carries the configs of SD 1\.x, SD 2\.x"):
        check_model(str(inpaint))


@pytest.mark.parametrize("family", sorted(SHIPPED_CONFIGS))
def test_loading_an_a1111_file_passes_the_shipped_configs_and_asks_no_hub(cache, tmp_path, monkeypatch, family):
    """Up to diffusers' own ``from_single_file``: the hub's download functions raise, the network is off, and
    diffusers' pipeline class receives ``config=`` the shipped folder and ``local_files_only=True``."""
    import diffusers
    import huggingface_hub
    import torch

    def no_hub(*args, **kwargs):
        raise AssertionError(f"the hub was asked: {args} {kwargs}")

    for name in ("hf_hub_download", "snapshot_download", "model_info"):
        monkeypatch.setattr(huggingface_hub, name, no_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen = {}

    def from_single_file(cls, path, **options):
        seen.update(cls=cls.__name__, path=path, **options)
        return "pipe"

    for cls in (diffusers.StableDiffusionPipeline, diffusers.StableDiffusionXLPipeline):
        monkeypatch.setattr(cls, "from_single_file", classmethod(from_single_file))
    headers = {
        "SD 1.x": {UNET_IN: (320, 4, 3, 3), ATTN2_K: (320, 768), SD1_CLIP: (77, 768)},
        "SD 2.x": {UNET_IN: (320, 4, 3, 3), ATTN2_K: (320, 1024)},
        "SDXL base": {UNET_IN: (320, 4, 3, 3), checkpoint._SDXL_BASE: (1280,)},
    }
    path = _save(tmp_path / "model.safetensors", headers[family])
    assert checkpoint.load_single_file(path, "0" * 64, torch.float16) == "pipe"
    assert seen["config"] == str(shipped_config_folder(family)) and seen["local_files_only"] is True
    assert seen["cls"] == ("StableDiffusionXLPipeline" if family == "SDXL base" else "StableDiffusionPipeline")
    for sub in json.loads((Path(seen["config"]) / "model_index.json").read_text()):
        if sub.startswith("tokenizer"):
            assert (Path(seen["config"]) / sub / "vocab.json").is_file()


def test_every_shipped_file_is_in_the_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sdkit"]
    shipped = checkpoint._SHIPPED
    files = [p.relative_to(ROOT / "sdkit").as_posix() for p in shipped.rglob("*") if p.is_file()]
    assert len(files) == 26
    for file in files:
        assert any(fnmatch.fnmatch(file, g) and file.count("/") == g.count("/") for g in globs), file
    assert sum(p.stat().st_size for p in shipped.rglob("*") if p.is_file()) < 400_000


def _open_clip_h_layout(prefix="cond_stage_model.model.", width=1024, layers=24):
    """The names and shapes of SD 2.x's text encoder as the original files hold it (OpenCLIP ViT-H/14: 24 blocks of
    width 1024, MLP 4096, fused q/k/v), written from OpenCLIP's architecture, not from sdkit's configs."""
    shapes = {"token_embedding.weight": (49408, width), "positional_embedding": (77, width),
              "ln_final.weight": (width,), "ln_final.bias": (width,), "text_projection": (width, width)}  # fmt: skip
    for i in range(layers):
        block = f"transformer.resblocks.{i}."
        for norm in ("ln_1", "ln_2"):
            shapes |= {f"{block}{norm}.weight": (width,), f"{block}{norm}.bias": (width,)}
        shapes |= {f"{block}attn.in_proj_weight": (3 * width, width), f"{block}attn.in_proj_bias": (3 * width,),
                   f"{block}attn.out_proj.weight": (width, width), f"{block}attn.out_proj.bias": (width,),
                   f"{block}mlp.c_fc.weight": (4 * width, width), f"{block}mlp.c_fc.bias": (4 * width,),
                   f"{block}mlp.c_proj.weight": (width, 4 * width), f"{block}mlp.c_proj.bias": (width,)}  # fmt: skip
    return {prefix + k: v for k, v in shapes.items()}


@pytest.mark.skipif(
    os.environ.get("SDKIT_FULL_SIZE_CHECKPOINT") != "1",
    reason="writes a 2-3 GB SD 1.5/2.1-layout file and loads it (~1-2 min, ~9 GB RAM): SDKIT_FULL_SIZE_CHECKPOINT=1",
)
@pytest.mark.parametrize("family", ["SD 1.x", "SD 2.x"])
def test_a_full_size_original_layout_file_loads_offline_and_generates(cache, tmp_path, monkeypatch, family):
    """A file in the original SD 1.5 / SD 2.1 layout at full size (every weight of the real model, zeros for values:
    no real checkpoint is at hand), with no sdkit metadata, loads through the shipped configs with the hub and the
    network blocked, and the pipeline makes an image."""
    import socket

    import huggingface_hub
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdkit import GenerationParams
    from sdkit.backends.local.pipeline import LocalBackend

    def blocked(*args, **kwargs):
        raise AssertionError(f"network or hub asked: {args}")

    for name in ("hf_hub_download", "snapshot_download", "model_info"):
        monkeypatch.setattr(huggingface_hub, name, blocked)
    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    configs = checkpoint._SHIPPED / SHIPPED_CONFIGS[family]
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(configs / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(configs / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(configs / "text_encoder"))
    shapes = {}
    unet_ldm = checkpoint.unet_to_ldm(unet.state_dict(), dict(unet.config))
    shapes |= {"model.diffusion_model." + k: v.shape for k, v in unet_ldm.items()}
    shapes |= {
        "first_stage_model." + k: v.shape for k, v in checkpoint.vae_to_ldm(vae.state_dict(), vae.config).items()
    }
    if family == "SD 1.x":
        for k, v in text.state_dict().items():
            shapes["cond_stage_model.transformer." + ("" if k.startswith("text_model.") else "text_model.") + k] = (
                v.shape
            )
    else:
        shapes |= _open_clip_h_layout()
    path = tmp_path / "original-layout.safetensors"
    save_file({k: torch.zeros(tuple(v), dtype=torch.float16) for k, v in shapes.items()}, str(path))
    assert checkpoint_family(path) == family
    backend = LocalBackend(progress=False)
    params = GenerationParams(prompt="a photo of a cat", num_inference_steps=1, width=64, height=64, seed=1)
    result = backend.generate(params.replace(model=str(path)))
    assert result.images[0].size == (64, 64)
    pipe = backend.load(str(path))  # the pipeline already loaded
    assert sum(p.numel() for p in pipe.unet.parameters()) == PARAMETERS[(family, "unet")]
    assert pipe.scheduler.config.prediction_type == ("v_prediction" if family == "SD 2.x" else "epsilon")
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
