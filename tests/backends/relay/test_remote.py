"""RemoteBackend behind the Backend interface, against a real HTTP server on loopback."""

import threading

import pytest

from sdkit import (
    Backend,
    FakeRelay,
    FakeReply,
    GenerationParams,
    GenerationResult,
    RemoteBackend,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from sdkit.backends.relay.fakerelay import fake_color

FAST = RetryPolicy(max_retries=0)


@pytest.fixture
def relay():
    with FakeRelay() as r:
        yield r


def backend_for(relay, name="chat", **kw):
    kw.setdefault("retry", FAST)
    return RemoteBackend(name, relay.url, api_key="sk-test", **kw)


def test_it_is_a_backend_and_generates_a_result_with_images_and_the_raw_reply(relay):
    backend = backend_for(relay)
    assert isinstance(backend, Backend) and backend.name == "chat"
    result = backend.generate(GenerationParams("a red circle", seed=5, num_images=2))
    assert isinstance(result, GenerationResult)
    assert len(result) == 2 and result.backend == "chat"
    assert [im.getpixel((1, 1)) for im in result.images] == [fake_color("a red circle")] * 2
    assert result.seeds == (None, None)  # not sent, so not known
    assert result.model == "stable-diffusion-api" and result.params.model == "stable-diffusion-api"
    details = result.details
    assert details["base_url"] == relay.url and details["api"] == "chat"
    assert len(details["raw_reply"]) == 2 and '"chat.completion"' in details["raw_reply"][0]
    assert "raw_reply" not in result.record(0)
    assert [r.json() for r in relay.api_requests] == [
        {"model": "stable-diffusion-api", "messages": [{"role": "user", "content": "a red circle"}]}
    ] * 2


def test_seeds_are_known_when_sent_as_sd_extras(relay):
    result = backend_for(relay, sd_extras=True).generate(
        GenerationParams("a cat", seed=41, num_images=2, negative_prompt="blur", width=64, height=128)
    )
    assert result.seeds == (41, 42)
    sent = sorted((r.json() for r in relay.api_requests), key=lambda b: b["seed"])
    assert [b["seed"] for b in sent] == [41, 42]
    assert sent[0]["negative_prompt"] == "blur" and sent[0]["size"] == "64x128"
    assert [im.getpixel((0, 0)) for im in result.images] == [fake_color("a cat", 41), fake_color("a cat", 42)]
    assert [item.seed for item in result] == [41, 42] and result[1].params.seed == 42


def test_images_backend_sends_n_in_one_request_or_one_per_seed_with_extras(relay):
    result = backend_for(relay, "images").generate(GenerationParams("a dog", num_images=3))
    assert len(result) == 3 and result.seeds == (None,) * 3
    assert [r.json().get("n") for r in relay.api_requests] == [3]
    result = backend_for(relay, "images", sd_extras=True, response_format="url").generate(
        GenerationParams("a dog", seed=7, num_images=2)
    )
    assert result.seeds == (7, 8)
    assert sorted(r.json()["seed"] for r in relay.api_requests[1:]) == [7, 8]
    assert all(u.startswith(relay.url) for u in result.details["image_urls"])


def test_the_model_sent_is_params_model_unless_it_is_an_embedded_one(relay):
    backend = backend_for(relay, model="sdxl-relay")
    assert backend.remote_model(GenerationParams("x")) == "sdxl-relay"
    assert backend.remote_model(GenerationParams("x", model="flux-dev")) == "flux-dev"
    backend.generate(GenerationParams("x", model="flux-dev"))
    assert relay.api_requests[0].json()["model"] == "flux-dev"


def test_generate_many_runs_concurrently_within_the_bound():
    with FakeRelay(delay=0.1) as relay:
        barrier = threading.Barrier(3, timeout=30)  # the first three replies wait until all three are in

        def together(request):
            barrier.wait()
            return relay.default_reply(request)

        relay.script(together, together, together)
        backend = backend_for(relay, max_concurrency=3)
        seen = []
        results = backend.generate_many(
            [GenerationParams(f"p{i}") for i in range(6)], on_result=lambda i, r: seen.append(i)
        )
    assert relay.max_in_flight == 3
    assert sorted(seen) == list(range(6))
    assert [r.params.prompt for r in results] == [f"p{i}" for i in range(6)]


def test_return_errors_keeps_finished_work_and_the_error_at_its_index(relay):
    relay.script(relay.default_reply, FakeReply.error(500, "boom"), relay.default_reply)
    calls = []
    results = backend_for(relay, max_concurrency=1).generate_many(
        [GenerationParams(p) for p in ("a", "b", "c")],
        on_result=lambda i, r: calls.append((i, type(r).__name__)),
        return_errors=True,
    )
    assert [type(r).__name__ for r in results] == ["GenerationResult", "ServerError", "GenerationResult"]
    assert calls == [(0, "GenerationResult"), (1, "ServerError"), (2, "GenerationResult")]


def test_without_return_errors_the_first_failure_is_raised_after_reporting_finished_work(relay):
    relay.script(relay.default_reply, FakeReply.error(500, "boom"))
    calls = []
    with pytest.raises(ServerError, match="boom"):
        backend_for(relay, max_concurrency=1).generate_many(
            [GenerationParams(p) for p in ("a", "b", "c")], on_result=lambda i, r: calls.append(i)
        )
    assert calls == [0, 1]
    assert len(relay.api_requests) == 2  # the third was never sent


@pytest.mark.parametrize(
    ("args", "kw", "field"),
    [
        (("local",), {}, "backend"),
        (("chat",), {"max_concurrency": 0}, "max_concurrency"),
        (("chat",), {"response_format": "url"}, "response_format"),
        (("images",), {"response_format": "png"}, "response_format"),
    ],
)
def test_bad_configuration_is_refused_by_name(relay, args, kw, field):
    with pytest.raises(ValidationError) as info:
        RemoteBackend(*args, base_url=relay.url, api_key="k", **kw)
    assert info.value.field == field


def test_generate_many_refuses_non_params(relay):
    with pytest.raises(ValidationError, match=r"params\[0\]"):
        backend_for(relay).generate_many(["a cat"])


def test_an_error_raised_by_on_result_stops_sending():
    def explode(index, result):
        raise RuntimeError("the callback failed")

    with FakeRelay(delay=0.3) as relay, pytest.raises(RuntimeError, match="callback failed"):
        backend_for(relay, max_concurrency=1).generate_many([GenerationParams(p) for p in "abcdef"], on_result=explode)
    # typically 2 (the one reported, the one already in flight); never all six
    assert len(relay.api_requests) < 6


def test_429_with_retry_after_1_then_200_gives_one_result_after_about_a_second(relay):
    relay.script(FakeReply.error(429, "slow down", retry_after=1))
    backend = backend_for(relay, retry=RetryPolicy(max_retries=2, initial_delay=0.01))
    result = backend.generate(GenerationParams("a cat"))
    first, second = relay.api_requests
    assert len(result) == 1 and result.details["attempts"] == [2]
    assert second.at - first.at >= 0.95


def test_limits_given_to_the_backend_bound_its_client():
    from sdkit import FakeRelay, Limits, ReplyTooLargeError

    with FakeRelay() as relay, RemoteBackend("chat", relay.url, api_key="", limits=Limits(max_reply_bytes=100)) as b:
        assert b.client.limits.max_reply_bytes == 100
        with pytest.raises(ReplyTooLargeError, match=r"max_reply_bytes=100; raise it with Client\(limits=Limits"):
            b.generate(GenerationParams("a cat", seed=1))


@pytest.mark.parametrize(
    ("api", "change", "field"),
    [  # the images API takes an init image (/v1/images/edits: tests/backends/relay/test_edits.py)
        ("chat", {"init_image": "sha256:" + "a" * 64}, "init_image"),
        *[
            (api, change, field)
            for api in ("chat", "images")
            for change, field in [
                ({"variation_seed": 3, "variation_strength": 0.5}, "variation_strength"),
                ({"hires_scale": 2}, "hires_scale"),
            ]
        ],
    ],
)
def test_what_the_api_cannot_send_is_refused_before_any_request(relay, api, change, field):
    from sdkit.backends.base import check

    backend = backend_for(relay, api)
    params = GenerationParams("a red circle", seed=1, **change)
    with pytest.raises(ValidationError) as info:
        check(backend, [params])
    assert info.value.field == field and f"the {api} API" in str(info.value)
    with pytest.raises(ValidationError):
        backend.generate(params)
    assert relay.api_requests == []
