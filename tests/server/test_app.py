"""``sdkit serve`` over real HTTP on 127.0.0.1, with the embedded tiny model and the official
``openai`` package as a peer client."""

import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from sdkit import AuthenticationError, GenerationParams, ValidationError, serve_in_background
from sdkit.metadata.pngfile import record_infotext
from sdkit.server.auth import authorized, exposure_warning, keys_from_env

KEY = "sk-test-planted-3f9a1c"
DATA_URI = re.compile(r"!\[image\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")
STEPS = 2


def _chat(prompt="a red circle", **extra):
    return {"model": "tiny", "messages": [{"role": "user", "content": prompt}], "num_inference_steps": STEPS, **extra}


def _pngs(content: str) -> list[bytes]:
    return [base64.b64decode(b) for b in DATA_URI.findall(content)]


def _png_info(png: bytes) -> dict:
    with Image.open(io.BytesIO(png)) as im:
        return {"record": json.loads(im.info["sdkit"]), "parameters": im.info["parameters"], "pixels": im.tobytes()}


@pytest.fixture(scope="module")
def server(backend):
    with serve_in_background(backend, model="tiny", api_keys=[KEY], max_queue=8, max_body_bytes=64_000) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
        yield c


@pytest.fixture
def openai_client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)


def _assert_openai_error(reply: httpx.Response, status: int, param=None) -> dict:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    return error


# --- the two endpoints --------------------------------------------------------------------


def test_chat_reply_has_the_page_fields_and_pngs_carry_the_local_record(client, backend):
    reply = client.post("/v1/chat/completions", json=_chat(seed=11, negative_prompt="blurry"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-") and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert (choice["index"], choice["message"]["role"], choice["finish_reason"]) == (0, "assistant", "stop")
    tokenizer = backend.load("tiny").tokenizer
    expected_tokens = len(tokenizer("a red circle")["input_ids"]) + len(tokenizer("blurry")["input_ids"])
    assert body["usage"] == {"prompt_tokens": expected_tokens, "completion_tokens": 0, "total_tokens": expected_tokens}
    (png,) = _pngs(choice["message"]["content"])
    served = _png_info(png)

    local = backend.generate(
        GenerationParams("a red circle", negative_prompt="blurry", seed=11, num_inference_steps=STEPS)
    )
    assert served["record"] == local.record(0)
    assert served["parameters"] == record_infotext(local.record(0))
    assert served["pixels"] == local.images[0].tobytes()
    assert KEY not in json.dumps(served["record"]) + served["parameters"]


def test_the_server_reads_a1111s_prompt_language_as_the_local_backend_does(client, backend):
    prompt = "a (red:1.4) circle BREAK on a [blue|green] background, " + "plain shape, " * 30
    reply = client.post("/v1/chat/completions", json=_chat(prompt, seed=5))
    assert reply.status_code == 200, reply.text
    (png,) = _pngs(reply.json()["choices"][0]["message"]["content"])
    local = backend.generate(GenerationParams(prompt, seed=5, num_inference_steps=STEPS))
    assert _png_info(png)["pixels"] == local.images[0].tobytes()
    plain = backend.generate(GenerationParams(prompt.replace("(red:1.4)", "red"), seed=5, num_inference_steps=STEPS))
    assert plain.images[0].tobytes() != local.images[0].tobytes()


def test_openai_package_chat_completions_create(openai_client):
    reply = openai_client.chat.completions.create(
        model="stable-diffusion-api",
        messages=[{"role": "user", "content": "a blue square"}],
        n=2,
        extra_body={"seed": 5, "num_inference_steps": STEPS},
    )
    assert reply.object == "chat.completion"
    assert [c.index for c in reply.choices] == [0, 1]
    seeds = [_png_info(_pngs(c.message.content)[0])["record"]["seed"] for c in reply.choices]
    assert seeds == [5, 6]
    assert reply.usage.prompt_tokens > 0


def test_openai_package_images_generate_b64_and_url(openai_client, server):
    reply = openai_client.images.generate(
        prompt="a green ring",
        n=2,
        size="64x64",
        response_format="b64_json",
        extra_body={"seed": 3, "num_inference_steps": STEPS},
    )
    records = [_png_info(base64.b64decode(d.b64_json))["record"] for d in reply.data]
    assert [r["seed"] for r in records] == [3, 4]
    assert records[0]["params"]["prompt"] == "a green ring"

    reply = openai_client.images.generate(
        prompt="a green ring", model="tiny", extra_body={"seed": 3, "num_inference_steps": STEPS}
    )
    (item,) = reply.data
    assert item.url.startswith(f"{server.url}/files/images/") and item.url.endswith(".png")
    fetched = httpx.get(item.url)  # no key needed: the random id is the capability
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    record = _png_info(fetched.content)["record"]
    assert (record["seed"], record["params"]["prompt"], record["params"]["num_images"]) == (3, "a green ring", 1)


@pytest.mark.parametrize(
    "path",
    [
        "/files/images/..%2F..%2Fsdkit%2Fserver.py",
        "/files/images/%2e%2e%2fpyproject.toml",
        "/files/images/....%2F%2Fetc%2Fpasswd",
        "/files/images/AAAAAAAAAAAAAAAAAAAAAA.png",
        "/files/images/server.py",
        "/files/../pyproject.toml",
    ],
)
def test_image_urls_cannot_reach_other_files(server, path):
    reply = httpx.get(server.url + path)
    assert reply.status_code == 404
    assert "[project]" not in reply.text and "import" not in reply.text


def test_stream_sends_chunks_and_ends_with_done(client):
    body = _chat(stream=True, stream_options={"include_usage": True})
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert {e["object"] for e in events} == {"chat.completion.chunk"}
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert len(_pngs(content)) == 1
    assert any(e["choices"] and e["choices"][0]["finish_reason"] == "stop" for e in events)
    assert events[-1]["usage"]["prompt_tokens"] > 0


def test_openai_package_streams(openai_client):
    stream = openai_client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "a star"}],
        stream=True,
        extra_body={"num_inference_steps": STEPS},
    )
    content = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert len(_pngs(content)) == 1


