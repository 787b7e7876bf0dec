"""Generation parameters read back from images made by sdkit and by other tools.

Pure parsers over an image's text chunks; :func:`read_image_metadata` is the thin file shell.
Understood: sdkit's own record (``sdkit``), A1111 infotext (``parameters`` in PNG, EXIF
UserComment in JPEG/WebP; also written by Fooocus, Forge, SD.Next), ComfyUI (``prompt`` API graph
and ``workflow``) and InvokeAI (``invokeai_metadata``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdkit.metadata.infotext import parse_infotext

__all__ = ["ImageMetadata", "parse_metadata", "read_image_metadata"]

_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286


@dataclass(frozen=True)
class ImageMetadata:
    """What an image says about how it was made. ``source`` names the tool whose keys were read
    (``sdkit``, ``a1111``, ``comfyui``, ``invokeai``) or is None when nothing was found.
    Fields a source does not give are None; ``raw`` keeps every text chunk as found."""

    source: str | None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    width: int | None = None
    height: int | None = None
    sampler: str | None = None
    model: str | None = None
    record: Mapping[str, Any] | None = None
    raw: Mapping[str, str] = field(default_factory=dict)


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _from_sdkit(record: Mapping[str, Any], raw: Mapping[str, str]) -> ImageMetadata:
    p = record.get("params", {})
    return ImageMetadata(
        source="sdkit",
        prompt=p.get("prompt"),
        negative_prompt=p.get("negative_prompt"),
        seed=_int(record.get("seed", p.get("seed"))),
        steps=_int(p.get("num_inference_steps")),
        guidance_scale=_float(p.get("guidance_scale")),
        width=_int(p.get("width")),
        height=_int(p.get("height")),
        sampler=record.get("scheduler") or p.get("scheduler"),
        model=record.get("model") or p.get("model"),
        record=record,
        raw=raw,
    )


def _from_a1111(text: str, raw: Mapping[str, str]) -> ImageMetadata:
    p = parse_infotext(text)
    return ImageMetadata(
        source="a1111",
        prompt=p.get("Prompt"),
        negative_prompt=p.get("Negative prompt"),
        seed=_int(p.get("Seed")),
        steps=_int(p.get("Steps")),
        guidance_scale=_float(p.get("CFG scale")),
        width=_int(p.get("Size-1")),
        height=_int(p.get("Size-2")),
        sampler=p.get("Sampler"),
        model=p.get("Model"),
        raw=raw,
    )


def _comfy_text(graph: Mapping[str, Any], link: Any) -> str | None:
    """Follow a ``[node_id, output]`` link to the text of a CLIPTextEncode-like node."""
    seen = set()
    while isinstance(link, list) and link and str(link[0]) in graph and str(link[0]) not in seen:
        seen.add(str(link[0]))
        inputs = graph[str(link[0])].get("inputs", {})
        for key in ("text", "text_g", "prompt"):
            if isinstance(inputs.get(key), str):
                return inputs[key]
        link = inputs.get("conditioning") or inputs.get("conditioning_1")
    return None


def _from_comfyui(prompt_json: str, raw: Mapping[str, str]) -> ImageMetadata:
    graph = json.loads(prompt_json)
    if not isinstance(graph, dict):
        raise ValueError("ComfyUI prompt is not an object")
    sampler = next(
        (n for n in graph.values() if isinstance(n, dict) and "KSampler" in str(n.get("class_type", ""))), None
    )
    inputs = sampler.get("inputs", {}) if sampler else {}
    latent = next(
        (
            n.get("inputs", {})
            for n in graph.values()
            if isinstance(n, dict) and "EmptyLatentImage" in str(n.get("class_type", ""))
        ),
        {},
    )
    ckpt = next(
        (
            n.get("inputs", {}).get("ckpt_name")
            for n in graph.values()
            if isinstance(n, dict) and "ckpt_name" in n.get("inputs", {})
        ),
        None,
    )
    return ImageMetadata(
        source="comfyui",
        prompt=_comfy_text(graph, inputs.get("positive")),
        negative_prompt=_comfy_text(graph, inputs.get("negative")),
        seed=_int(inputs.get("seed", inputs.get("noise_seed"))),
        steps=_int(inputs.get("steps")),
        guidance_scale=_float(inputs.get("cfg")),
        width=_int(latent.get("width")),
        height=_int(latent.get("height")),
        sampler=inputs.get("sampler_name"),
        model=ckpt,
        raw=raw,
    )


def _from_invokeai(meta_json: str, raw: Mapping[str, str]) -> ImageMetadata:
    m = json.loads(meta_json)
    model = m.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model_name") or model.get("key")
    return ImageMetadata(
        source="invokeai",
        prompt=m.get("positive_prompt"),
        negative_prompt=m.get("negative_prompt"),
        seed=_int(m.get("seed")),
        steps=_int(m.get("steps")),
        guidance_scale=_float(m.get("cfg_scale")),
        width=_int(m.get("width")),
        height=_int(m.get("height")),
        sampler=m.get("scheduler"),
        model=model,
        raw=raw,
    )


def parse_metadata(text: Mapping[str, str]) -> ImageMetadata:
    """The best reading of an image's text chunks: sdkit, then A1111, ComfyUI, InvokeAI.

    A chunk that does not parse is skipped, never raised: the next source is tried.
    """
    raw = dict(text)
    attempts = (
        ("sdkit", lambda s: _from_sdkit(json.loads(s), raw)),
        ("parameters", lambda s: _from_a1111(s, raw)),
        ("prompt", lambda s: _from_comfyui(s, raw)),
        ("invokeai_metadata", lambda s: _from_invokeai(s, raw)),
    )
    for key, parse in attempts:
        if key in raw:
            try:
                return parse(raw[key])
            except (ValueError, TypeError, AttributeError):
                continue
    return ImageMetadata(source=None, raw=raw)


def _user_comment(value: bytes) -> str | None:
    prefix, body = value[:8], value[8:]
    if prefix.startswith(b"UNICODE"):
        for enc in ("utf-16-be", "utf-16-le"):
            try:
                text = body.decode(enc)
            except UnicodeDecodeError:
                continue
            if text.isprintable() or "\n" in text:
                return text
    if prefix.startswith(b"ASCII"):
        return body.decode("ascii", errors="replace")
    return None


def read_image_metadata(path: str | os.PathLike) -> ImageMetadata:
    """Read the generation parameters of a PNG, JPEG or WebP file."""
    from PIL import Image

    with Image.open(path) as im:
        text = {k: v for k, v in im.info.items() if isinstance(k, str) and isinstance(v, str)}
        if "parameters" not in text:
            exif = im.getexif().get_ifd(_EXIF_IFD)
            comment = exif.get(_USER_COMMENT)
            if isinstance(comment, bytes) and (decoded := _user_comment(comment)):
                text["parameters"] = decoded
    return parse_metadata(text)
