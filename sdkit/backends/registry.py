"""The backend registry: a kind's name → the factory that builds it.

The built-in kinds register through the same :func:`register_backend` as anyone else's, and installed
packages add kinds through the entry-point group ``sdkit.backends`` (each entry point names a factory;
its name is the kind)::

    [project.entry-points."sdkit.backends"]
    solid = "mypackage:SolidBackend"

The CLI (``--backend KIND``), study specs (``backend: KIND`` with ``backend_options``), the server and
PromptLab build backends through :func:`create_backend` and offer :func:`backend_kinds`. Nothing is
imported until a kind is asked for: the built-ins are registered by dotted path and loaded on first use.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from typing import Any

from sdkit.errors import SdkitError, ValidationError
from sdkit.suggestions import did_you_mean

__all__ = [
    "ENTRY_POINT_GROUP",
    "backend_kinds",
    "backend_options",
    "create_backend",
    "register_backend",
    "unregister_backend",
]

ENTRY_POINT_GROUP = "sdkit.backends"

#: The built-in kinds, registered on first use like any plugin (dotted paths, imported when built).
_BUILTINS: dict[str, str] = {
    "local": "sdkit.backends.local:create",
    "chat": "sdkit.backends.relay:create_chat",
    "images": "sdkit.backends.relay:create_images",
    "stability": "sdkit.backends.providers:create_stability",
    "bfl": "sdkit.backends.providers:create_bfl",
}

Factory = Callable[..., Any]

_factories: dict[str, Factory | str] = {}
_loaded = False
_lock = threading.Lock()


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        for kind, target in _BUILTINS.items():
            _factories.setdefault(kind, target)
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _factories.setdefault(ep.name, ep.value)
        _loaded = True


def register_backend(kind: str, factory: Factory | str, *, replace: bool = False) -> None:
    """Make ``kind`` buildable: ``factory(**options)`` (or ``"module:attr"`` naming one) returns a backend
    whose ``name`` is ``kind``. Registering a taken kind is refused unless ``replace=True``."""
    if not isinstance(kind, str) or not kind.isidentifier() or kind != kind.lower():
        raise ValidationError("kind", kind, "must be a lower-case name such as 'local' or 'my_service'")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise ValidationError("factory", factory, "must be callable or a 'module:attribute' path")
    _ensure_loaded()
    with _lock:
        if kind in _factories and not replace:
            raise ValidationError("kind", kind, "is already registered; pass replace=True to replace it")
        _factories[kind] = factory


def unregister_backend(kind: str) -> None:
    """Forget ``kind`` (a built-in comes back on the next :func:`register_backend` with ``replace``)."""
    _ensure_loaded()
    with _lock:
        _factories.pop(kind, None)


def backend_kinds() -> tuple[str, ...]:
    """Every kind that :func:`create_backend` can build, built-ins first."""
    _ensure_loaded()
    builtin = [k for k in _BUILTINS if k in _factories]
    return (*builtin, *sorted(k for k in _factories if k not in _BUILTINS))


def _resolve(kind: str) -> Factory:
    target = _factories[kind]
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SdkitError(f"backend kind {kind!r} could not be loaded from {target!r}: {exc}") from exc
    with _lock:
        _factories[kind] = obj
    return obj


def create_backend(kind: str, /, **options: Any) -> Any:
    """A backend of ``kind`` built with ``options`` (for example ``create_backend("local", threads=1)`` or
    ``create_backend("images", base_url=…)``). An unknown kind or option is refused, naming it."""
    _require(kind)
    factory = _resolve(kind)
    _check_options(kind, options)
    backend = factory(**options)
    made = getattr(backend, "name", None)
    if made != kind:
        raise SdkitError(f"the factory of backend kind {kind!r} made a backend named {made!r}")
    return backend


def backend_options(kind: str) -> tuple[str, ...] | None:
    """The options ``create_backend(kind, …)`` takes, as its factory declares them (None: any)."""
    _require(kind)
    try:
        params = inspect.signature(_resolve(kind)).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def _require(kind: str) -> None:
    _ensure_loaded()
    if kind not in _factories:
        hint = did_you_mean(str(kind), backend_kinds())
        known = "known: " + ", ".join(backend_kinds())
        raise ValidationError("backend", kind, f"is not a backend kind; {hint or known}")


def _check_options(kind: str, options: dict[str, Any]) -> None:
    known = backend_options(kind)
    if known is None:
        return
    for name in options:
        if name not in known:
            hint = did_you_mean(name, known)
            raise ValidationError(
                name,
                options[name],
                f"is not an option of backend {kind!r}; {hint or 'its options: ' + ', '.join(known)}",
            )