def test_models_and_health(client, server, openai_client):
    assert [m.id for m in openai_client.models.list()] == ["tiny", "stable-diffusion-api"]
    assert openai_client.models.retrieve("tiny").id == "tiny"
    _assert_openai_error(client.get("/v1/models/dall-e-3"), 404, "model")
    health = httpx.get(server.url + "/health")  # no key needed
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["model"] == "tiny"


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer x"},
        {"Authorization": f"Bearer {KEY[:-1]}"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/images/generations")]
)
def test_missing_or_wrong_key_is_401_with_openai_error(server, headers, method, path):
    reply = httpx.request(method, server.url + path, headers=headers, json=_chat())
    error = _assert_openai_error(reply, 401)
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert KEY not in reply.text


def test_openai_package_with_a_wrong_key_gets_authentication_error(server):
    from openai import AuthenticationError, OpenAI

    with pytest.raises(AuthenticationError) as info:
        OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0).models.list()
    assert KEY not in str(info.value)


def test_key_check_is_exact_and_keys_come_from_the_environment():
    keys = (b"alpha", b"beta")
    assert authorized("Bearer beta", keys) and authorized("bearer alpha", keys)
    assert not authorized("Bearer alph", keys) and not authorized("Bearer alphaa", keys)
    assert not authorized(None, keys) and not authorized("beta", keys)
    assert authorized(None, ())
    assert keys_from_env({"SDKIT_SERVER_API_KEYS": " a, b ,,"}) == ("a", "b")


