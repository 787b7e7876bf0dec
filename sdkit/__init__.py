"""sdkit: Stable Diffusion prompt work in Jupyter.

Importing sdkit is cheap: each public name below is imported from its module when first used
(PEP 562), so torch, diffusers, httpx and the widget libraries load only when something needs them.
The layout: ``sdkit.backends`` (the contract, the registry, ``local`` and the ``relay`` kinds),
``sdkit.engine`` (batch planning, executors, run folders), ``sdkit.sweeps``, ``sdkit.studies``,
``sdkit.server``, ``sdkit.metadata``, ``sdkit.notebook`` and ``sdkit.cli``.
"""

import importlib as _importlib
import typing as _typing
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("sdkit-lab")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: Every public name and the module it lives in.
_EXPORTS: dict[str, str] = {
    # sdkit.backends.base
    "Backend": "sdkit.backends.base",
    "Capabilities": "sdkit.backends.base",
    # sdkit.backends.local.embedded
    "EMBEDDED_MODELS": "sdkit.backends.local.embedded",
    "embedded_model_path": "sdkit.backends.local.embedded",
    # sdkit.backends.local.pipeline
    "LocalBackend": "sdkit.backends.local.pipeline",
    "MEMORY_PRESETS": "sdkit.backends.local.pipeline",
    # sdkit.backends.local.schedulers
    "A1111_SCHEDULERS": "sdkit.backends.local.schedulers",
    # sdkit.backends.providers.bfl
    "FluxBackend": "sdkit.backends.providers.bfl",
    # sdkit.backends.providers.fakes
    "FakeBFL": "sdkit.backends.providers.fakes",
    "FakeStability": "sdkit.backends.providers.fakes",
    # sdkit.backends.providers.stability
    "StabilityBackend": "sdkit.backends.providers.stability",
    # sdkit.backends.registry
    "backend_kinds": "sdkit.backends.registry",
    "create_backend": "sdkit.backends.registry",
    "register_backend": "sdkit.backends.registry",
    "unregister_backend": "sdkit.backends.registry",
    # sdkit.backends.relay.apirequest
    "ChatRequest": "sdkit.backends.relay.apirequest",
    "ImageEditRequest": "sdkit.backends.relay.apirequest",
    "ImagesRequest": "sdkit.backends.relay.apirequest",
    "Message": "sdkit.backends.relay.apirequest",
    "SDExtras": "sdkit.backends.relay.apirequest",
    # sdkit.backends.relay.client
    "APIReply": "sdkit.backends.relay.client",
    "AsyncClient": "sdkit.backends.relay.client",
    "Client": "sdkit.backends.relay.client",
    "FetchedImage": "sdkit.backends.relay.client",
    # sdkit.backends.relay.expand
    "Expansion": "sdkit.backends.relay.expand",
    "expand_axis": "sdkit.backends.relay.expand",
    "expand_prompt": "sdkit.backends.relay.expand",
    # sdkit.backends.relay.fakerelay
    "FakeRelay": "sdkit.backends.relay.fakerelay",
    "FakeReply": "sdkit.backends.relay.fakerelay",
    # sdkit.backends.relay.limits
    "Limits": "sdkit.backends.relay.limits",
    # sdkit.backends.relay.remote
    "RemoteBackend": "sdkit.backends.relay.remote",
    # sdkit.backends.relay.reply
    "ChatCompletion": "sdkit.backends.relay.reply",
    "ImageRef": "sdkit.backends.relay.reply",
    "ImagesResponse": "sdkit.backends.relay.reply",
    "collect_stream": "sdkit.backends.relay.reply",
    "find_images": "sdkit.backends.relay.reply",
    "parse_chat_completion": "sdkit.backends.relay.reply",
    "parse_chat_reply": "sdkit.backends.relay.reply",
    "parse_images_response": "sdkit.backends.relay.reply",
    # sdkit.backends.relay.retry
    "RetryPolicy": "sdkit.backends.relay.retry",
    # sdkit.backends.relay.snippet
    "export_request": "sdkit.backends.relay.snippet",
    # sdkit.engine.raycluster
    "RayExecutor": "sdkit.engine.raycluster",
    # sdkit.errors
    "APIConnectionError": "sdkit.errors",
    "APIError": "sdkit.errors",
    "APIStatusError": "sdkit.errors",
    "APITimeoutError": "sdkit.errors",
    "AuthenticationError": "sdkit.errors",
    "BadRequestError": "sdkit.errors",
    "GenerationError": "sdkit.errors",
    "InvalidModelError": "sdkit.errors",
    "InvalidRequestError": "sdkit.errors",
    "MissingDependencyError": "sdkit.errors",
    "ModelError": "sdkit.errors",
    "ModerationError": "sdkit.errors",
    "NotFoundError": "sdkit.errors",
    "OutputError": "sdkit.errors",
    "PermissionDeniedError": "sdkit.errors",
    "RateLimitError": "sdkit.errors",
    "ReplyError": "sdkit.errors",
    "ReplyTooLargeError": "sdkit.errors",
    "RequestTooLargeError": "sdkit.errors",
    "SdkitError": "sdkit.errors",
    "ServerBusyError": "sdkit.errors",
    "ServerError": "sdkit.errors",
    "TaskFailedError": "sdkit.errors",
    "UnprocessableEntityError": "sdkit.errors",
    "ValidationError": "sdkit.errors",
    # sdkit.metadata.imagemeta
    "ImageMetadata": "sdkit.metadata.imagemeta",
    "read_image_metadata": "sdkit.metadata.imagemeta",
    # sdkit.metadata.infotext
    "format_infotext": "sdkit.metadata.infotext",
    "parse_infotext": "sdkit.metadata.infotext",
    # sdkit.metadata.pngfile
    "read_png_metadata": "sdkit.metadata.pngfile",
    "save_result": "sdkit.metadata.pngfile",
    "write_png": "sdkit.metadata.pngfile",
    # sdkit.notebook.widgets
    "GridViewer": "sdkit.notebook.widgets",
    "PromptLab": "sdkit.notebook.widgets",
    "SweepPanel": "sdkit.notebook.widgets",
    # sdkit.params
    "GenerationParams": "sdkit.params",
    # sdkit.prompts.attention
    "parse_attention": "sdkit.prompts.attention",
    # sdkit.prompts.schedule
    "prompt_schedule": "sdkit.prompts.schedule",
    # sdkit.prompts.tokens
    "TokenCount": "sdkit.prompts.tokens",
    "count_tokens": "sdkit.prompts.tokens",
    # sdkit.result
    "GeneratedImage": "sdkit.result",
    "GenerationResult": "sdkit.result",
    "Timings": "sdkit.result",
    # sdkit.secret
    "Secret": "sdkit.secret",
    # sdkit.server.app
    "create_app": "sdkit.server.app",
    # sdkit.server.serve
    "BackgroundServer": "sdkit.server.serve",
    "serve_in_background": "sdkit.server.serve",
    # sdkit.studies.compare
    "run_comparison": "sdkit.studies.compare",
    "verify_comparison": "sdkit.studies.compare",
    # sdkit.studies.folder
    "load_manifest": "sdkit.studies.folder",
    # sdkit.studies.report
    "write_report": "sdkit.studies.report",
    # sdkit.studies.run
    "StudyRun": "sdkit.studies.run",
    "run_study": "sdkit.studies.run",
    # sdkit.studies.spec
    "StudySpec": "sdkit.studies.spec",
    "parse_study_spec": "sdkit.studies.spec",
    # sdkit.studies.verify
    "Verification": "sdkit.studies.verify",
    "verify_study": "sdkit.studies.verify",
    # sdkit.sweeps.axis
    "Axis": "sdkit.sweeps.axis",
    "parse_axis": "sdkit.sweeps.axis",
    "prompt_axis": "sdkit.sweeps.axis",
    # sdkit.sweeps.grid
    "grid_figure": "sdkit.sweeps.grid",
    "image_grid": "sdkit.sweeps.grid",
    "labelled_grid": "sdkit.sweeps.grid",
    "sweep_grids": "sdkit.sweeps.grid",
    # sdkit.sweeps.runner
    "CellResult": "sdkit.sweeps.runner",
    "SweepResult": "sdkit.sweeps.runner",
    "run_sweep": "sdkit.sweeps.runner",
    # sdkit.sweeps.sweep
    "Cell": "sdkit.sweeps.sweep",
    "Sweep": "sdkit.sweeps.sweep",
}

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
    "Capabilities",
    "Cell",
    "CellResult",
    "ChatCompletion",
    "ChatRequest",
    "Client",
    "EMBEDDED_MODELS",
    "Expansion",
    "FakeBFL",
    "FakeRelay",
    "FakeReply",
    "FakeStability",
    "FetchedImage",
    "FluxBackend",
    "GeneratedImage",
    "GenerationError",
    "GenerationParams",
    "GenerationResult",
    "GridViewer",
    "ImageEditRequest",
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
    "ModerationError",
    "NotFoundError",
    "OutputError",
    "PermissionDeniedError",
    "PromptLab",
    "RateLimitError",
    "RayExecutor",
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
    "StabilityBackend",
    "StudyRun",
    "StudySpec",
    "Sweep",
    "SweepPanel",
    "SweepResult",
    "TaskFailedError",
    "Timings",
    "TokenCount",
    "UnprocessableEntityError",
    "ValidationError",
    "Verification",
    "__version__",
    "backend_kinds",
    "collect_stream",
    "count_tokens",
    "create_app",
    "create_backend",
    "embedded_model_path",
    "expand_axis",
    "expand_prompt",
    "export_request",
    "find_images",
    "format_infotext",
    "grid_figure",
    "image_grid",
    "labelled_grid",
    "load_manifest",
    "parse_attention",
    "parse_axis",
    "parse_chat_completion",
    "parse_chat_reply",
    "parse_images_response",
    "parse_infotext",
    "parse_study_spec",
    "prompt_axis",
    "prompt_schedule",
    "read_image_metadata",
    "read_png_metadata",
    "register_backend",
    "run_comparison",
    "run_study",
    "run_sweep",
    "save_result",
    "serve_in_background",
    "sweep_grids",
    "unregister_backend",
    "verify_comparison",
    "verify_study",
    "write_png",
    "write_report",
]


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sdkit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if _typing.TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from sdkit.backends.base import Backend, Capabilities
    from sdkit.backends.local.embedded import EMBEDDED_MODELS, embedded_model_path
    from sdkit.backends.local.pipeline import MEMORY_PRESETS, LocalBackend
    from sdkit.backends.local.schedulers import A1111_SCHEDULERS
    from sdkit.backends.providers.bfl import FluxBackend
    from sdkit.backends.providers.fakes import FakeBFL, FakeStability
    from sdkit.backends.providers.stability import StabilityBackend
    from sdkit.backends.registry import backend_kinds, create_backend, register_backend, unregister_backend
    from sdkit.backends.relay.apirequest import ChatRequest, ImageEditRequest, ImagesRequest, Message, SDExtras
    from sdkit.backends.relay.client import APIReply, AsyncClient, Client, FetchedImage
    from sdkit.backends.relay.expand import Expansion, expand_axis, expand_prompt
    from sdkit.backends.relay.fakerelay import FakeRelay, FakeReply
    from sdkit.backends.relay.limits import Limits
    from sdkit.backends.relay.remote import RemoteBackend
    from sdkit.backends.relay.reply import (
        ChatCompletion,
        ImageRef,
        ImagesResponse,
        collect_stream,
        find_images,
        parse_chat_completion,
        parse_chat_reply,
        parse_images_response,
    )
    from sdkit.backends.relay.retry import RetryPolicy
    from sdkit.backends.relay.snippet import export_request
    from sdkit.engine.raycluster import RayExecutor
    from sdkit.errors import (
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
        ModerationError,
        NotFoundError,
        OutputError,
        PermissionDeniedError,
        RateLimitError,
        ReplyError,
        ReplyTooLargeError,
        RequestTooLargeError,
        SdkitError,
        ServerBusyError,
        ServerError,
        TaskFailedError,
        UnprocessableEntityError,
        ValidationError,
    )
    from sdkit.metadata.imagemeta import ImageMetadata, read_image_metadata
    from sdkit.metadata.infotext import format_infotext, parse_infotext
    from sdkit.metadata.pngfile import read_png_metadata, save_result, write_png
    from sdkit.notebook.widgets import GridViewer, PromptLab, SweepPanel
    from sdkit.params import GenerationParams
    from sdkit.prompts.attention import parse_attention
    from sdkit.prompts.schedule import prompt_schedule
    from sdkit.prompts.tokens import TokenCount, count_tokens
    from sdkit.result import GeneratedImage, GenerationResult, Timings
    from sdkit.secret import Secret
    from sdkit.server.app import create_app
    from sdkit.server.serve import BackgroundServer, serve_in_background
    from sdkit.studies.compare import run_comparison, verify_comparison
    from sdkit.studies.folder import load_manifest
    from sdkit.studies.report import write_report
    from sdkit.studies.run import StudyRun, run_study
    from sdkit.studies.spec import StudySpec, parse_study_spec
    from sdkit.studies.verify import Verification, verify_study
    from sdkit.sweeps.axis import Axis, parse_axis, prompt_axis
    from sdkit.sweeps.grid import grid_figure, image_grid, labelled_grid, sweep_grids
    from sdkit.sweeps.runner import CellResult, SweepResult, run_sweep
    from sdkit.sweeps.sweep import Cell, Sweep
