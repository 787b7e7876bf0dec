"""A prompt study's spec: the YAML a person writes, checked key by key.

Pure: :func:`parse_study_spec` takes the YAML text (or an already-loaded mapping) and returns a
frozen :class:`StudySpec`; every unknown key or bad value is refused with its path
(``params.cfg``, ``axes.x``, ``seeds[1]``) in the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sdkit.errors import ValidationError
from sdkit.params import DEFAULT_MODEL, MAX_SEED, GenerationParams
from sdkit.suggestions import did_you_mean

__all__ = ["StudySpec", "parse_study_spec"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOP_KEYS = (
    "name",
    "description",
    "backend",
    "backend_options",
    "base_url",
    "sd_extras",
    "model",
    "params",
    "axes",
    "seeds",
    "batch",
    "threads",
    "portable",
    "expand",
    "executor",
)
#: What a study's ``expand`` key may set: the chat model that makes a ``prompt_expand=N`` axis.
_EXPAND_KEYS = ("model", "base_url", "system_prompt", "temperature")
_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class StudySpec:
    """A study: base parameters, up to three axes in A1111 syntax, the seeds of every cell, and
    how it runs (backend, batching, torch threads, portable mode) so that ``verify`` can run it the same way."""

    name: str
    params: GenerationParams
    axes: Mapping[str, str] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    backend: str = "local"
    base_url: str | None = None
    description: str = ""
    batch: bool = True
    threads: int | Literal["auto"] | None = None
    sd_extras: bool = False
    portable: bool = False
    #: Further options of the backend kind (``create_backend(backend, **backend_options)``).
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    #: The chat model behind a ``prompt_expand=N`` axis (``model``, ``base_url``, ``system_prompt``,
    #: ``temperature``; see :func:`sdkit.expand_prompt`).
    expand: Mapping[str, Any] = field(default_factory=dict)
    #: Who makes the images: ``in-process`` (None, the default) or ``ray``; it changes no pixel.
    executor: str | None = None

    def options(self) -> dict[str, Any]:
        """Everything the spec says about its backend, as ``create_backend`` options: ``backend_options``
        plus the keys with their own names (``base_url``, ``sd_extras``, ``threads``, ``portable``) where set."""
        options = dict(self.backend_options)
        if self.base_url is not None:
            options["base_url"] = self.base_url
        if self.sd_extras:
            options["sd_extras"] = True
        if self.threads is not None:
            options["threads"] = self.threads
        if self.portable:
            options["portable"] = True
        return options

    def with_cpu(self, *, threads: int | Literal["auto"] | None = None, portable: bool = False) -> StudySpec:
        """The same study with these CPU settings (from the command line)."""
        spec = replace(self, threads=threads if threads is not None else self.threads, portable=portable)
        _check_cpu(spec.backend, spec.threads, spec.portable)
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec, as YAML/JSON-ready data (the form written into a run folder)."""
        from sdkit.backends.registry import backend_options

        params = {k: v for k, v in self.params.to_dict().items() if k not in ("seed", "num_images", "model")}
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "backend": self.backend,
            "base_url": self.base_url,
            "model": self.params.model,
            "params": params,
            "axes": dict(self.axes),
            "seeds": list(self.seeds),
            "batch": self.batch,
            "threads": self.threads,
            "sd_extras": self.sd_extras if "sd_extras" in (backend_options(self.backend) or ()) else None,
            "portable": True if self.portable else None,  # absent when off, as in folders made before it existed
            "backend_options": dict(self.backend_options) or None,
            "expand": dict(self.expand) or None,  # absent unless set, as in folders made before it existed
            "executor": self.executor,  # absent in-process, as in folders made before it existed
        }
        return {k: v for k, v in out.items() if v is not None and v != ""}


def _fail(path: str, value: object, reason: str) -> ValidationError:
    return ValidationError(path, value, reason)


def _mapping(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, value, "must be a mapping")
    return value