def test_a_public_interface_without_a_key_warns():
    assert exposure_warning("0.0.0.0", ()) is not None
    assert exposure_warning("192.168.1.5", ()) is not None
    assert exposure_warning("0.0.0.0", ("k",)) is None
    assert exposure_warning("127.0.0.1", ()) is None and exposure_warning("::1", ()) is None
    assert exposure_warning("localhost", ()) is None
    # Refused (max_queue) after the warning and before anything listens.
    with pytest.warns(UserWarning, match="without an API key"), pytest.raises(ValidationError):
        serve_in_background(object(), host="0.0.0.0", api_keys=(), max_queue=-1)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "status", "param"),
    [
        ("/v1/chat/completions", b"{not json", 400, None),
        ("/v1/chat/completions", b"", 400, None),
        ("/v1/chat/completions", b"[1]", 422, None),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}]}), 422, "model"),
        ("/v1/chat/completions", json.dumps(_chat(temperature="hot")), 422, "temperature"),
        ("/v1/chat/completions", json.dumps(_chat(temperature=9)), 400, "temperature"),
        ("/v1/chat/completions", json.dumps(_chat(model="gpt-4o")), 404, "model"),
        ("/v1/chat/completions", json.dumps(_chat(num_inference_steps=0)), 400, "num_inference_steps"),
        ("/v1/chat/completions", json.dumps(_chat(size="huge")), 400, "size"),
        ("/v1/chat/completions", json.dumps(_chat(n=50)), 400, "n"),
        (
            "/v1/chat/completions",
            json.dumps({"model": "tiny", "messages": [{"role": "user"}]}),
            422,
            "messages[0].content",
        ),
        ("/v1/images/generations", json.dumps({"n": 1}), 422, "prompt"),
        ("/v1/images/generations", json.dumps({"prompt": "x", "response_format": "gif"}), 400, "response_format"),
        ("/v1/images/generations", json.dumps({"prompt": "x", "seed": "one"}), 422, "seed"),
    ],
)
def test_bad_requests_get_openai_errors_naming_the_field(client, path, content, status, param):
    reply = client.post(path, content=content, headers={"Content-Type": "application/json"})
    _assert_openai_error(reply, status, param)


def test_openai_package_sees_bad_request_errors(openai_client):
    from openai import BadRequestError, NotFoundError

    with pytest.raises(BadRequestError, match="temperature"):
        openai_client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], temperature=7)
    with pytest.raises(NotFoundError, match="model"):
        openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_unknown_routes_and_methods_get_openai_errors(client):
    _assert_openai_error(client.get("/v1/nothing"), 404)
    _assert_openai_error(client.get("/v1/chat/completions"), 405)


def test_bodies_over_the_limit_are_413_with_or_without_content_length(client, server):
    big = json.dumps(_chat("x" * 100_000)).encode()
    reply = client.post("/v1/chat/completions", content=big, headers={"Content-Type": "application/json"})
    assert _assert_openai_error(reply, 413)["code"] == "request_too_large"

    def chunked():
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    reply = client.post("/v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"})
    _assert_openai_error(reply, 413)
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_the_server_survives_every_bad_request(client):
    for content in (b"\x00\xff", b"{}", b'{"model": "tiny", "messages": [null]}', b"null", b'"x"', b"1e999"):
        assert 400 <= client.post("/v1/chat/completions", content=content).status_code < 500
    assert client.post("/v1/chat/completions", json=_chat()).status_code == 200


# --- load -------------------------------------------------------------------------------------


class GatedBackend:
    """The real backend behind a gate the test opens: shows what waits and what runs."""

    name = "local"

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.prompts = []

    def identity(self):
        return self.inner.identity()

    def generate(self, params):
        return self.generate_many([params])[0]

    def generate_many(self, params, *, on_result=None, return_errors=False):
        self.prompts.extend(p.prompt for p in params)
        assert self.gate.wait(60)
        return self.inner.generate_many(params, return_errors=return_errors)


def _wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _post_in_thread(url, body, out, key, *, timeout=60.0):
    def run():
        try:
            out[key] = httpx.post(url + "/v1/chat/completions", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            out[key] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_full_queue_answers_429_with_retry_after_and_the_others_finish(backend):
    gated = GatedBackend(backend)
    with serve_in_background(gated, model="tiny", max_queue=1) as srv:
        queue = srv.app.state.queue
        out = {}
        first = _post_in_thread(srv.url, _chat("a cat"), out, "running")
        _wait_until(lambda: queue.stats()["running"] == 1)
        second = _post_in_thread(srv.url, _chat("a dog"), out, "waiting")
        _wait_until(lambda: queue.stats()["waiting"] == 1)

        refused = httpx.post(srv.url + "/v1/chat/completions", json=_chat("a bird"), timeout=30)
        error = _assert_openai_error(refused, 429)
        assert error["type"] == "rate_limit_error"
        assert int(refused.headers["Retry-After"]) >= 1
        refused_stream = httpx.post(srv.url + "/v1/chat/completions", json=_chat("a fish", stream=True), timeout=30)
        _assert_openai_error(refused_stream, 429)  # refused before the stream starts
        assert int(refused_stream.headers["Retry-After"]) >= 1

        gated.gate.set()
        first.join(60)
        second.join(60)
        assert out["running"].status_code == 200 and out["waiting"].status_code == 200
        assert gated.prompts == ["a cat", "a dog"]


def test_openai_package_sees_rate_limit_error_when_the_queue_is_full(backend):
    from openai import OpenAI, RateLimitError

    gated = GatedBackend(backend)
    with serve_in_background(gated, model="tiny", max_queue=0) as srv:
        out = {}
        first = _post_in_thread(srv.url, _chat("a cat"), out, "running")
        _wait_until(lambda: srv.app.state.queue.stats()["running"] == 1)
        with pytest.raises(RateLimitError) as info:
            OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0).chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.response.headers["retry-after"].isdigit()
        gated.gate.set()
        first.join(60)
        assert out["running"].status_code == 200


