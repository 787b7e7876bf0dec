"""sdkit's exceptions: one root, a short tree.

    SdkitError
    ├── ValidationError (also ValueError)   bad input, refused before any model or network work
    ├── MissingDependencyError (also ImportError)   an optional extra is not installed
    ├── ModelError                          a model could not be built, found or loaded
    │   └── InvalidModelError (also ValidationError)   a model name or path that cannot be one: refused before loading
    ├── GenerationError                     a pipeline call failed (e.g. out of GPU memory)
    ├── OutputError                         a file of a run could not be written (what was written stays)
    └── APIError                            talking to a Stable Diffusion API went wrong
        ├── APIConnectionError              could not connect, or the connection dropped
        │   └── APITimeoutError             no reply in time
        ├── ReplyError                      a 2xx reply that cannot be used (malformed, no image)
        │   └── ReplyTooLargeError          a reply or image past one of the client's Limits
        ├── ModerationError                 the service refused the prompt or filtered the image (Stability's
        │                                   CONTENT_FILTERED, Flux's Request/Content Moderated)
        ├── TaskFailedError                 a queued task (Flux) ended in Error, Failed or Task not found
        └── APIStatusError                  a non-2xx reply; carries status, request id, message
            ├── BadRequestError             400
            ├── AuthenticationError         401
            ├── PermissionDeniedError       403
            ├── NotFoundError               404
            ├── RequestTooLargeError        413
            ├── UnprocessableEntityError    422
            ├── RateLimitError              429
            └── ServerError                 5xx

The server (``sdkit serve``) refuses requests with two more:

    ValidationError
    └── InvalidRequestError                 a request body refused; carries the HTTP status and OpenAI code
    SdkitError
    └── ServerBusyError                     the generation queue is full (429, with a retry hint)

Messages never contain an API key: the client scrubs them before raising.
"""

from __future__ import annotations

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "GenerationError",
    "InvalidModelError",
    "InvalidRequestError",
    "MissingDependencyError",
    "ModelError",
    "ModerationError",
    "NotFoundError",
    "OutputError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReplyError",
    "ReplyTooLargeError",
    "RequestTooLargeError",
    "SdkitError",
    "ServerBusyError",
    "ServerError",
    "TaskFailedError",
    "UnprocessableEntityError",
    "ValidationError",
]


class SdkitError(Exception):
    """Root of every error sdkit raises on purpose."""


class ValidationError(SdkitError, ValueError):
    """A value was refused. ``field`` names it, ``value`` is what was given."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


class MissingDependencyError(SdkitError, ImportError):
    """An optional dependency is missing; the message names the install command."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{package} is not installed; install it with: pip install 'sdkit-lab[{extra}]'")


class ModelError(SdkitError):
    """A model could not be built, found or loaded."""


class InvalidModelError(ModelError, ValidationError):
    """A model name or path that cannot be a model sdkit loads (an unknown name, a missing path, a file,
    a folder that is not a diffusers pipeline), refused before any loading; the message says what was found."""


class GenerationError(SdkitError):
    """A pipeline call failed while generating (out of memory, a backend fault)."""


class OutputError(SdkitError):
    """A file of a run could not be written (no permission, disk full, read-only folder). What was
    written before stays; running again resumes."""


class APIError(SdkitError):
    """Something went wrong talking to an API."""


class APIConnectionError(APIError):
    """The server could not be reached, or the connection dropped."""


class APITimeoutError(APIConnectionError):
    """The server did not answer in time."""


class ReplyError(APIError):
    """A 2xx reply that cannot be used. ``raw`` keeps the reply's text."""

    def __init__(self, message: str, raw: str = "") -> None:
        self.raw = raw
        super().__init__(message)


class ReplyTooLargeError(ReplyError):
    """A reply, or an image in it, went past one of the client's limits (:class:`~sdkit.Limits`).
    ``limit`` names the limit and ``value`` is its setting; the message says how to raise it."""

    def __init__(self, message: str, *, limit: str, value: object, raw: str = "") -> None:
        self.limit = limit
        self.value = value
        super().__init__(message, raw)


class ModerationError(APIError):
    """The service refused the prompt or filtered the image it made. ``reason`` is the service's word
    for it (``CONTENT_FILTERED``, ``Request Moderated``, ``Content Moderated``, ``content_moderation``),
    ``request_id`` its id for the request when it gave one, ``raw`` the reply's text (key scrubbed)."""

    def __init__(self, message: str, *, reason: str, request_id: str | None = None, raw: str = "") -> None:
        self.reason = reason
        self.request_id = request_id
        self.raw = raw
        super().__init__(message)


class TaskFailedError(APIError):
    """A queued task ended without an image: ``status`` is its final status (``Error``, ``Failed``,
    ``Task not found``), ``task_id`` the service's id for it, ``raw`` the last reply (key scrubbed)."""

    def __init__(self, message: str, *, status: str, task_id: str | None = None, raw: str = "") -> None:
        self.status = status
        self.task_id = task_id
        self.raw = raw
        super().__init__(message)


class APIStatusError(APIError):
    """A non-2xx reply."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: object = None,
    ) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.message = message
        self.body = body
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"HTTP {status_code}{rid}: {message}")


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404."""


class RequestTooLargeError(APIStatusError):
    """413."""


class UnprocessableEntityError(APIStatusError):
    """422."""


class RateLimitError(APIStatusError):
    """429. ``retry_after`` is the server's hint in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(APIStatusError):
    """5xx."""


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP status (5xx → ServerError)."""
    if status_code >= 500:
        return ServerError
    return STATUS_ERRORS.get(status_code, APIStatusError)


class InvalidRequestError(ValidationError):
    """A request the server refuses: ``status`` is the HTTP status (400, 404, 413, 422),
    ``code`` OpenAI's error code; ``field`` becomes the error's ``param``."""

    def __init__(
        self, field: str | None, value: object, reason: str, *, status: int = 400, code: str = "invalid_value"
    ):
        self.status = status
        self.code = code
        super().__init__(field or "body", value, reason)
        self.field = field


class ServerBusyError(SdkitError):
    """The server's generation queue is full; ``retry_after`` is the hint in whole seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)
