"""The stability backend over real loopback HTTP against FakeStability: the request as Stability documents
it, the image and the seed the service reports, moderation and error bodies as typed errors, retries."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

import sdkit
from sdkit import FakeReply, FakeStability, GenerationParams
from sdkit.backends.providers.fakes import parse_multipart
from sdkit.backends.providers.http import multipart
from sdkit.backends.providers.stability import aspect_ratio, stability_fields
from sdkit.backends.relay.fakerelay import fake_png

KEY = "sk-stability-planted-0123456789"


@pytest.fixture
def fake():
    with FakeStability(api_key=KEY, filter=["forbidden"]) as f:
        yield f


def backend(fake, **options):
    return sdkit.create_backend("stability", base_url=fake.url, api_key=KEY, max_retries=0, **options)


def form(request) -> dict:
    return parse_multipart(request.body, request.headers["content-type"])


def test_aspect_ratio_is_the_nearest_documented_one():
    assert aspect_ratio(512, 512) == "1:1"
    assert aspect_ratio(1024, 576) == "16:9"
    assert aspect_ratio(512, 768) == "2:3"
    assert aspect_ratio(640, 512) == "5:4"
    assert aspect_ratio(None, None) == "1:1"


def test_multipart_round_trips_text_and_files():
    ctype, body = multipart([("prompt", "a “quoted” lighthouse"), ("image", b"\x89PNG...")], boundary="b0")
    assert ctype == "multipart/form-data; boundary=b0"
    assert parse_multipart(body, ctype) == {"prompt": "a “quoted” lighthouse", "image": b"\x89PNG..."}


def test_the_request_is_multipart_with_bearer_and_the_documented_fields(fake):
    params = GenerationParams("a lighthouse", negative_prompt="fog", seed=42, width=1024, height=576)
    with backend(fake, style_preset="photographic") as b:
        b.generate(params)
    (request,) = fake.api_requests
    assert request.path == "/v2beta/stable-image/generate/core"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/json"
    assert form(request) == {
        "prompt": "a lighthouse",
        "negative_prompt": "fog",
        "aspect_ratio": "16:9",
        "seed": "42",
        "output_format": "png",
        "style_preset": "photographic",
    }


def test_sd3_models_go_to_the_sd3_endpoint_with_model_and_mode(fake):
    with backend(fake, model="sd3.5-large-turbo") as b:
        b.generate(GenerationParams("a lighthouse", seed=1))
    (request,) = fake.api_requests
    assert request.path.endswith("/generate/sd3")
    fields = form(request)
    assert (fields["model"], fields["mode"]) == ("sd3.5-large-turbo", "text-to-image")


def test_image_to_image_sends_the_image_and_strength_without_aspect_ratio(fake, tmp_path):
    init = tmp_path / "init.png"
    init.write_bytes(fake_png("init"))
    with backend(fake, model="sd3.5-medium", image=str(init), strength=0.6) as b:
        b.generate(GenerationParams("a lighthouse", seed=1))
    fields = form(fake.api_requests[0])
    assert fields["mode"] == "image-to-image" and fields["strength"] == "0.6"
    assert fields["image"] == init.read_bytes() and "aspect_ratio" not in fields


def test_the_image_and_the_seed_are_recorded(fake):
    with backend(fake) as b:
        result = b.generate(GenerationParams("a lighthouse", seed=9, num_images=2, width=64, height=64))
    assert result.seeds == (9, 10)
    expected = fake_png("a lighthouse", 9)
    assert result.images[0].tobytes() == Image.open(io.BytesIO(expected)).convert("RGB").tobytes()
    assert result.details["finish_reason"] == ["SUCCESS", "SUCCESS"]
    raw = json.loads(result.details["raw_reply"][0])
    assert base64.b64decode(raw["image"]) == expected and raw["seed"] == 9


def test_seed_zero_asks_for_a_random_seed_and_records_the_one_the_service_chose(fake):
    with backend(fake) as b:
        result = b.generate(GenerationParams("a lighthouse", seed=0))
    assert result.params.seed == 0
    assert result.seeds[0] not in (None, 0)
    assert result.record(0)["seed"] == result.seeds[0]


def test_accept_image_reads_the_bytes_and_the_seed_and_finish_reason_headers(fake):
    with backend(fake, accept="image") as b:
        result = b.generate(GenerationParams("a lighthouse", seed=0))
    assert fake.api_requests[0].headers["accept"] == "image/*"
    assert result.seeds[0] and result.details["finish_reason"] == ["SUCCESS"]
    assert result.details["raw_reply"][0].startswith(b"\x89PNG")


@pytest.mark.parametrize("accept", ["json", "image"])
def test_content_filtered_is_a_moderation_error(fake, accept):
    with backend(fake, accept=accept) as b, pytest.raises(sdkit.ModerationError) as caught:
        b.generate(GenerationParams("something forbidden", seed=1))
    assert caught.value.reason == "CONTENT_FILTERED"


@pytest.mark.parametrize(
    ("status", "name", "error"),
    [
        (400, "bad_request", sdkit.BadRequestError),
        (401, "unauthorized", sdkit.AuthenticationError),
        (404, "not_found", sdkit.NotFoundError),
        (413, "payload_too_large", sdkit.RequestTooLargeError),
        (422, "invalid_prompts", sdkit.UnprocessableEntityError),
        (500, "internal_error", sdkit.ServerError),
    ],
)
def test_error_bodies_map_onto_the_error_tree(fake, status, name, error):
    fake.script(FakeStability.error(status, name, f"the {name} reason"))
    with backend(fake) as b, pytest.raises(error) as caught:
        b.generate(GenerationParams("a lighthouse", seed=1))
    assert caught.value.status_code == status
    assert f"{name}: the {name} reason" in str(caught.value)
    assert caught.value.request_id == f"fake-{name}"


def test_a_content_moderation_403_is_a_moderation_error(fake):
    fake.script(FakeStability.error(403, "content_moderation", "Your request was flagged"))
    with backend(fake) as b, pytest.raises(sdkit.ModerationError) as caught:
        b.generate(GenerationParams("a lighthouse", seed=1))
    assert caught.value.reason == "content_moderation"


def test_429_with_retry_after_is_retried_then_succeeds(fake):
    fake.script(
        FakeReply.json(
            {"id": "r", "name": "rate_limit", "errors": ["slow down"]}, status=429, headers={"Retry-After": "0.05"}
        )
    )
    b = sdkit.create_backend("stability", base_url=fake.url, api_key=KEY, max_retries=2)
    with b:
        result = b.generate(GenerationParams("a lighthouse", seed=1))
    assert result.details["attempts"] == [2]
    assert fake.api_requests[1].at - fake.api_requests[0].at >= 0.05


def test_a_relay_prefix_goes_in_the_base_url(fake):
    with sdkit.create_backend("stability", base_url=fake.url + "/sd", api_key=KEY) as b:
        b.generate(GenerationParams("a lighthouse", seed=1))
    assert fake.api_requests[0].path == "/sd/v2beta/stable-image/generate/core"


def test_the_key_comes_from_stability_api_key_then_sdkit_api_key(fake, monkeypatch):
    monkeypatch.setenv("SDKIT_API_KEY", "sk-generic-000000000000")
    monkeypatch.setenv("STABILITY_API_KEY", KEY)
    with sdkit.create_backend("stability", base_url=fake.url) as b:
        b.generate(GenerationParams("a lighthouse", seed=1))
    monkeypatch.delenv("STABILITY_API_KEY")
    with (
        sdkit.create_backend("stability", base_url=fake.url, max_retries=0) as b,
        pytest.raises(sdkit.AuthenticationError) as caught,
    ):
        b.generate(GenerationParams("a lighthouse", seed=1))
    assert fake.api_requests[-1].headers["authorization"] == "Bearer sk-generic-000000000000"
    assert "sk-generic-000000000000" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"model": "dall-e-3"}, "model"),
        ({"output_format": "gif"}, "output_format"),
        ({"accept": "text"}, "accept"),
        ({"style_preset": "watercolour"}, "style_preset"),
        ({"strength": 0.5}, "strength"),
        ({"image": "/no/such/file.png", "strength": 0.5}, "image"),
    ],
)
def test_bad_options_are_refused_by_name(fake, options, field):
    with pytest.raises(sdkit.ValidationError) as caught:
        backend(fake, **options)
    assert caught.value.field == field


def test_check_refuses_before_any_request(fake):
    with backend(fake) as b:
        for params, field in [
            (GenerationParams("x", seed=1, model="dall-e-3"), "model"),
            (GenerationParams("x", seed=2**32 - 1), "seed"),
            (GenerationParams("x" * 10_001, seed=1), "prompt"),
        ]:
            with pytest.raises(sdkit.ValidationError) as caught:
                b.check([params])
            assert caught.value.field == field
    assert fake.api_requests == []


def test_fields_are_pure_and_leave_out_what_is_not_set():
    fields = dict(stability_fields(GenerationParams("p", seed=3), 3, model="ultra"))
    assert fields == {"prompt": "p", "aspect_ratio": "1:1", "seed": "3", "output_format": "png"}
