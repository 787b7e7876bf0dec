"""What a machine is, as far as reproducing an image is concerned.

:func:`capture_environment` reads it (the I/O shell); :func:`environment_diff` compares two
captures (pure), so a failed verification can say what differs.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["capture_environment", "environment_diff"]

#: Libraries whose versions change the pixels (or the files) sdkit writes.
LIBRARIES = ("sdkit-lab", "torch", "diffusers", "transformers", "accelerate", "safetensors", "numpy", "pillow")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def capture_environment(*, with_torch: bool = True) -> dict[str, Any]:
    """Python, platform, CPU, library versions and (with torch) its default thread count, the CPU
    kernels it runs (``cpu_capability``: AVX512, AVX2, …), OpenMP's wait policy and accelerators."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "libraries": _versions(),
    }
    if with_torch:
        try:
            import torch
        except ImportError:
            return env
        env["torch_threads"] = torch.get_num_threads()
        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        env["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "default").upper()
        env["cuda"] = torch.version.cuda
        env["cuda_available"] = torch.cuda.is_available()
        env["gpus"] = (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available()
            else []
        )
        env["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
    return env


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def environment_diff(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, recorded, current)`` for every value that differs, nested keys dotted, sorted."""
    a, b = _flatten(recorded), _flatten(current)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
