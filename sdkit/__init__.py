"""sdkit: Stable Diffusion prompt work in Jupyter.

Importing sdkit is cheap: torch, diffusers, httpx and the widget libraries load when first used.
"""

from importlib import metadata as _metadata

from .axis import Axis, parse_axis, prompt_axis
from .backend import Backend
from .embedded import EMBEDDED_MODELS, embedded_model_path
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    GenerationError,
    MissingDependencyError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplyError,
    RequestTooLargeError,
    SdkitError,
    ServerError,
    UnprocessableEntityError,
    ValidationError,
)
from .grid import grid_figure, image_grid, labelled_grid, sweep_grids
from .infotext import format_infotext, parse_infotext
from .local import MEMORY_PRESETS, LocalBackend
from .params import GenerationParams
from .pngfile import read_png_metadata, save_result, write_png
from .result import GeneratedImage, GenerationResult, Timings
from .runner import CellResult, SweepResult, run_sweep
from .schedulers import A1111_SCHEDULERS
from .sweep import Cell, Sweep

try:
    __version__ = _metadata.version("sdkit-lab")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "A1111_SCHEDULERS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "Axis",
    "Backend",
    "BadRequestError",
    "Cell",
    "CellResult",
    "EMBEDDED_MODELS",
    "GeneratedImage",
    "GenerationError",
    "GenerationParams",
    "GenerationResult",
    "LocalBackend",
    "MEMORY_PRESETS",
    "MissingDependencyError",
    "ModelError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReplyError",
    "RequestTooLargeError",
    "SdkitError",
    "ServerError",
    "Sweep",
    "SweepResult",
    "Timings",
    "UnprocessableEntityError",
    "ValidationError",
    "__version__",
    "embedded_model_path",
    "format_infotext",
    "grid_figure",
    "image_grid",
    "labelled_grid",
    "parse_axis",
    "parse_infotext",
    "prompt_axis",
    "read_png_metadata",
    "run_sweep",
    "save_result",
    "sweep_grids",
    "write_png",
]
