"""Single-file checkpoints (A1111/Civitai ``.safetensors``): write one from a diffusers folder, load one offline.

Loading goes through diffusers' ``from_single_file``. A file written by :func:`write_single_file` carries its
diffusers configs and tokenizer in its safetensors metadata (``sdkit.diffusers_configs``: JSON, path → text):
they are unpacked into sdkit's cache and passed as ``config=`` with ``local_files_only=True``, so no hub is asked.
Other files (A1111/Civitai SD 1.x, 2.x, SDXL base) load with their family's diffusers configs, which sdkit ships
(the SD 1.5, SD 2.1 768 v-prediction and SDXL base 1.0 configs, and CLIP's BPE vocabulary for the tokenizers): the
family is read from the file's header and the same ``config=`` / ``local_files_only=True`` path is taken.
Families sdkit carries no configs for (inpainting, SDXL refiner, others) need the hub once; offline they are refused,
naming the family.

The file layout is the original Stable Diffusion (LDM) one: ``model.diffusion_model.*`` (UNet),
``first_stage_model.*`` (VAE), ``cond_stage_model.transformer.*`` (CLIP text encoder, SD 1.x).
A1111's ``Model hash`` is the first 10 hex digits of the file's sha256 (:func:`file_sha256`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sdkit.errors import InvalidModelError, ModelError

__all__ = [
    "checkpoint_family",
    "clip_vocabulary",
    "config_folder",
    "file_sha256",
    "is_checkpoint_file",
    "shipped_config_folder",
    "write_single_file",
]

SINGLE_FILE_SUFFIXES = (".safetensors",)
CONFIG_KEY = "sdkit.diffusers_configs"
_CONFIG_FILES = ("model_index.json", "scheduler/*.json", "*/config.json", "tokenizer*/*")


def is_checkpoint_file(model: str) -> bool:
    path = Path(model).expanduser()
    return path.suffix.lower() in SINGLE_FILE_SUFFIXES and path.is_file()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file (hex); A1111's ``Model hash`` is its first 10 digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- diffusers folder → LDM keys ---------------------------------------------------------------

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))  # fmt: skip
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _unet_prefixes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) for every block of a UNet2DConditionModel with this config."""
    n = len(config["block_out_channels"])
    per = config["layers_per_block"]
    out = []
    for i in range(n):
        for j in range(per):
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{i * (per + 1) + j + 1}.0."))
            out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{i * (per + 1) + j + 1}.1."))
        if i < n - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (per + 1)}.0.op."))
        has_attn = "CrossAttn" in config["up_block_types"][i]
        for j in range(per + 1):
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * (per + 1) + j}.0."))
            out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * (per + 1) + j}.1."))
        if i < n - 1:
            out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (per + 1) + per}.{2 if has_attn else 1}."))
    out += [("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
            ("mid_block.resnets.1.", "middle_block.2.")]  # fmt: skip
    return out


def _rename(key: str, prefixes: list[tuple[str, str]]) -> tuple[str, str | None]:
    for hf, ldm in prefixes:
        if key.startswith(hf):
            return ldm + key[len(hf) :], hf
    return key, None


def unet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    prefixes = _unet_prefixes(config)
    out = {}
    for key, value in state.items():
        stem, _, leaf = key.rpartition(".")
        if stem in _UNET_TOP:
            out[f"{_UNET_TOP[stem]}.{leaf}"] = value
            continue
        new, matched = _rename(key, prefixes)
        if matched is None:
            raise ModelError(f"single-file conversion: no original-layout name for UNet weight {key!r}")
        if ".resnets." in matched:
            head, tail = new[: len(new) - len(key) + len(matched)], new[len(new) - len(key) + len(matched) :]
            for hf, ldm in _RESNET:
                if tail.startswith(hf + "."):
                    tail = ldm + tail[len(hf) :]
            new = head + tail
        out[new] = value
    return out


def vae_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    n = len(config["block_out_channels"])
    prefixes = []
    for part in ("encoder", "decoder"):
        prefixes += [
            (f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."),
            (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."),
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."),
            (f"{part}.conv_norm_out.", f"{part}.norm_out."),
        ]
    for i in range(n):
        prefixes.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        prefixes.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, value in state.items():
        new, _ = _rename(key, prefixes)
        new = new.replace(".conv_shortcut.", ".nin_shortcut.")
        if ".mid.attn_1." in new:
            head, _, rest = new.partition(".mid.attn_1.")
            name, _, leaf = rest.rpartition(".")
            new = f"{head}.mid.attn_1.{attn.get(name, name)}.{leaf}"
            if leaf == "weight" and name != "group_norm" and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)
        out[new] = value
    return out


def write_single_file(folder: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the SD 1.x-family diffusers pipeline in ``folder`` as one original-layout ``.safetensors`` file,
    its diffusers configs (and tokenizer) carried in the file's metadata so it loads offline."""
    from safetensors.torch import load_file, save_file

    folder, path = Path(folder), Path(path)
    if not (folder / "model_index.json").is_file():
        raise InvalidModelError("model", str(folder), "not a diffusers folder (no model_index.json)")
    if path.suffix.lower() != ".safetensors":
        raise InvalidModelError("out", str(path), "a single-file checkpoint must end in .safetensors")
    index = json.loads((folder / "model_index.json").read_text())
    if "text_encoder_2" in index or index.get("_class_name") != "StableDiffusionPipeline":
        raise InvalidModelError("model", str(folder), "only StableDiffusionPipeline (SD 1.x family) folders convert")

    def weights(sub: str) -> dict[str, Any]:
        files = sorted((folder / sub).glob("*.safetensors"))
        if len(files) != 1:
            raise InvalidModelError("model", str(folder), f"{sub}/ must hold one .safetensors file")
        return load_file(files[0])

    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    state: dict[str, Any] = {}
    state.update({"model.diffusion_model." + k: v for k, v in unet_to_ldm(weights("unet"), unet_cfg).items()})
    state.update({"first_stage_model." + k: v for k, v in vae_to_ldm(weights("vae"), vae_cfg).items()})
    text = weights("text_encoder")  # transformers >= 5.6 saves CLIPTextModel without its "text_model." level
    state.update({"cond_stage_model.transformer." + ("" if k.startswith("text_model.") else "text_model.") + k: v
                  for k, v in text.items()})  # fmt: skip
    configs = {}
    for pattern in _CONFIG_FILES:
        for file in sorted(folder.glob(pattern)):
            if file.is_file() and file.suffix in (".json", ".txt"):
                configs[file.relative_to(folder).as_posix()] = file.read_text()
    # one metadata key: safetensors writes several in a random order, and the same model must give the same hash
    metadata = {CONFIG_KEY: json.dumps(configs, sort_keys=True, ensure_ascii=False)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    return path


# --- loading ---------------------------------------------------------------------------------


def _embedded_configs(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        configs = json.loads(meta.get(CONFIG_KEY, "{}"))
    except json.JSONDecodeError:
        raise InvalidModelError("model", str(path), f"its {CONFIG_KEY!r} metadata is not JSON") from None
    return {str(k): str(v) for k, v in configs.items()} if isinstance(configs, dict) else {}


def config_folder(path: str | os.PathLike, digest: str) -> Path | None:
    """The local diffusers config folder a checkpoint carries (unpacked into sdkit's cache), or None."""
    path = Path(path)
    files = _embedded_configs(path)
    if not files:
        return None
    from sdkit.backends.local.embedded import cache_dir

    target = cache_dir() / "single-file-configs" / digest[:16]
    if not (target / "model_index.json").is_file():
        for rel, text in files.items():
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise InvalidModelError("model", str(path), f"bad config path {rel!r} in its metadata")
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_text(text)
    return target


#: Weights whose presence or shape tells the families apart (diffusers' own markers, ``CHECKPOINT_KEY_NAMES``).
_CROSS_ATTN_K = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
_SDXL_BASE = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"
_SDXL_REFINER = "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias"
_SD1_CLIP = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"

#: The families whose diffusers configs ship with sdkit (``sdkit/backends/local/single_file_configs/``): the
#: configs of SD 1.5, SD 2.1 (768, v-prediction) and SDXL base 1.0, which diffusers would fetch from the hub.
SHIPPED_CONFIGS = {"SD 1.x": "sd15", "SD 2.x": "sd21", "SDXL base": "sdxl"}


def checkpoint_family(path: str | os.PathLike) -> str:
    """``"SD 1.x"``, ``"SD 2.x"``, ``"SDXL base"``, ``"SDXL refiner"``, ``"inpainting"`` or ``"unknown"``, from the
    header alone (no torch), as diffusers' ``infer_diffusers_model_type`` tells them apart."""
    header = _header(path)

    def shape(key: str) -> list[int]:
        entry = header.get(key)
        return list(entry.get("shape", [])) if isinstance(entry, dict) else []

    if shape(_UNET_IN)[1:2] == [9]:
        return "inpainting"
    if shape(_CROSS_ATTN_K)[-1:] == [1024]:  # SD 1.x cross-attends to 768-wide CLIP ViT-L, SD 2.x to 1024 OpenCLIP
        return "SD 2.x"
    if _SDXL_BASE in header:
        return "SDXL base"
    if _SDXL_REFINER in header:
        return "SDXL refiner"
    if shape(_CROSS_ATTN_K)[-1:] == [768] or _SD1_CLIP in header:
        return "SD 1.x"
    return "unknown"


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """CLIP's BPE vocabulary (49408 tokens) and its 48894 merges, as Hugging Face's ``CLIPTokenizer`` files hold
    them: byte symbols, the same with ``</w>``, one token per merge, then ``<|startoftext|>``, ``<|endoftext|>``.
    Derived from OpenAI's ``bpe_simple_vocab_16e6.txt`` (MIT), whose merges sdkit ships xz-compressed."""
    import lzma

    merges = lzma.decompress((_SHIPPED / "clip_merges.txt.xz").read_bytes()).decode("utf-8").splitlines()
    from sdkit.backends.local.embedded import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


_SHIPPED = Path(__file__).resolve().parent / "backends" / "local" / "single_file_configs"


def shipped_config_folder(family: str) -> Path:
    """The diffusers config folder (configs and CLIP tokenizers) for a checkpoint ``family``: the shipped configs
    copied into sdkit's cache with the tokenizer files written beside them, once."""
    import shutil

    from sdkit.backends.local.embedded import cache_dir

    name = SHIPPED_CONFIGS[family]
    source = _SHIPPED / name
    target = cache_dir() / "single-file-configs" / f"{name}-{_shipped_digest(source)}"
    if (target / "model_index.json").is_file():
        return target
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    vocab, merges = clip_vocabulary()
    for tokenizer in sorted(partial.glob("tokenizer*")):
        (tokenizer / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (tokenizer / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    try:
        partial.rename(target)
    except OSError:  # another process made it first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _shipped_digest(folder: Path) -> str:
    """A short digest of the shipped files, so that a changed sdkit never reads an older copy in the cache."""
    h = hashlib.sha256((_SHIPPED / "clip_merges.txt.xz").read_bytes())
    for file in sorted(folder.rglob("*.json")):
        h.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes())
    return h.hexdigest()[:12]


def load_single_file(path: str | os.PathLike, digest: str, dtype: Any) -> Any:
    """A text-to-image pipeline from checkpoint ``path`` (diffusers' ``from_single_file``, offline)."""
    import warnings

    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    from sdkit.backends.local.pipeline import _hub_unreachable

    config = config_folder(path, digest)
    quiet_empty_fp32_notice()
    family = checkpoint_family(path)
    options: dict[str, Any] = {"torch_dtype": dtype}
    if config is not None:  # written by sdkit: its own configs, no hub
        index = json.loads((config / "model_index.json").read_text())
        cls = StableDiffusionXLPipeline if "text_encoder_2" in index else StableDiffusionPipeline
        options.update(config=str(config), local_files_only=True)
    elif family in SHIPPED_CONFIGS:  # an A1111/Civitai file: the family's configs ship with sdkit, no hub
        cls = StableDiffusionXLPipeline if family == "SDXL base" else StableDiffusionPipeline
        options.update(config=str(shipped_config_folder(family)), local_files_only=True)
    else:
        cls = StableDiffusionXLPipeline if family.startswith("SDXL") else StableDiffusionPipeline
        if (why := _hub_unreachable()) is not None:
            raise ModelError(_needs_hub(str(path), family, why))
    assert issubclass(cls, DiffusionPipeline)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        try:
            return cls.from_single_file(str(path), **options)
        except Exception as exc:  # diffusers' SingleFileComponentError, a missing key, a shape mismatch
            raise ModelError(f"model={str(path)!r}: could not load it as a {family} checkpoint: {exc}") from exc


def _header(path: str | os.PathLike) -> dict[str, Any]:
    import struct

    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if not 2 <= size <= 100 * 2**20:
                raise ValueError(size)
            header = json.loads(f.read(size))
            if not isinstance(header, dict):
                raise ValueError(header)
            return header
    except (OSError, ValueError, struct.error):
        raise InvalidModelError(
            "model", str(path), "not a readable .safetensors file (its header is damaged)"
        ) from None


def check_checkpoint_file(path: str | os.PathLike) -> None:
    """Refuse, from its header alone (no torch), a ``.safetensors`` file that is not a Stable Diffusion checkpoint,
    and one that cannot load here: no configs of its own while the hub is out of reach."""
    model = str(path)
    header = _header(path)
    meta = header.get("__metadata__")
    own_configs = isinstance(meta, dict) and CONFIG_KEY in meta
    if not own_configs and any(k.startswith(UNET_PREFIX) for k in header):
        family = checkpoint_family(path)
        if family not in SHIPPED_CONFIGS:
            from sdkit.backends.local.pipeline import _hub_unreachable

            if (why := _hub_unreachable()) is not None:
                raise ModelError(_needs_hub(model, family, why))
    if not any(k.startswith(UNET_PREFIX) for k in header):
        raise InvalidModelError(
            "model", model, f"holds no UNet weights ({UNET_PREFIX}*): a LoRA, a VAE or an embedding, not a checkpoint"
        )


UNET_PREFIX = "model.diffusion_model."


class _EmptyFp32Notice:
    """Drops diffusers' "modules … should be kept in float32: []" line: with no such module it warns of nothing."""

    @staticmethod
    def filter(record: Any) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def quiet_empty_fp32_notice() -> None:
    import logging

    logging.getLogger("diffusers.models.modeling_utils").addFilter(_EmptyFp32Notice)


def _needs_hub(model: str, family: str, why: str) -> str:
    shipped = ", ".join(SHIPPED_CONFIGS)
    return (
        f"model={model!r}: {_article(family)} {family} checkpoint; sdkit carries the configs of {shipped} only, "
        "so diffusers needs the diffusers configs and CLIP tokenizer of its family from the Hugging Face hub once "
        f"(a few MB, then cached), and the hub cannot be reached ({why}). Load it once with a connection, or give "
        "a diffusers folder"
    )


def _article(family: str) -> str:
    return "an" if family[:1].lower() in "aeiou" else "a"
