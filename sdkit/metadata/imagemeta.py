"""Generation parameters read back from images made by sdkit and by other tools.

Pure parsers over an image's text chunks; :func:`read_image_metadata` is the thin file shell.
Understood: sdkit's own record (``sdkit``), A1111 infotext (``parameters`` in PNG, also after the
image data; EXIF UserComment in JPEG/WebP; "stealth" infotext hidden in the alpha channel or the colour
bits by A1111's stealth-pnginfo extension; also written by Forge, SD.Next), Fooocus (JSON in
``parameters`` with ``metadata_scheme``), ComfyUI (``prompt`` API graph and ``workflow``), InvokeAI
(``invokeai_metadata``; InvokeAI 2's ``sd-metadata`` and ``Dream``) and NovelAI (``Description`` and
``Comment``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
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
    (``sdkit``, ``a1111``, ``fooocus``, ``comfyui``, ``invokeai``, ``novelai``) or is None when nothing
    was found.
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


#: Inputs through which a latent reaches a node, in the order tried (a composite takes ``samples_to``'s size).
_LATENT_INPUTS = ("latent_image", "samples", "samples_to", "latent", "samples1")


def _comfy_latent_size(graph: Mapping[str, Any], link: Any) -> tuple[int | None, int | None]:
    """The pixel size of the latent behind ``link`` (a sampler's ``latent_image``): an empty latent's
    ``width``/``height``, an upscale's target (``LatentUpscale``) or factor (``LatentUpscaleBy``), followed
    through samplers and composites; (None, None) where it comes from pixels (``VAEEncode``) or a value
    the graph does not hold."""
    seen: set[str] = set()
    scale = 1.0
    while isinstance(link, list) and link and str(link[0]) in graph and str(link[0]) not in seen:
        seen.add(str(link[0]))
        node = graph[str(link[0])]
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        width, height = _int(inputs.get("width")), _int(inputs.get("height"))
        if width and height:
            return int(width * scale), int(height * scale)
        if (by := _float(inputs.get("scale_by"))) is not None:
            scale *= by
        link = next((inputs[k] for k in _LATENT_INPUTS if isinstance(inputs.get(k), list)), None)
    return None, None


def _from_comfyui(prompt_json: str, raw: Mapping[str, str]) -> ImageMetadata:
    graph = json.loads(prompt_json)
    if not isinstance(graph, dict):
        raise ValueError("ComfyUI prompt is not an object")
    sampler = next(
        (n for n in graph.values() if isinstance(n, dict) and "KSampler" in str(n.get("class_type", ""))), None
    )
    inputs = sampler.get("inputs", {}) if sampler else {}
    width, height = _comfy_latent_size(graph, inputs.get("latent_image"))
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
        width=width,
        height=height,
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


def _from_parameters(text: str, raw: Mapping[str, str]) -> ImageMetadata:
    """``parameters`` holds A1111 infotext, or Fooocus' JSON (its ``metadata_scheme`` is ``fooocus``)."""
    if text.lstrip().startswith("{"):
        try:
            m = json.loads(text)
        except json.JSONDecodeError:
            m = None
        if isinstance(m, dict) and (m.get("metadata_scheme") == "fooocus" or raw.get("fooocus_scheme") == "fooocus"):
            return _from_fooocus(m, raw)
    return _from_a1111(text, raw)


def _from_fooocus(m: Mapping[str, Any], raw: Mapping[str, str]) -> ImageMetadata:
    size = re.fullmatch(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", str(m.get("resolution", "")).strip())
    return ImageMetadata(
        source="fooocus",
        prompt=m.get("prompt"),
        negative_prompt=m.get("negative_prompt"),
        seed=_int(m.get("seed")),
        steps=_int(m.get("steps")),
        guidance_scale=_float(m.get("guidance_scale")),
        width=_int(size.group(1)) if size else None,  # Fooocus writes str((width, height))
        height=_int(size.group(2)) if size else None,
        sampler=m.get("sampler"),
        model=m.get("base_model"),
        raw=raw,
    )


def _split_invokeai_prompt(text: str) -> tuple[str, str]:
    """InvokeAI 2 writes the negative prompt inside the prompt, in square brackets: ``a cat [blurry]``."""
    negatives = [n.strip(" ,") for n in re.findall(r"\[([^\[\]]*)\]", text)]
    positive = re.sub(r"\[[^\[\]]*\]", "", text)
    return positive.strip(" ,"), ", ".join(n for n in negatives if n)


def _from_invokeai_v2(meta_json: str, raw: Mapping[str, str]) -> ImageMetadata:
    """InvokeAI 2's ``sd-metadata``: the job under ``image``, its prompt a list of weighted parts."""
    m = json.loads(meta_json)
    image = m["image"]
    parts = image.get("prompt")
    if isinstance(parts, list):
        parts = " ".join(str(p.get("prompt", "")) if isinstance(p, dict) else str(p) for p in parts)
    prompt, negative = _split_invokeai_prompt(parts) if isinstance(parts, str) else (None, None)
    return ImageMetadata(
        source="invokeai",
        prompt=prompt,
        negative_prompt=negative,
        seed=_int(image.get("seed")),
        steps=_int(image.get("steps")),
        guidance_scale=_float(image.get("cfg_scale")),
        width=_int(image.get("width")),
        height=_int(image.get("height")),
        sampler=image.get("sampler"),
        model=m.get("model_weights") or m.get("model"),
        raw=raw,
    )


#: InvokeAI 2's ``Dream`` command-line flags (``-s 50 -S 42 -W 512 -H 768 -C 7.5 -A k_lms``).
_DREAM_FLAGS = {
    **dict.fromkeys(("-s", "--steps"), "steps"),
    **dict.fromkeys(("-S", "--seed"), "seed"),
    **dict.fromkeys(("-W", "--width"), "width"),
    **dict.fromkeys(("-H", "--height"), "height"),
    **dict.fromkeys(("-C", "--cfg_scale"), "cfg_scale"),
    **dict.fromkeys(("-A", "--sampler"), "sampler"),
    **dict.fromkeys(("-m", "--model"), "model"),
}


def _from_invokeai_dream(dream: str, raw: Mapping[str, str]) -> ImageMetadata:
    """InvokeAI 2's ``Dream``: a quoted prompt, then the flags of its ``dream>`` command line."""
    words = shlex.split(dream)
    if not words:
        raise ValueError("empty Dream")
    flags: dict[str, str] = {}
    for flag, value in itertools.pairwise(words[1:]):
        if flag in _DREAM_FLAGS:
            flags[_DREAM_FLAGS[flag]] = value
    prompt, negative = _split_invokeai_prompt(words[0])
    return ImageMetadata(
        source="invokeai",
        prompt=prompt,
        negative_prompt=negative,
        seed=_int(flags.get("seed")),
        steps=_int(flags.get("steps")),
        guidance_scale=_float(flags.get("cfg_scale")),
        width=_int(flags.get("width")),
        height=_int(flags.get("height")),
        sampler=flags.get("sampler"),
        model=flags.get("model"),
        raw=raw,
    )


def _from_novelai(comment_json: str, raw: Mapping[str, str]) -> ImageMetadata:
    """NovelAI: the prompt in ``Description``, the rest as JSON in ``Comment`` (``uc`` is the negative
    prompt, ``scale`` the guidance), the model in ``Source`` (``Stable Diffusion 1D44365E``)."""
    m = json.loads(comment_json)
    if not isinstance(m, dict) or not (raw.get("Software") == "NovelAI" or {"uc", "scale"} <= m.keys()):
        raise ValueError("not NovelAI's Comment")
    return ImageMetadata(
        source="novelai",
        prompt=m.get("prompt", raw.get("Description")),
        negative_prompt=m.get("uc"),
        seed=_int(m.get("seed")),
        steps=_int(m.get("steps")),
        guidance_scale=_float(m.get("scale")),
        width=_int(m.get("width")),
        height=_int(m.get("height")),
        sampler=m.get("sampler"),
        model=raw.get("Source"),
        raw=raw,
    )


#: The text chunks a reader understands, in the order :func:`parse_metadata` tries them.
KNOWN_KEYS = ("sdkit", "parameters", "prompt", "invokeai_metadata", "sd-metadata", "Dream", "Comment")


def parse_metadata(text: Mapping[str, str]) -> ImageMetadata:
    """The best reading of an image's text chunks: sdkit, then A1111 or Fooocus (``parameters``), ComfyUI,
    InvokeAI (3+, then 2's ``sd-metadata`` and ``Dream``), NovelAI.

    A chunk that does not parse is skipped, never raised: the next source is tried.
    """
    raw = dict(text)
    attempts = (
        ("sdkit", lambda s: _from_sdkit(json.loads(s), raw)),
        ("parameters", lambda s: _from_parameters(s, raw)),
        ("prompt", lambda s: _from_comfyui(s, raw)),
        ("invokeai_metadata", lambda s: _from_invokeai(s, raw)),
        ("sd-metadata", lambda s: _from_invokeai_v2(s, raw)),
        ("Dream", lambda s: _from_invokeai_dream(s, raw)),
        ("Comment", lambda s: _from_novelai(s, raw)),
    )
    for key, parse in attempts:
        if key in raw:
            try:
                return parse(raw[key])
            except (ValueError, TypeError, AttributeError, KeyError):
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


def _text_chunks(im: Any) -> dict[str, str]:
    return {k: v for k, v in im.info.items() if isinstance(k, str) and isinstance(v, str)}


def read_image_metadata(path: str | os.PathLike) -> ImageMetadata:
    """Read the generation parameters of a PNG, JPEG or WebP file.

    Text chunks after the image data (Pillow shows them only once the image is decoded) are read too;
    an image with no known chunk is searched for A1111's stealth infotext in its lowest bits
    (:mod:`sdkit.metadata.stealth`), which then reads as the ``parameters`` chunk would.
    """
    from PIL import Image

    from sdkit.metadata.stealth import read_stealth_infotext

    with Image.open(path) as im:
        text = _text_chunks(im)
        if "parameters" not in text:
            exif = im.getexif().get_ifd(_EXIF_IFD)
            comment = exif.get(_USER_COMMENT)
            if isinstance(comment, bytes) and (decoded := _user_comment(comment)):
                text["parameters"] = decoded
        if im.format in ("PNG", "WEBP") and not any(k in text for k in KNOWN_KEYS):
            im.load()  # a chunk after IDAT is read with the image data
            text = _text_chunks(im) | text
            if not any(k in text for k in KNOWN_KEYS) and (hidden := read_stealth_infotext(im)):
                text["parameters"] = hidden
    return parse_metadata(text)
