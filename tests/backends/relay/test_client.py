"""The clients against a real HTTP server on loopback (sdkit.FakeRelay)."""

import asyncio
import io
import socket
import time

import pytest
from PIL import Image

from sdkit import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    Client,
    FakeRelay,
    FakeReply,
    ImagesRequest,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplyError,
    RequestTooLargeError,
    RetryPolicy,
    ServerError,
    UnprocessableEntityError,
)
from sdkit.backends.relay.fakerelay import CHAT_SHAPES, fake_png

FAST = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.05)
PROMPT = "a red circle on a blue background"


def pixels(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        return im.size, list(im.convert("RGB").getdata())


@pytest.fixture
def relay():
    with FakeRelay() as r:
        yield r


def client_for(relay, **kw):
    kw.setdefault("retry", FAST)
    return Client(relay.url, api_key="sk-test", **kw)


@pytest.mark.parametrize("shape", CHAT_SHAPES)
def test_each_reply_shape_served_on_loopback_yields_the_image_with_the_right_pixels(shape):
    with FakeRelay(shape=shape, previews=2) as relay, client_for(relay) as client:
        reply = client.chat(ChatRequest.from_prompt(PROMPT))
    assert len(reply.images) == 1
    assert pixels(reply.images[0].data) == pixels(fake_png(PROMPT))
    assert reply.images[0].to_pil().size == (64, 64)
    assert reply.raw and reply.attempts == 1


def test_images_endpoint_b64_and_urls_with_n(relay):
    with client_for(relay) as client:
        b64 = client.images(ImagesRequest(prompt=PROMPT, n=2, size="32x32", extras=None))
        urls = client.images(ImagesRequest(prompt=PROMPT, n=2, response_format="url"))
    assert [pixels(i.data) for i in b64.images] == [pixels(fake_png(PROMPT, None, (32, 32)))] * 2
    assert [i.shape for i in urls.images] == ["images-api"] * 2
    assert all(i.url.startswith(relay.url + "/files/") for i in urls.images)


def test_the_body_and_headers_sent_are_the_request_exactly(relay):
    request = ChatRequest.from_prompt(PROMPT, temperature=0.7)
    with client_for(relay) as client:
        client.chat(request)
    sent = relay.api_requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body.decode() == request.to_json()
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["content-type"] == "application/json"


def test_image_urls_are_fetched_at_once_without_the_key():
    with FakeRelay(shape="markdown-url") as relay, client_for(relay) as client:
        client.chat(PROMPT)
        gets = [r for r in relay.requests if r.method == "GET"]
    assert len(gets) == 1
    assert "authorization" not in gets[0].headers


def test_retry_after_1_then_200_gives_one_result_after_about_a_second(relay):
    relay.script(FakeReply.error(429, "slow down", retry_after=1))
    with client_for(relay) as client:
        start = time.monotonic()
        reply = client.chat(PROMPT)
        elapsed = time.monotonic() - start
    assert len(reply.images) == 1 and reply.attempts == 2
    first, second = relay.api_requests
    assert second.at - first.at >= 0.95  # the server's 1 s was waited, not the 0.01 s backoff
    assert elapsed >= 0.95


def test_500_three_times_is_a_clear_error_after_the_configured_retries(relay):
    relay.script(*[FakeReply.error(500, "the GPU fell over", request_id="req-500")] * 3)
    with client_for(relay) as client, pytest.raises(ServerError) as info:
        client.chat(PROMPT)
    err = info.value
    assert len(relay.api_requests) == 3
    assert err.status_code == 500 and err.request_id == "req-500"
    assert "the GPU fell over" in str(err) and "gave up after 3 attempts" in str(err)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, RequestTooLargeError),
        (422, UnprocessableEntityError),
        (418, APIStatusError),
    ],
)
def test_statuses_map_to_errors_with_status_request_id_and_message_and_are_not_retried(relay, status, cls):
    relay.script(FakeReply.error(status, f"message for {status}", request_id=f"req-{status}"))
    with client_for(relay) as client, pytest.raises(cls) as info:
        client.chat(PROMPT)
    assert type(info.value) is cls
    assert (info.value.status_code, info.value.request_id, info.value.message) == (
        status,
        f"req-{status}",
        f"message for {status}",
    )
    assert len(relay.api_requests) == 1


def test_rate_limit_error_carries_retry_after_when_out_of_retries(relay):
    relay.script(FakeReply.error(429, "quota", retry_after=7))
    with client_for(relay, retry=RetryPolicy(max_retries=0)) as client, pytest.raises(RateLimitError) as info:
        client.chat(PROMPT)
    assert info.value.retry_after == 7.0 and info.value.status_code == 429


def test_non_json_error_body_still_gives_a_message(relay):
    relay.script(FakeReply(status=502, body=b"<html>Bad Gateway</html>", headers=(("Content-Type", "text/html"),)))
    with client_for(relay, retry=RetryPolicy(max_retries=0)) as client, pytest.raises(ServerError, match="Bad Gateway"):
        client.chat(PROMPT)


