"""The bfl backend over real loopback HTTP against FakeBFL: the JSON body and x-key, polling Pending → Ready,
the signed sample fetched at once without the key, each terminal status and HTTP error as a typed error,
a total time limit, and a bound on the tasks in flight."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

import sdkit
from sdkit import FakeBFL, FakeReply, GenerationParams
from sdkit.backends.providers.bfl import flux_body
from sdkit.backends.relay.fakerelay import fake_png

KEY = "bfl-planted-key-0123456789"


def backend(fake, **options):
    options = {"base_url": fake.url, "api_key": KEY, "max_retries": 0, "poll_interval": 0.01, **options}
    return sdkit.create_backend("bfl", **options)


@pytest.fixture
def fake():
    final = {"moderated-request": "Request Moderated", "moderated-content": "Content Moderated"}
    final |= {"task-error": "Error", "task-failed": "Failed", "task-lost": "Task not found"}
    with FakeBFL(api_key=KEY, pending_polls=2, final=final) as f:
        yield f


def test_the_request_is_json_with_the_key_in_x_key(fake):
    with backend(fake, auth="x-key", safety_tolerance=2) as b:
        b.generate(GenerationParams("a lighthouse", seed=42, width=768, height=1024))
    submit = fake.api_requests[0]
    assert submit.path == "/v1/flux-dev"
    assert submit.headers["x-key"] == KEY and "authorization" not in submit.headers
    assert submit.headers["content-type"] == "application/json"
    assert submit.json() == {
        "prompt": "a lighthouse",
        "width": 768,
        "height": 1024,
        "seed": 42,
        "output_format": "png",
        "safety_tolerance": 2,
    }


def test_a_relay_gets_both_headers_under_its_prefix(fake):
    with backend(fake, base_url=fake.url + "/flux") as b:
        assert b.generate(GenerationParams("a lighthouse", seed=1)).images  # polled at the polling_url given
    submit = fake.api_requests[0]
    assert submit.path == "/flux/v1/flux-dev"
    assert submit.headers["x-key"] == KEY and submit.headers["authorization"] == f"Bearer {KEY}"


def test_ultra_models_send_an_aspect_ratio_instead_of_a_size():
    body = flux_body(GenerationParams("p", seed=1, width=1024, height=576), 1, model="flux-pro-1.1-ultra")
    assert body["aspect_ratio"] == "16:9" and "width" not in body


def test_polls_pending_until_ready_and_fetches_the_sample_without_the_key(fake):
    with backend(fake) as b:
        result = b.generate(GenerationParams("a lighthouse", seed=7, width=64, height=128))
    polls = [r for r in fake.requests if "get_result" in r.path]
    assert len(polls) == 3  # Pending, Pending, Ready
    assert all(r.headers["x-key"] == KEY for r in polls)
    (sample,) = [r for r in fake.requests if r.path.startswith("/files/")]
    assert "sig=" in sample.path
    assert "x-key" not in sample.headers and "authorization" not in sample.headers
    expected = Image.open(io.BytesIO(fake_png("a lighthouse", 7, (64, 128)))).convert("RGB")
    assert result.images[0].tobytes() == expected.tobytes()
    assert result.seeds == (7,) and result.details["polls"] == [3]
    assert "sig=" not in str(result.details["image_url"])  # the signature stays out of records
    assert len(result.details["raw_reply"]) == 2  # the submission's reply and the Ready one


def test_the_seed_flux_reports_is_recorded():
    with FakeBFL(pending_polls=0) as fake:
        fake.script(FakeReply.json({"id": "t1", "polling_url": fake.url + "/v1/get_result?id=t1"}))
        fake.tasks["t1"] = {"prompt": "p", "seed": 123, "size": (64, 64), "pending": 0, "final": "Ready"}
        with backend(fake, api_key="") as b:
            result = b.generate(GenerationParams("p", seed=5))
    assert result.seeds == (123,)
    assert result.details["seeds_sent"] == [5]


@pytest.mark.parametrize(
    ("prompt", "error", "status"),
    [
        ("moderated-request", sdkit.ModerationError, "Request Moderated"),
        ("moderated-content", sdkit.ModerationError, "Content Moderated"),
        ("task-error", sdkit.TaskFailedError, "Error"),
        ("task-failed", sdkit.TaskFailedError, "Failed"),
        ("task-lost", sdkit.TaskFailedError, "Task not found"),
    ],
)
def test_every_terminal_status_is_a_typed_error(fake, prompt, error, status):
    with backend(fake) as b, pytest.raises(error) as caught:
        b.generate(GenerationParams(prompt, seed=1))
    assert status in str(caught.value)
    assert (caught.value.reason if error is sdkit.ModerationError else caught.value.status) == status


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (402, sdkit.APIStatusError),
        (403, sdkit.PermissionDeniedError),
        (422, sdkit.UnprocessableEntityError),
        (429, sdkit.RateLimitError),
        (500, sdkit.ServerError),
    ],
)
def test_http_errors_are_typed(fake, status, error):
    fake.script(FakeReply.json({"detail": [{"loc": ["body"], "msg": f"status {status} said no"}]}, status=status))
    with backend(fake) as b, pytest.raises(error) as caught:
        b.generate(GenerationParams("a lighthouse", seed=1))
    assert caught.value.status_code == status and f"status {status} said no" in str(caught.value)


def test_a_429_with_retry_after_is_retried(fake):
    fake.script(FakeReply.json({"detail": "busy"}, status=429, headers={"Retry-After": "0.05"}))
    with backend(fake, max_retries=1) as b:
        result = b.generate(GenerationParams("a lighthouse", seed=1))
    assert result.images


def test_a_task_not_ready_in_poll_timeout_is_a_timeout(fake):
    fake.pending_polls = 10_000
    with backend(fake, poll_timeout=0.3, poll_interval=0.05) as b, pytest.raises(sdkit.APITimeoutError) as caught:
        start = time.monotonic()
        b.generate(GenerationParams("a lighthouse", seed=1))
    assert time.monotonic() - start < 2 and "poll_timeout=0.3" in str(caught.value)


def test_the_tasks_in_flight_are_bounded(fake):
    fake.delay = 0.05
    with backend(fake, max_concurrency=2) as b:
        results = b.generate_many([GenerationParams(f"p{i}", seed=i) for i in range(6)])
    assert len(results) == 6 and fake.max_in_flight <= 2


def test_a_polling_url_on_another_host_gets_no_key():
    with FakeBFL(api_key=KEY, polling_host="localhost", poll_needs_key=False) as fake:
        with backend(fake) as b:
            b.generate(GenerationParams("a lighthouse", seed=1))
        polls = [r for r in fake.requests if "get_result" in r.path]
    assert polls and all("x-key" not in r.headers and "authorization" not in r.headers for r in polls)


def test_a_polling_url_that_is_not_http_is_refused(fake):
    fake.script(FakeReply.json({"id": "t", "polling_url": "file:///etc/passwd"}))
    with backend(fake) as b, pytest.raises(sdkit.ReplyError, match="polling_url"):
        b.generate(GenerationParams("a lighthouse", seed=1))


def test_the_key_comes_from_bfl_api_key(fake, monkeypatch):
    monkeypatch.setenv("BFL_API_KEY", KEY)
    with sdkit.create_backend("bfl", base_url=fake.url, poll_interval=0.01) as b:
        assert b.generate(GenerationParams("a lighthouse", seed=1)).images


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"output_format": "webp"}, "output_format"),
        ({"safety_tolerance": 9}, "safety_tolerance"),
        ({"auth": "basic"}, "auth"),
        ({"poll_timeout": 0}, "poll_timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_options_are_refused_by_name(fake, options, field):
    with pytest.raises(sdkit.ValidationError) as caught:
        backend(fake, **options)
    assert caught.value.field == field
