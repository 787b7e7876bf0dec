"""LoRA files: where they are found, how they are named in records, and how a pipeline wears them.

A LoRA named ``NAME`` is the file ``NAME.safetensors`` in the first LoRA folder that has it:
the folders given to the backend (``--lora-dir``), then ``$SDKIT_LORA_DIR`` (several joined with
``os.pathsep``), then the ``loras/`` folder shipped with an embedded model (``tiny`` ships
``hexagon``). A path to a ``.safetensors`` file works as a name too.

Both common formats load, through diffusers' adapter API: kohya/A1111 (``lora_unet_…lora_down``)
and diffusers/peft (``unet.….lora_A``). Each file is loaded once per pipeline as a named adapter and
kept; every call then chooses its adapters and weights with ``set_adapters``. When every weight is 0
the adapters are switched off altogether, so weight 0 gives exactly the base model's pixels (scaling
a LoRA to 0 did not, in diffusers #4751, where the text encoder's part kept its effect).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sdkit.errors import ModelError, ValidationError
from sdkit.prompts.networks import lift_networks
from sdkit.suggestions import did_you_mean

__all__ = [
    "LORA_ENV",
    "apply_loras",
    "find_lora",
    "lora_dirs",
    "lora_hash",
    "lora_names",
    "prompt_with_lora_tags",
    "request_loras",
    "split_lora_tags",
]

LORA_ENV = "SDKIT_LORA_DIR"
LORA_SUFFIX = ".safetensors"


_TAG = re.compile(r"<lora:([^<>:]+)(?::([^<>:]*))?>", re.IGNORECASE)


def split_lora_tags(prompt: str) -> tuple[str, tuple[tuple[str, float], ...]]:
    """``"a hexagon <lora:hexagon:0.5>"`` → ``("a hexagon", (("hexagon", 0.5),))``: A1111's LoRA tags
    (``<lora:…>``, ``<lyco:…>``; weight 1 when left out) lifted out of a prompt by :func:`sdkit.prompts.lift_networks`,
    the rest of the text with its spaces tidied."""
    if "<" not in prompt:
        return prompt, ()
    text, tags = lift_networks(prompt)
    loras = tuple((tag.name, tag.weight) for tag in tags if tag.kind == "lora")
    if not loras:
        return prompt, ()
    return re.sub(r"[ \t]{2,}", " ", text).strip(), loras


def prompt_with_lora_tags(prompt: str, loras: Iterable[Sequence[Any]]) -> str:
    """``prompt`` with each of ``loras`` not already tagged in it appended as ``<lora:NAME:W>`` (as A1111 writes it)."""
    tags = [f"<lora:{name}:{float(weight):g}>" for name, weight in loras if f"<lora:{name}:" not in prompt]
    return " ".join([prompt, *tags]) if tags else prompt


def request_loras(params: Any) -> tuple[str, tuple[tuple[str, float], ...]]:
    """The prompt a pipeline sees and the LoRAs of a request: ``params.loras`` then the prompt's tags."""
    text, tagged = split_lora_tags(params.prompt)
    loras = tuple(params.loras) + tagged
    names = [name for name, _ in loras]
    for name in names:
        if names.count(name) > 1:
            raise ValidationError("loras", name, "given twice (in loras and as a tag, or as two tags); give it once")
    return text, loras


def lora_dirs(model: str | None = None, extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """The folders searched for LoRAs, in order: ``extra``, ``$SDKIT_LORA_DIR``, the embedded model's own."""
    from sdkit.backends.local.embedded import SHIPPED_MODELS, is_embedded, shipped_model_path

    dirs = [Path(d).expanduser() for d in extra]
    dirs += [Path(d).expanduser() for d in os.environ.get(LORA_ENV, "").split(os.pathsep) if d.strip()]
    if model is not None and is_embedded(model) and model in SHIPPED_MODELS:
        dirs.append(shipped_model_path(model) / "loras")
    return list(dict.fromkeys(dirs))


def lora_names(dirs: Sequence[Path]) -> list[str]:
    """The LoRA names found in ``dirs`` (first folder wins), sorted."""
    names: set[str] = set()
    for folder in dirs:
        if folder.is_dir():
            names.update(p.stem for p in folder.glob(f"*{LORA_SUFFIX}") if p.is_file())
    return sorted(names)


def find_lora(name: str, dirs: Sequence[Path]) -> Path:
    """The file of the LoRA ``name`` (a name in ``dirs`` or a path to a ``.safetensors`` file).

    An unknown name is refused with close names suggested and the folders searched."""
    path = Path(name).expanduser()
    if path.suffix == LORA_SUFFIX and path.is_file():
        return path
    for folder in dirs:
        candidate = folder / f"{name}{LORA_SUFFIX}"
        if candidate.is_file():
            return candidate
    known = lora_names(dirs)
    hint = did_you_mean(name, known) or (f"known: {', '.join(known)}" if known else "no LoRAs found")
    searched = ", ".join(str(d) for d in dirs) or "no folders"
    raise ValidationError(
        "loras",
        name,
        f"no such LoRA; {hint} (searched {searched}; add folders with --lora-dir or ${LORA_ENV})",
    )


def lora_hash(path: Path) -> str:
    """A1111's short LoRA hash: the first 12 hex of the sha256 of a safetensors file's tensor bytes
    (after its header: the "addnet" hash), as written in the ``Lora hashes`` infotext key."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        header = int.from_bytes(f.read(8), "little")
        f.seek(8 + header)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


class _NoTextEncoderPart(logging.Filter):
    """Drops diffusers' "No LoRA keys associated to CLIPTextModel" line: a UNet-only LoRA is normal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No LoRA keys associated to")


_NO_TEXT_ENCODER_PART = _NoTextEncoderPart()


@contextlib.contextmanager
def _quiet_adapter_notices() -> Iterator[None]:
    """Loading a second adapter makes peft warn that the model has several (that is the point)."""
    logging.getLogger("diffusers.loaders.lora_base").addFilter(_NO_TEXT_ENCODER_PART)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        yield


def adapter_name(name: str) -> str:
    """A peft adapter name for a LoRA name (letters, digits and ``_``)."""
    return "lora_" + re.sub(r"\W", "_", name)


def apply_loras(pipe: Any, loaded: dict[Path, str], loras: Sequence[tuple[Path, str, float]]) -> None:
    """Make ``pipe`` wear exactly ``loras`` — ``(file, name, weight)`` — for its next call.

    Files not yet in ``loaded`` (file → adapter name) are loaded as adapters and added to it; the
    others are reused. Adapters with weight 0 are left out; with none left, all are switched off."""
    for path, name, _ in loras:
        if path in loaded:
            continue
        adapter = adapter_name(name)
        if adapter in loaded.values():  # the same name from another folder
            adapter = f"{adapter}_{len(loaded)}"
        try:
            with _quiet_adapter_notices():
                pipe.load_lora_weights(str(path), adapter_name=adapter)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise ModelError(f"loras={name!r}: could not load {path} as a LoRA for this model: {exc}") from exc
        loaded[path] = adapter
    active = [(loaded[path], weight) for path, _, weight in loras if weight != 0]
    if not loaded:
        return
    if not active:
        pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters([a for a, _ in active], adapter_weights=[w for _, w in active])