def test_a_dropped_connection_is_retried(relay):
    relay.script(FakeReply.dropped(), FakeReply(raw=b"\x00garbage that is not HTTP\r\n\r\n"))
    with client_for(relay) as client:
        reply = client.chat(PROMPT)
    assert reply.attempts == 3 and len(reply.images) == 1


def test_dropped_every_time_is_a_connection_error(relay):
    relay.script(*[FakeReply.dropped()] * 3)
    with client_for(relay) as client, pytest.raises(APIConnectionError, match="gave up after 3 attempts"):
        client.chat(PROMPT)


def test_garbage_in_a_200_is_a_reply_error_keeping_the_bytes_and_not_retried(relay):
    relay.script(FakeReply.garbage())
    with client_for(relay) as client, pytest.raises(ReplyError, match="not JSON") as info:
        client.chat(PROMPT)
    assert "not json" in info.value.raw
    assert len(relay.api_requests) == 1


def test_a_slow_reply_times_out(relay):
    relay.script(FakeReply.chat("late", delay=5))
    with client_for(relay, timeout=0.3, retry=RetryPolicy(max_retries=0)) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.chat(PROMPT)
    assert time.monotonic() - start < 5


def test_nobody_listening_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = RetryPolicy(max_retries=1, initial_delay=0.01)
    with Client(f"http://127.0.0.1:{port}", api_key="", retry=policy) as c, pytest.raises(APIConnectionError):
        c.chat(PROMPT)


def test_a_reply_without_an_image_is_a_clear_error_with_its_text(relay):
    relay.script(FakeReply.chat("I cannot draw that, sorry."))
    with client_for(relay) as client, pytest.raises(ReplyError, match="holds no image") as info:
        client.chat(PROMPT)
    assert "I cannot draw that" in str(info.value) and "I cannot draw that" in info.value.raw
    relay.script(FakeReply.chat("plain chat"))
    with client_for(relay) as client:
        assert client.chat(PROMPT, images=False).reply.content == "plain chat"


def test_an_image_url_that_is_not_an_image_is_an_error(relay):
    url = relay.host(b"<html>expired</html>", "gone.png")
    relay.script(FakeReply.chat(f"![x]({url})"))
    with client_for(relay) as client, pytest.raises(ReplyError, match="not a PNG"):
        client.chat(PROMPT)
    relay.script(FakeReply.chat(f"![x]({relay.url}/files/missing.png)"))
    with client_for(relay) as client, pytest.raises(ReplyError, match="could not be fetched"):
        client.chat(PROMPT)


def test_streaming_request_is_collected_into_the_same_result(relay):
    with client_for(relay) as client:
        reply = client.chat(ChatRequest.from_prompt(PROMPT, stream=True))
    assert relay.api_requests[0].json()["stream"] is True
    assert reply.reply.object == "chat.completion"
    assert pixels(reply.images[0].data) == pixels(fake_png(PROMPT))


def test_async_client_does_the_same_with_retries():
    async def main(relay):
        relay.script(FakeReply.error(503, "busy"), FakeReply.dropped())
        async with AsyncClient(relay.url, api_key="sk-test", retry=FAST) as client:
            replies = await asyncio.gather(client.chat(PROMPT), client.images(PROMPT))
        return replies

    with FakeRelay(shape="markdown-url") as relay:
        chat, images = asyncio.run(main(relay))
    assert pixels(chat.images[0].data) == pixels(fake_png(PROMPT))
    assert pixels(images.images[0].data) == pixels(fake_png(PROMPT))
    assert chat.attempts + images.attempts == 4


def test_async_client_maps_errors():
    async def main(relay):
        relay.script(FakeReply.error(401, "who are you"))
        async with AsyncClient(relay.url, api_key="sk-test", retry=FAST) as client:
            await client.chat(PROMPT)

    with FakeRelay() as relay, pytest.raises(AuthenticationError, match="who are you"):
        asyncio.run(main(relay))


def test_client_repr_and_config_errors(relay):
    client = client_for(relay)
    assert "sk-test" not in repr(client) and relay.url in repr(client)
    with pytest.raises(ValueError):
        Client(relay.url, api_key="k", timeout=0)
    with pytest.raises(ValueError):
        Client(relay.url, api_key="k", retry=FAST, max_retries=1)


def test_limits_are_checked_and_reach_the_client(relay):
    from sdkit import Limits, ValidationError

    for bad in ({"max_reply_bytes": 0}, {"max_image_pixels": 1.5}, {"max_redirects": -1}, {"stream_timeout": 0}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            Limits(**bad)
    with pytest.raises(ValidationError, match="stream_timeout"):
        Limits(stream_timeout=float("inf"))
    with pytest.raises(ValidationError, match="limits"):
        Client(relay.url, api_key="", limits={"max_reply_bytes": 1})
    with pytest.raises(ValidationError, match="timeout"):
        Client(relay.url, api_key="", timeout=float("nan"))
    assert Client(relay.url, api_key="").limits == Limits()
    assert Client(relay.url, api_key="", limits=Limits(max_images=2)).limits.max_images == 2