def test_a_client_that_disconnects_does_not_disturb_the_others(backend):
    gated = GatedBackend(backend)
    with serve_in_background(gated, model="tiny", max_queue=4) as srv:
        queue = srv.app.state.queue
        out = {}
        first = _post_in_thread(srv.url, _chat("a cat"), out, "running")
        _wait_until(lambda: queue.stats()["running"] == 1)
        # This client gives up while its request waits; the server drops the request.
        quitter = _post_in_thread(srv.url, _chat("a quitter"), out, "quitter", timeout=1.0)
        _wait_until(lambda: queue.stats()["waiting"] == 1)
        patient = _post_in_thread(srv.url, _chat("a dog"), out, "patient")
        quitter.join(30)
        assert isinstance(out["quitter"], httpx.TimeoutException)
        # A streaming client that leaves after the first event.
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=_chat("a streamer", stream=True)) as s:
            assert next(s.iter_lines()).startswith("data: ")
        _wait_until(lambda: queue.stats()["waiting"] == 1)  # only the patient one is left

        gated.gate.set()
        first.join(60)
        patient.join(60)
        assert out["running"].status_code == 200 and out["patient"].status_code == 200
        assert "a quitter" not in gated.prompts and "a streamer" not in gated.prompts
        assert gated.prompts == ["a cat", "a dog"]
        assert httpx.get(srv.url + "/health").json()["status"] == "ok"


def test_load_100_concurrent_requests_all_answered_none_lost_healthy_after():
    from benchmarks.serve import run_load

    report = run_load(100, steps=1, max_queue=8)
    assert len(report.statuses) == 100
    assert report.errors == ()
    assert report.lost == 0
    assert report.ok + report.refused == 100
    assert report.ok >= 9  # the queue (8) and the worker were full: all of those were served
    assert report.healthy_after


# --- shells -----------------------------------------------------------------------------------


def test_background_server_stops_and_frees_the_port(backend):
    with serve_in_background(backend, model="tiny") as srv:
        url = srv.url
        assert srv.running and url.startswith("http://127.0.0.1:")
        assert "sk-" not in repr(srv)
    assert not srv.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2)


def test_import_sdkit_does_not_import_fastapi_or_uvicorn():
    code = "import sys, sdkit; print([m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_takes_keys_from_the_environment_and_never_prints_them(tmp_path):
    port = _free_port()
    env = {**os.environ, "SDKIT_SERVER_API_KEYS": f"sk-other-7d2e,{KEY}", "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "serve.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sdkit", "serve", "--port", str(port), "--model", "tiny"],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(url + "/health", timeout=2).json()["status"] == "ok"
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                return False

        _wait_until(up, timeout=120)
        assert httpx.get(url + "/v1/models").status_code == 401
        reply = httpx.post(
            url + "/v1/chat/completions", json=_chat(), headers={"Authorization": f"Bearer {KEY}"}, timeout=120
        )
        assert reply.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert "Uvicorn running on http://127.0.0.1" in text
    assert KEY not in text and "sk-other-7d2e" not in text


def test_a_model_that_cannot_load_shows_in_health_and_requests_fail_cleanly(tmp_path, backend):
    missing = str(tmp_path / "no-such-model")
    with serve_in_background(backend, model=missing, wait_ready=False) as srv:
        _wait_until(lambda: srv.app.state.queue.ready.is_set())
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "error" and "no such folder" in health["error"]
        body = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}], "num_inference_steps": 1}
        reply = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=60)
        assert _assert_openai_error(reply, 500)["type"] == "server_error"
        assert httpx.get(srv.url + "/health").status_code == 200
        # The model's local path stays private: clients see the name it is served under.
        assert str(tmp_path) not in json.dumps(health) + reply.text
        assert "'no-such-model'" in health["error"]