def parse_study_spec(source: str | Mapping[str, Any]) -> StudySpec:
    """Parse and check a study spec from YAML text or a mapping."""
    if isinstance(source, str):
        import yaml

        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise ValidationError("spec", source[:80], f"is not valid YAML: {exc}") from None
    else:
        data = source
    data = _mapping("spec", data)
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        hint = did_you_mean(str(unknown[0]), _TOP_KEYS)
        raise _fail(str(unknown[0]), data[unknown[0]], f"unknown key; {hint or 'known: ' + ', '.join(_TOP_KEYS)}")

    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail("name", name, "is required: letters, digits, '.', '_' or '-' (a folder name)")

    from sdkit.backends.registry import backend_options as options_of

    backend = data.get("backend", "local")
    if not isinstance(backend, str):
        raise _fail("backend", backend, "must be a backend kind such as local, chat or images")
    accepted = options_of(backend)  # refuses an unknown kind, naming the known ones
    extra = dict(_mapping("backend_options", data.get("backend_options") or {}))
    for key in extra:
        if key in _TOP_KEYS:
            raise _fail(f"backend_options.{key}", extra[key], f"set it with the top-level '{key}' key")
    given = {k: data[k] for k in ("base_url", "sd_extras", "threads", "portable") if data.get(k) not in (None, False)}
    for key, value in {**given, **extra}.items():
        if accepted is not None and key not in accepted:
            where = key if key in given else f"backend_options.{key}"
            hint = did_you_mean(str(key), accepted) if key in extra else ""
            raise _fail(
                where,
                value,
                f"is not an option of backend {backend!r}; {hint or 'its options: ' + ', '.join(accepted)}",
            )
    base_url = data.get("base_url")
    if (
        accepted is not None
        and "base_url" in accepted
        and not (isinstance(base_url, str) and base_url.startswith(("http://", "https://")))
    ):
        raise _fail(
            "base_url", base_url, f"an http(s) URL is required with backend {backend} (a study records where it ran)"
        )

    params_in = dict(_mapping("params", data.get("params", {})))
    for key in ("seed", "num_images", "model"):
        if key in params_in:
            where = {"seed": "seeds", "num_images": "seeds", "model": "model"}[key]
            raise _fail(f"params.{key}", params_in[key], f"set it with the top-level '{where}' key")
    model = data.get("model", DEFAULT_MODEL)
    try:
        params = GenerationParams.from_dict({**params_in, "model": model, "seed": 0})
    except ValidationError as exc:
        field_path = "model" if exc.field == "model" else f"params.{exc.field}"
        raise _fail(field_path, exc.value, exc.reason) from None

    axes_in = _mapping("axes", data.get("axes", {}) or {})
    axes: dict[str, str] = {}
    for key, value in axes_in.items():
        if key not in _AXES:
            hint = did_you_mean(str(key), _AXES)
            raise _fail(f"axes.{key}", value, f"unknown axis; {hint + ' ' if hint else ''}use x, y and z")
        if not isinstance(value, str) or "=" not in value:
            raise _fail(f"axes.{key}", value, 'must look like "parameter=values", e.g. "guidance_scale=1,4,7.5"')
        axes[key] = value
    if ("z" in axes and "y" not in axes) or ("y" in axes and "x" not in axes):
        raise _fail("axes", dict(axes_in), "fill x before y, and y before z")

    seeds_in = data.get("seeds", [0])
    if isinstance(seeds_in, int) and not isinstance(seeds_in, bool):
        seeds_in = [seeds_in]
    if not isinstance(seeds_in, list) or not seeds_in:
        raise _fail("seeds", seeds_in, "must be a seed or a non-empty list of seeds")
    for i, s in enumerate(seeds_in):
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED:
            raise _fail(f"seeds[{i}]", s, f"must be an integer between 0 and {MAX_SEED}")
    if len(set(seeds_in)) != len(seeds_in):
        raise _fail("seeds", seeds_in, "must not repeat a seed")

    batch = data.get("batch", True)
    if not isinstance(batch, bool):
        raise _fail("batch", batch, "must be true or false")
    threads = data.get("threads")
    portable = data.get("portable", False)
    _check_cpu(backend, threads, portable)
    sd_extras = data.get("sd_extras", False)
    if not isinstance(sd_extras, bool):
        raise _fail("sd_extras", sd_extras, "must be true or false")
    expand = dict(_mapping("expand", data.get("expand") or {}))
    for key, value in expand.items():
        if key not in _EXPAND_KEYS:
            hint = did_you_mean(str(key), _EXPAND_KEYS)
            raise _fail(f"expand.{key}", value, f"unknown key; {hint or 'known: ' + ', '.join(_EXPAND_KEYS)}")
        if key == "temperature":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 2:
                raise _fail("expand.temperature", value, "must be a number from 0 to 2")
        elif not isinstance(value, str) or not value.strip():
            raise _fail(f"expand.{key}", value, "must be a text")
    if "base_url" in expand and not expand["base_url"].startswith(("http://", "https://")):
        raise _fail("expand.base_url", expand["base_url"], "must start with http:// or https://")
    executor = data.get("executor")
    if executor not in (None, "in-process", "ray"):
        raise _fail("executor", executor, "must be in-process or ray")
    if executor == "in-process":
        executor = None
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail("description", description, "must be text")

    return StudySpec(
        name=name,
        params=params,
        axes=axes,
        seeds=tuple(seeds_in),
        backend=backend,
        base_url=base_url,
        description=description,
        batch=batch,
        threads=threads,
        sd_extras=sd_extras,
        portable=portable,
        backend_options=extra,
        expand=expand,
        executor=executor,
    )


def _check_cpu(backend: str, threads: object, portable: object) -> None:
    counted = isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1
    if threads is not None and threads != "auto" and not counted:
        raise _fail("threads", threads, 'must be "auto" or a positive integer')
    if not isinstance(portable, bool):
        raise _fail("portable", portable, "must be true or false")
    from sdkit.backends.registry import backend_options

    accepted = backend_options(backend)
    for key, value in (("threads", threads), ("portable", portable)):
        if value not in (None, False) and accepted is not None and key not in accepted:
            raise _fail(key, value, f"is not an option of backend {backend!r}")
    if portable and threads not in (None, "auto", 1):
        raise _fail("threads", threads, "portable mode runs on one thread; leave threads out or set it to 1")
