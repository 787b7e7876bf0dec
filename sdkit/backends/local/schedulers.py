"""Scheduler names: A1111's sampler names and diffusers' class names.

Pure tables and lookups; only :func:`make_scheduler` imports diffusers.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdkit.errors import MissingDependencyError, ValidationError
from sdkit.suggestions import did_you_mean

__all__ = [
    "A1111_SCHEDULERS",
    "SCHEDULER_CLASSES",
    "a1111_name",
    "canonical_scheduler",
    "check_steps",
    "make_scheduler",
    "steps_problem",
]

#: PNDM's Runge-Kutta warm-up (``skip_prk_steps`` off, diffusers' default) needs this many steps; fewer
#: fail inside diffusers with "operands could not be broadcast together".
PNDM_PRK_MIN_STEPS = 4
#: LCM's default ``original_inference_steps``: it cannot take more steps than that.
LCM_ORIGINAL_STEPS = 50

#: A1111 sampler name → (diffusers scheduler class, extra config).
A1111_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
}

#: diffusers scheduler classes accepted by name.
SCHEDULER_CLASSES: frozenset[str] = frozenset(
    {cls for cls, _ in A1111_SCHEDULERS.values()} | {"DDPMScheduler", "EDMEulerScheduler"}
)

_BY_LOWER = {name.lower(): name for name in A1111_SCHEDULERS} | {cls.lower(): cls for cls in SCHEDULER_CLASSES}


def _spelling(name: str) -> str:
    """One spelling for the ways sampler names are written: A1111's labels (``DPM++ 2M Karras``),
    its k-diffusion names (``k_dpmpp_2m_ka``, ``k_euler_a``) and ComfyUI's (``dpmpp_2m``, ``euler_ancestral``)."""
    key = re.sub(r"[\s_-]+", "_", name.strip().lower()).replace("++", "pp")
    key = re.sub(r"^(k_|sample_)", "", key)
    key = re.sub(r"_ka$", "_karras", key)
    key = re.sub(r"ancestral$", "a", key).replace("ancestral_", "a_")
    return key.replace("dpm_2", "dpm2").replace("uni_pc", "unipc")


#: Other spellings → canonical name (``k_euler_a`` → ``Euler a``); ``plms`` is diffusers' PNDM.
_BY_SPELLING = {_spelling(name): name for name in A1111_SCHEDULERS} | {"plms": "PNDM"}


def canonical_scheduler(name: str) -> str:
    """The canonical spelling of an A1111 sampler or diffusers class name (case-insensitive;
    k-diffusion and ComfyUI names such as ``k_euler_a`` and ``dpmpp_2m_karras`` are accepted too).

    >>> canonical_scheduler("euler A")
    'Euler a'
    >>> canonical_scheduler("k_dpmpp_2m_ka")
    'DPM++ 2M Karras'
    """
    if not isinstance(name, str):
        raise ValidationError("scheduler", name, "must be a string")
    found = _BY_LOWER.get(" ".join(name.split()).lower()) or _BY_SPELLING.get(_spelling(name))
    if found is None:
        hint = did_you_mean(name, [*A1111_SCHEDULERS, *sorted(SCHEDULER_CLASSES)])
        known = ", ".join(sorted(A1111_SCHEDULERS))
        raise ValidationError(
            "scheduler", name, f"unknown scheduler; {hint or f'use an A1111 name ({known}) or a diffusers class name'}"
        )
    return found


def scheduler_spec(name: str) -> tuple[str, dict[str, Any]]:
    """(diffusers class name, config overrides) for a scheduler name."""
    name = canonical_scheduler(name)
    if name in A1111_SCHEDULERS:
        cls, extra = A1111_SCHEDULERS[name]
        return cls, dict(extra)
    return name, {}


def a1111_name(class_name: str, config: dict[str, Any] | None = None) -> str:
    """The A1111 sampler name for a diffusers scheduler class and config (the class name if none fits)."""
    config = config or {}
    fits = [
        (len(extra), name)
        for name, (cls, extra) in A1111_SCHEDULERS.items()
        if cls == class_name and all(config.get(k) == v for k, v in extra.items())
    ]
    return max(fits)[1] if fits else class_name


def make_scheduler(name: str, base_config: dict[str, Any]):
    """Build a diffusers scheduler named ``name`` from a pipeline's scheduler config."""
    import diffusers

    cls_name, extra = scheduler_spec(name)
    if cls_name == "LMSDiscreteScheduler" and importlib.util.find_spec("scipy") is None:
        raise MissingDependencyError("scipy", "lms")
    cls = getattr(diffusers, cls_name)
    return cls.from_config(base_config, **extra)


def steps_problem(class_name: str, config: Mapping[str, Any], steps: int) -> str | None:
    """Why a diffusers scheduler class with ``config`` cannot run ``steps`` steps, or None when it can.

    Found by running every scheduler's ``step()`` loop at 1-60, 100, 200, 300, 499 and 500 steps on the
    scheduler configs of the embedded models and of SD 1.5 (diffusers 0.42.1, 2026-12-04): PNDM with its
    Runge-Kutta warm-up fails below 4 steps, LCM above its ``original_inference_steps``; every other
    scheduler ran at each of those counts (LMS untested there: it needs scipy).
    """
    if class_name == "PNDMScheduler" and not config.get("skip_prk_steps", False) and steps < PNDM_PRK_MIN_STEPS:
        return (
            f"PNDM needs at least {PNDM_PRK_MIN_STEPS} steps for its Runge-Kutta warm-up with this model's "
            "scheduler config (skip_prk_steps is off); take more steps or another scheduler"
        )
    if class_name == "LCMScheduler":
        limit = config.get("original_inference_steps") or LCM_ORIGINAL_STEPS
        if steps > limit:
            return f"LCM takes at most {limit} steps (its original_inference_steps); take fewer steps"
    return None


def check_steps(scheduler: str | None, steps: int, base: tuple[str, Mapping[str, Any]]) -> None:
    """Refuse, with a :class:`ValidationError` naming ``num_inference_steps``, a step count that
    ``scheduler`` (None: the model's own) cannot run when made from the model's scheduler ``base``
    (class name, config)."""
    cls, extra = scheduler_spec(scheduler) if scheduler is not None else (base[0], {})
    why = steps_problem(cls, {**base[1], **extra}, steps)
    if why is not None:
        name = scheduler if scheduler is not None else f"{base[0]} (the model's own)"
        raise ValidationError("num_inference_steps", steps, f"with scheduler {name}: {why}")


def folder_scheduler(folder: Path) -> tuple[str, dict[str, Any]] | None:
    """(class name, config) of a diffusers model folder's scheduler, read from its JSON without loading
    anything; None when the folder has none that can be read."""
    try:
        config = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not isinstance(config.get("_class_name"), str):
        return None
    return config["_class_name"], config
