"""The conformance suite (:mod:`.conformance`) run against every built-in backend and two written here
against the contract alone: ``local`` on the embedded ``tiny`` model, ``chat`` and ``images`` on a
fake relay serving real HTTP on loopback, and solid-colour backends registered through
:func:`sdkit.register_backend` (one declaring every capability, one declaring none)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

import sdkit
from sdkit import (
    Capabilities,
    FakeRelay,
    FakeReply,
    GenerationParams,
    GenerationResult,
    SdkitError,
    Timings,
    ValidationError,
)
from sdkit.backends.registry import unregister_backend
from sdkit.engine.planner import plan_batches

from .conformance import BackendConformance

SECRET = "sk-conformance-0123456789"

# --- local: the embedded tiny model ----------------------------------------------------------


class TestLocalConformance(BackendConformance):
    kind = "local"

    @property
    def expected_capabilities(self) -> Capabilities:
        from sdkit.backends.local.pipeline import batch_key

        return Capabilities(
            max_batch=3, batch_key=batch_key, loads=True, step_progress=True, regenerable=True, checks_params=True
        )

    def refused_params(self) -> GenerationParams:
        return GenerationParams("x", seed=1, model="tiny2")

    def base_options(self) -> dict[str, Any]:
        # threads pinned: one core each on a shared machine, and pixels that do not depend on the call's size
        return {"threads": 1, "max_batch": 3, "progress": False}

    def pixel_options(self) -> list[dict[str, Any]]:
        return [{"dtype": "bfloat16"}, {"memory": "t4"}, {"threads": 2}, {"threads": "auto"}, {"max_batch": 8}]

    def neutral_options(self) -> list[dict[str, Any]]:
        return [{"progress": True}]

    def bad_params(self) -> GenerationParams:
        return self.request("a model that is not there", model="no-such-model")


class TestLocalDefaultConformance(TestLocalConformance):
    """As users build it: threads chosen per call ("auto"), batches of up to 8."""

    @property
    def expected_capabilities(self) -> Capabilities:
        return replace(super().expected_capabilities, max_batch=8)

    def base_options(self) -> dict[str, Any]:
        return {"progress": False}

    def pixel_options(self) -> list[dict[str, Any]]:
        return [{"dtype": "bfloat16"}, {"memory": "t4"}, {"threads": 1}, {"max_batch": 3}]


# --- chat and images: a fake relay on loopback -----------------------------------------------

REFUSED = "conformance-refused"


class _RefusingRelay(FakeRelay):
    """Refuses any request mentioning :data:`REFUSED` with a 400 that echoes the key sent, as some relays do."""

    def default_reply(self, request):
        if request.method == "POST" and REFUSED.encode() in request.body:
            sent = request.headers.get("authorization", "")
            return FakeReply.error(400, f"refused {REFUSED!r} for {sent}")
        return super().default_reply(request)


class RelayConformance(BackendConformance):
    """The checks for a remote backend built with a key, SD extras (so seeds are known) and no retries."""

    secret = SECRET
    relay_url: str
    # checks_params: an init image, a variation seed or a hires pass is refused (the API has no field for them)
    expected_capabilities = Capabilities(checks_params=True)

    def refused_params(self) -> GenerationParams:
        return self.request().replace(hires_scale=2)

    @pytest.fixture(scope="class", autouse=True)
    def _relay(self, request):
        with _RefusingRelay(api_key=SECRET) as relay:
            request.cls.relay_url = relay.url
            yield relay

    def base_options(self) -> dict[str, Any]:
        return {
            "base_url": self.relay_url,
            "api_key": SECRET,
            "model": "conformance-model",
            "sd_extras": True,
            "max_retries": 0,
        }

    def close_backend(self, backend) -> None:
        backend.close()

    def pixel_options(self) -> list[dict[str, Any]]:
        return [{"base_url": "http://127.0.0.1:9/other"}, {"model": "other-model"}, {"sd_extras": False}]

    def neutral_options(self) -> list[dict[str, Any]]:
        return [{"api_key": "sk-another-key-9876543210"}, {"max_concurrency": 2}, {"timeout": 5.0}, {"max_retries": 3}]

    def credential_options(self) -> list[dict[str, Any]]:
        # The secret as a password in the URL only: httpx sends it as Basic auth and the relay answers 401,
        # echoing the header; where nothing listens, the connection error names the URL.
        key = "sk-another-key-9876543210"
        return [
            {"base_url": self.relay_url.replace("http://", f"http://conformance:{SECRET}@"), "api_key": key},
            {"base_url": f"http://conformance:{SECRET}@127.0.0.1:9/v1", "api_key": key},
        ]

    def bad_params(self) -> GenerationParams:
        return self.request(f"please {REFUSED}")

    def expected_model(self, params: GenerationParams) -> str:
        return "conformance-model"  # the requests ask for the embedded "tiny": the backend sends its own


class TestChatConformance(RelayConformance):
    kind = "chat"


class TestImagesConformance(RelayConformance):
    kind = "images"

    def pixel_options(self) -> list[dict[str, Any]]:
        return [*super().pixel_options(), {"response_format": "url"}]


class PlainRelayConformance(RelayConformance):
    """Without SD extras nothing but the prompt is sent, so the seeds are not known."""

    knows_seeds = False

    def base_options(self) -> dict[str, Any]:
        return {**super().base_options(), "sd_extras": False}

    def pixel_options(self) -> list[dict[str, Any]]:
        return [{"base_url": "http://127.0.0.1:9/other"}, {"model": "other-model"}, {"sd_extras": True}]


class TestPlainChatConformance(PlainRelayConformance):
    kind = "chat"


class TestPlainImagesConformance(PlainRelayConformance):
    kind = "images"  # num_images=2 goes out as one request with n=2


# --- stability and bfl: the providers' official formats, on loopback fakes ------------------------


class ProviderConformance(BackendConformance):
    """A provider backend on its fake, built with a key and no retries; the fake refuses :data:`REFUSED`
    with an error that echoes the key sent."""

    secret = SECRET
    expected_capabilities = Capabilities(checks_params=True)
    fake: Any
    fake_url: str

    @pytest.fixture(scope="class", autouse=True)
    def _fake(self, request):
        with type(self).fake(api_key=SECRET, refuse=[REFUSED]) as fake:
            request.cls.fake_url = fake.url
            yield fake

    def base_options(self) -> dict[str, Any]:
        return {"base_url": self.fake_url, "api_key": SECRET, "max_retries": 0}

    def close_backend(self, backend) -> None:
        backend.close()

    def neutral_options(self) -> list[dict[str, Any]]:
        return [{"api_key": "sk-another-key-9876543210"}, {"max_concurrency": 2}, {"timeout": 5.0}, {"max_retries": 3}]

    def credential_options(self) -> list[dict[str, Any]]:
        key = "sk-another-key-9876543210"
        return [
            {"base_url": self.fake_url.replace("http://", f"http://conformance:{SECRET}@"), "api_key": key},
            {"base_url": f"http://conformance:{SECRET}@127.0.0.1:9/v1", "api_key": key},
            {"api_key": SECRET + "-wrong"},  # refused: the fake's 401/403 echoes the key sent
        ]

    def bad_params(self) -> GenerationParams:
        return self.request(f"please {REFUSED}")


class TestStabilityConformance(ProviderConformance):
    kind = "stability"
    fake = sdkit.FakeStability

    def pixel_options(self) -> list[dict[str, Any]]:
        return [
            {"base_url": "http://127.0.0.1:9/sd"},
            {"model": "ultra"},
            {"model": "sd3.5-medium"},
            {"output_format": "webp"},
            {"style_preset": "anime"},
        ]

    def neutral_options(self) -> list[dict[str, Any]]:
        return [*super().neutral_options(), {"accept": "image"}]

    def expected_model(self, params: GenerationParams) -> str:
        return "core"

    def refused_params(self) -> GenerationParams:
        return self.request("a model Stability does not serve", model="dall-e-3")


class TestStabilityImageReplyConformance(TestStabilityConformance):
    """With ``Accept: image/*``: the bytes, the seed in a header."""

    def base_options(self) -> dict[str, Any]:
        return {**super().base_options(), "accept": "image"}

    def neutral_options(self) -> list[dict[str, Any]]:
        return [{"accept": "json"}, {"max_concurrency": 2}]


class TestBFLConformance(ProviderConformance):
    kind = "bfl"
    fake = sdkit.FakeBFL

    def base_options(self) -> dict[str, Any]:
        return {**super().base_options(), "poll_interval": 0.01}

    def pixel_options(self) -> list[dict[str, Any]]:
        return [
            {"base_url": "http://127.0.0.1:9/flux"},
            {"model": "flux-pro-1.1"},
            {"output_format": "jpeg"},
            {"safety_tolerance": 6},
            {"prompt_upsampling": True},
        ]

    def neutral_options(self) -> list[dict[str, Any]]:
        return [*super().neutral_options(), {"poll_interval": 0.05}, {"poll_timeout": 60.0}, {"auth": "x-key"}]

    def expected_model(self, params: GenerationParams) -> str:
        return "flux-dev"

    def refused_params(self) -> GenerationParams:
        return self.request("a model name that cannot be a URL path", model="flux/../admin")


# --- outside: backends written against the contract alone -------------------------------------

SOLID_MODELS = ("tiny", "solid")
PALETTES = ("rgb", "grey")
NATIVE = 64


def solid_colour(palette: str, prompt: str, seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{palette}\x00{prompt}\x00{seed}".encode()).digest()
    return (digest[0],) * 3 if palette == "grey" else (digest[0], digest[1], digest[2])


def solid_result(kind: str, palette: str, params: GenerationParams, load_s: float = 0.0) -> GenerationResult:
    from PIL import Image

    if params.model not in SOLID_MODELS:
        raise ValidationError("model", params.model, f"solid colours come from {', '.join(SOLID_MODELS)}")
    params = params.replace(width=params.width or NATIVE, height=params.height or NATIVE)
    size = (params.width, params.height)
    images = tuple(Image.new("RGB", size, solid_colour(palette, params.prompt, s)) for s in params.seeds)
    return GenerationResult(
        params=params,
        images=images,
        seeds=params.seeds,
        model=params.model,
        backend=kind,
        timings=Timings(load_s=load_s),
        details={"palette": palette},
    )


def solid_batch_key(params: GenerationParams) -> tuple:
    return (params.width, params.height, params.num_inference_steps)


class SolidBackend:
    """Paints each image one colour drawn from its prompt, seed and palette; declares every capability.
    ``calls`` lists the request indices of each call its last ``generate_many`` made."""

    name = "solid_conformance"

    def __init__(self, *, palette: str = "rgb", max_batch: int = 4, progress: bool = False) -> None:
        if palette not in PALETTES:
            raise ValidationError("palette", palette, f"must be one of {', '.join(PALETTES)}")
        self.palette = palette
        self.progress = progress
        self.capabilities = Capabilities(
            max_batch=max_batch, batch_key=solid_batch_key, loads=True, step_progress=True, regenerable=True
        )
        self.loaded: str | None = None
        self.calls: list[list[int]] = []

    def identity(self) -> dict[str, Any]:
        return {"palette": self.palette}

    def load(self, model: str) -> None:
        if model not in SOLID_MODELS:
            raise ValidationError("model", model, f"solid colours come from {', '.join(SOLID_MODELS)}")
        self.loaded = model

    def generate(self, params: GenerationParams, *, on_step=None) -> GenerationResult:
        return self.generate_many([params], on_step=on_step)[0]

    def generate_many(
        self, params: Sequence[GenerationParams], *, on_step=None, on_result=None, return_errors: bool = False
    ) -> list[GenerationResult | Exception]:
        results: list[Any] = [None] * len(params)
        self.calls = []
        for batch in plan_batches(params, self.capabilities):
            self.calls.append(batch)
            first = params[batch[0]]
            try:
                load_s = 0.0 if self.loaded == first.model else 0.5  # a pretend load, on the first call of a model
                done: list[Any] = [
                    solid_result(self.name, self.palette, params[i], load_s if i == batch[0] else 0.0) for i in batch
                ]
                self.loaded = first.model
                for step in range(1, first.num_inference_steps + 1):
                    if on_step is not None:
                        on_step(step, first.num_inference_steps)
            except SdkitError as exc:
                if not return_errors:
                    raise
                done = [exc] * len(batch)
            for i, outcome in zip(batch, done, strict=True):
                results[i] = outcome
                if on_result is not None:
                    on_result(i, outcome)
        return results


class BareSolidBackend:
    """The four members and nothing else: one request at a time, no capabilities declared."""

    name = "solid_bare_conformance"

    def __init__(self, *, palette: str = "rgb") -> None:
        self.palette = palette

    def identity(self) -> dict[str, Any]:
        return {"palette": self.palette}

    def generate(self, params: GenerationParams) -> GenerationResult:
        return solid_result(self.name, self.palette, params)

    def generate_many(self, params, *, on_result=None, return_errors=False):
        results: list[Any] = []
        for i, p in enumerate(params):
            try:
                outcome: Any = self.generate(p)
            except SdkitError as exc:
                if not return_errors:
                    raise
                outcome = exc
            results.append(outcome)
            if on_result is not None:
                on_result(i, outcome)
        return results


class OutsideConformance(BackendConformance):
    """Registers ``factory`` as ``kind`` for the class, through the public API, and forgets it after."""

    factory: Any

    @pytest.fixture(scope="class", autouse=True)
    def _registered(self):
        sdkit.register_backend(self.kind, type(self).factory)
        yield
        unregister_backend(self.kind)

    def pixel_options(self) -> list[dict[str, Any]]:
        return [{"palette": "grey"}]

    def bad_params(self) -> GenerationParams:
        return self.request("from a model it does not have", model="no-such-model")


class TestOutsideConformance(OutsideConformance):
    kind = "solid_conformance"
    factory = SolidBackend
    expected_capabilities = Capabilities(
        max_batch=4, batch_key=solid_batch_key, loads=True, step_progress=True, regenerable=True
    )

    def pixel_options(self) -> list[dict[str, Any]]:
        return [*super().pixel_options(), {"max_batch": 2}]

    def neutral_options(self) -> list[dict[str, Any]]:
        return [{"progress": True}]

    def observed_calls(self, backend, results, order) -> list[list[int]]:
        return backend.calls


class TestBareOutsideConformance(OutsideConformance):
    kind = "solid_bare_conformance"
    factory = BareSolidBackend


def test_an_outside_kind_is_gone_once_unregistered():
    sdkit.register_backend("solid_conformance", SolidBackend)
    try:
        assert "solid_conformance" in sdkit.backend_kinds()
        assert sdkit.create_backend("solid_conformance", palette="grey").palette == "grey"
        with pytest.raises(ValidationError, match="colour"):
            sdkit.create_backend("solid_conformance", colour="red")
    finally:
        unregister_backend("solid_conformance")
    assert "solid_conformance" not in sdkit.backend_kinds()
    with pytest.raises(ValidationError, match="solid_conformance"):
        sdkit.create_backend("solid_conformance")
