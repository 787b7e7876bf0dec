"""sdkit: Stable Diffusion prompt work in Jupyter.

Importing sdkit is cheap: torch, diffusers, httpx and the widget libraries load when first used.
"""

from importlib import metadata as _metadata

from .apirequest import ChatRequest, ImagesRequest, Message, SDExtras
from .axis import Axis, parse_axis, prompt_axis
from .backend import Backend
from .client import APIReply, AsyncClient, Client, FetchedImage
from .embedded import EMBEDDED_MODELS, embedded_model_path
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    GenerationError,
    InvalidModelError,
    InvalidRequestError,
    MissingDependencyError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplyError,
    ReplyTooLargeError,
    RequestTooLargeError,
    SdkitError,
    ServerBusyError,
    ServerError,
    UnprocessableEntityError,
    ValidationError,
)
from .fakerelay import FakeRelay, FakeReply
from .grid import grid_figure, image_grid, labelled_grid, sweep_grids
from .imagemeta import ImageMetadata, read_image_metadata
from .infotext import format_infotext, parse_infotext
from .limits import Limits
from .local import MEMORY_PRESETS, LocalBackend
from .params import GenerationParams
from .pngfile import read_png_metadata, save_result, write_png
from .remote import RemoteBackend
from .reply import (
    ChatCompletion,
    ImageRef,
    ImagesResponse,
    collect_stream,
    find_images,
    parse_chat_completion,
    parse_chat_reply,
    parse_images_response,
)
from .result import GeneratedImage, GenerationResult, Timings
from .retry import RetryPolicy
from .runner import CellResult, SweepResult, run_sweep
from .schedulers import A1111_SCHEDULERS
from .secret import Secret
from .server import BackgroundServer, create_app, serve_in_background
from .snippet import export_request
from .study import StudyRun, Verification, run_study, verify_study, write_report
from .studyspec import StudySpec, parse_study_spec
from .sweep import Cell, Sweep

try:
    __version__ = _metadata.version("sdkit-lab")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "A1111_SCHEDULERS",
    "APIConnectionError",
    "APIError",
    "APIReply",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "Axis",
    "Backend",
    "BackgroundServer",
    "BadRequestError",
    "Cell",
    "CellResult",
    "ChatCompletion",
    "ChatRequest",
    "Client",
    "EMBEDDED_MODELS",
    "FakeRelay",
    "FakeReply",
    "FetchedImage",
    "GeneratedImage",
    "GenerationError",
    "GenerationParams",
    "GenerationResult",
    "ImageMetadata",
    "ImageRef",
    "ImagesRequest",
    "ImagesResponse",
    "InvalidModelError",
    "InvalidRequestError",
    "Limits",
    "LocalBackend",
    "MEMORY_PRESETS",
    "Message",
    "MissingDependencyError",
    "ModelError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RemoteBackend",
    "ReplyError",
    "ReplyTooLargeError",
    "RequestTooLargeError",
    "RetryPolicy",
    "SDExtras",
    "SdkitError",
    "Secret",
    "ServerBusyError",
    "ServerError",
    "StudyRun",
    "StudySpec",
    "Sweep",
    "SweepResult",
    "Timings",
    "UnprocessableEntityError",
    "ValidationError",
    "Verification",
    "__version__",
    "collect_stream",
    "create_app",
    "embedded_model_path",
    "export_request",
    "find_images",
    "format_infotext",
    "grid_figure",
    "image_grid",
    "labelled_grid",
    "parse_axis",
    "parse_chat_completion",
    "parse_chat_reply",
    "parse_images_response",
    "parse_infotext",
    "parse_study_spec",
    "prompt_axis",
    "read_image_metadata",
    "read_png_metadata",
    "run_study",
    "run_sweep",
    "save_result",
    "serve_in_background",
    "sweep_grids",
    "verify_study",
    "write_png",
    "write_report",
]