def test_sdkit_remote_backend_end_to_end(server, backend):
    """sdkit's own client against this server (active once the client, issue 3, is merged)."""
    remote = pytest.importorskip("sdkit.backends.relay.remote")
    params = GenerationParams("a red circle", seed=21, num_inference_steps=STEPS, num_images=2)
    local = backend.generate(params)
    for name, fmt in (("chat", None), ("images", "b64_json"), ("images", "url")):
        kw = {"response_format": fmt} if fmt else {}
        result = remote.RemoteBackend(name, base_url=server.url, api_key=KEY, sd_extras=True, **kw).generate(params)
        assert result.seeds == (21, 22)
        for got, want in zip(result.images, local.images, strict=True):
            diff = np.abs(np.asarray(got, dtype=np.int16) - np.asarray(want, dtype=np.int16)).max()
            assert diff <= 2  # the server may batch the two requests where local ran them together
        assert KEY not in repr(result)
    with pytest.raises(AuthenticationError):
        remote.RemoteBackend("chat", base_url=server.url, api_key="sk-wrong", max_retries=0).generate(params)


def test_one_worker_per_device_and_concurrency_each():
    from sdkit import create_app

    app = create_app(model="tiny", device="cpu,cpu", concurrency=2)
    backends = app.state.queue.backends
    assert len(backends) == 4 and {b.device for b in backends} == {"cpu"}
    assert len({id(b) for b in backends}) == 4  # each worker its own pipeline
    with pytest.raises(ValidationError, match="concurrency"):
        create_app(object(), concurrency=2)


class _Solid:
    """A backend written against the contract alone: no capabilities (no load, no batching, no on_step)."""

    name = "solid"

    def identity(self):
        return {"colour": "red"}

    def generate(self, params):
        from sdkit.result import GenerationResult

        size = (params.width or 64, params.height or 64)
        images = tuple(Image.new("RGB", size, "red") for _ in range(params.num_images))
        seeds = tuple((params.seed or 0) + i for i in range(params.num_images))
        return GenerationResult(params, images, seeds, model=params.model, backend=self.name)

    def generate_many(self, params, *, on_result=None, return_errors=False):
        results = []
        for i, p in enumerate(params):
            results.append(self.generate(p))
            if on_result is not None:
                on_result(i, results[-1])
        return results


def test_a_backend_with_only_the_contract_serves_chat_and_images():
    with serve_in_background(_Solid(), model="tiny", api_keys=()) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/health").json()["status"] == "ok"
        reply = c.post("/v1/chat/completions", json=_chat(n=2, size="96x64"))
        assert reply.status_code == 200, reply.text
        contents = [choice["message"]["content"] for choice in reply.json()["choices"]]
        images = [Image.open(io.BytesIO(png)) for content in contents for png in _pngs(content)]
        assert len(images) == 2 and {im.size for im in images} == {(96, 64)}
        assert images[0].getpixel((0, 0)) == (255, 0, 0)
        reply = c.post("/v1/images/generations", json={"prompt": "x", "response_format": "b64_json"})
        (item,) = reply.json()["data"]
        assert Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).getpixel((0, 0)) == (255, 0, 0)


def test_the_server_builds_its_backends_through_the_registry():
    from sdkit import create_app, register_backend
    from sdkit.server.app import SERVED_KIND

    made = []

    def factory(**options):
        made.append(options)
        backend = _Solid()
        backend.name = SERVED_KIND
        return backend

    register_backend(SERVED_KIND, factory, replace=True)
    try:
        app = create_app(model="tiny", device="a, b", concurrency=2, threads=1)
    finally:
        register_backend(SERVED_KIND, "sdkit.backends.local:create", replace=True)
    assert len(app.state.sdkit.queue.backends) == 4
    assert [m["device"] for m in made] == ["a", "a", "b", "b"]
    assert all(m["progress"] is False and m["threads"] == 1 for m in made)
