"""Single-file checkpoints (A1111/Civitai ``.safetensors``): write one from a diffusers folder, load one offline.

Loading goes through diffusers' ``from_single_file``. A file written by :func:`write_single_file` carries its
diffusers configs and tokenizer in its safetensors metadata (``sdkit.diffusers_configs``: JSON, path → text):
they are unpacked into sdkit's cache and passed as ``config=`` with ``local_files_only=True``, so no hub is asked.
Other files (A1111/Civitai SD 1.x, 2.x, SDXL) need their family's diffusers configs and CLIP tokenizer, which
diffusers fetches from the hub once and caches; with the hub out of reach they are refused, naming the family.

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

__all__ = ["checkpoint_family", "config_folder", "file_sha256", "is_checkpoint_file", "write_single_file"]

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


#: A weight only each family's checkpoints hold (diffusers' own markers), read from the file's header.
FAMILY_MARKERS = {
    "SDXL base": "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias",
    "SD 2.x": "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight",
    "SD 1.x": "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
}


def checkpoint_family(path: str | os.PathLike) -> str:
    """``"SD 1.x"``, ``"SD 2.x"``, ``"SDXL base"`` or ``"unknown"``, from the header alone."""
    keys = _header(path)
    return next((name for name, key in FAMILY_MARKERS.items() if key in keys), "unknown")


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
    else:
        cls = StableDiffusionXLPipeline if family == "SDXL base" else StableDiffusionPipeline
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
    if not (isinstance(meta, dict) and CONFIG_KEY in meta) and any(k.startswith(UNET_PREFIX) for k in header):
        from sdkit.backends.local.pipeline import _hub_unreachable

        if (why := _hub_unreachable()) is not None:
            raise ModelError(_needs_hub(model, checkpoint_family(path), why))
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
    return (
        f"model={model!r}: a {family} checkpoint; diffusers needs the diffusers configs and CLIP tokenizer of "
        f"its family from the Hugging Face hub once (a few MB, then cached), and the hub cannot be reached ({why}). "
        "Load it once with a connection, or give a diffusers folder"
    )
