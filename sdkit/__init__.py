"""sdkit: Stable Diffusion prompt work in Jupyter.

Importing sdkit is cheap: torch, diffusers, httpx and the widget libraries load when first used.
"""

from importlib import metadata as _metadata

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
    InvalidRequestError,
    MissingDependencyError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplyError,
    RequestTooLargeError,
    SdkitError,
    ServerBusyError,
    ServerError,
    UnprocessableEntityError,
    ValidationError,
)
from .infotext import format_infotext, parse_infotext
from .local import MEMORY_PRESETS, LocalBackend
from .params import GenerationParams
from .pngfile import read_png_metadata, save_result, write_png
from .result import GeneratedImage, GenerationResult, Timings
from .schedulers import A1111_SCHEDULERS
from .server import BackgroundServer, create_app, serve_in_background

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
    "Backend",
    "BackgroundServer",
    "BadRequestError",
    "EMBEDDED_MODELS",
    "GeneratedImage",
    "GenerationError",
    "GenerationParams",
    "GenerationResult",
    "InvalidRequestError",
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
    "ServerBusyError",
    "ServerError",
    "Timings",
    "UnprocessableEntityError",
    "ValidationError",
    "__version__",
    "create_app",
    "embedded_model_path",
    "format_infotext",
    "parse_infotext",
    "read_png_metadata",
    "save_result",
    "serve_in_background",
    "write_png",
]
