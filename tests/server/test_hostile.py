"""``sdkit serve`` against hostile and careless clients (issue 13): pathological bodies, a request
that poisons its batch, work without bound, abandoned and overdue jobs, amplification, slow
senders, leaks of paths, hosts, keys and prompts, and a server that cannot serve."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from sdkit import GenerationParams, serve_in_background
from sdkit.backends.base import Capabilities
from sdkit.backends.local.pipeline import batch_key
from sdkit.errors import ModelError

KEY = "sk-test-hostile-5b81e0"
STEPS = 1


def _chat(prompt="a red circle", **extra):
    return {"model": "tiny", "messages": [{"role": "user", "content": prompt}], "num_inference_steps": STEPS, **extra}


def _wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _error(reply: httpx.Response, status: int) -> dict:
    assert reply.status_code == status, reply.text
    return reply.json()["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(backend):
    with serve_in_background(backend, model="tiny", api_keys=[KEY], max_queue=16) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
        yield c


# --- pathological bodies ----------------------------------------------------------------------


def _nested_field(depth: int) -> bytes:
    head = b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "user": '
    return head + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000,
        b'{"a": ' * 100_000,
        _nested_field(5_000),
        b'{"model": "tiny", "messages": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}",
    ],
    ids=["array-100000", "object-100000", "field-5000", "object-field-5000"],
)
def test_deeply_nested_bodies_are_400_and_the_server_stays_up(client, server, content):
    reply = client.post("/v1/chat/completions", content=content, headers={"Content-Type": "application/json"})
    error = _error(reply, 400)
    assert "deeper than" in error["message"] and error["code"] == "invalid_json"
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert client.post("/v1/chat/completions", json=_chat()).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", _chat("a cat \ud800"), "messages[0].content"),
        ("/v1/chat/completions", _chat("a cat", negative_prompt="\udfff blur"), "negative_prompt"),
        ("/v1/images/generations", {"prompt": "\ud83d", "num_inference_steps": STEPS}, "prompt"),
    ],
)
def test_a_lone_surrogate_is_400_naming_the_field(client, path, body, param):
    content = json.dumps(body).encode()  # json.dumps writes "\ud800" as an escape, as a hostile client would
    reply = client.post(path, content=content, headers={"Content-Type": "application/json"})
    error = _error(reply, 400)
    assert error["param"] == param and "surrogate" in error["message"]


def test_long_prompts_are_refused_at_the_server(client):
    error = _error(client.post("/v1/chat/completions", json=_chat("a cat " * 1000)), 400)
    assert error["param"] == "messages[0].content" and "at most 4000" in error["message"]
    body = {"prompt": "a cat", "negative_prompt": "x" * 4001, "num_inference_steps": STEPS}
    assert _error(client.post("/v1/images/generations", json=body), 400)["param"] == "negative_prompt"


# --- one bad request fails alone ---------------------------------------------------------------


class PoisonedBackend:
    """The real backend, except that a prompt holding POISON makes its whole pipeline call raise
    a TypeError, as the tokenizer did on a lone surrogate; the first call waits for a gate."""

    name = "local"
    capabilities = Capabilities(max_batch=8, batch_key=batch_key, loads=True, step_progress=True, regenerable=True)

    def identity(self):
        return self.inner.identity()

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.calls = []

    def load(self, model):
        return self.inner.load(model)

    def generate_many(self, params, *, on_step=None, on_result=None, return_errors=False):
        assert self.gate.wait(60)
        self.calls.append([p.prompt for p in params])
        if any("POISON" in p.prompt for p in params):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
        return self.inner.generate_many(params, on_step=on_step, return_errors=return_errors)


def test_a_request_that_breaks_its_batch_fails_alone(backend):
    poisoned = PoisonedBackend(backend)
    with serve_in_background(poisoned, model="tiny", max_queue=16) as srv:
        queue = srv.app.state.queue
        out = {}

        def post(name, prompt):
            out[name] = httpx.post(srv.url + "/v1/chat/completions", json=_chat(prompt), timeout=60)

        threads = [threading.Thread(target=post, args=("first", "a cat"))]
        threads[0].start()
        _wait_until(lambda: queue.stats()["running"] == 1)
        prompts = [f"a dog {i}" for i in range(7)] + ["a POISON fish"]
        for i, prompt in enumerate(prompts):
            threads.append(threading.Thread(target=post, args=(i, prompt)))
            threads[-1].start()
        _wait_until(lambda: queue.stats()["waiting"] == 8)
        poisoned.gate.set()
        for t in threads:
            t.join(60)
        assert sorted(poisoned.calls[1]) == sorted(prompts)  # the eight shared one pipeline call, which failed
        assert [out[i].status_code for i in range(7)] == [200] * 7
        error = _error(out[7], 500)
        assert error["code"] == "generation_failed" and "POISON" not in error["message"]
        assert httpx.get(srv.url + "/health").json()["status"] == "ok"


def test_local_backend_returns_a_tokenizer_error_instead_of_raising_it(backend):
    params = [GenerationParams("a cat", num_inference_steps=1), GenerationParams("a \ud800 dog", num_inference_steps=1)]
    outcomes = backend.generate_many(params, return_errors=True)
    assert all(isinstance(o, Exception) for o in outcomes)  # one pipeline call: both fail, and the caller decides


# --- bounded work ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"size": "2048x2048"}, "size", "even at 1 step"),
        ({"size": "1024x1024", "num_inference_steps": 1}, "size", "even at 1 step"),
        ({"num_inference_steps": 500}, "num_inference_steps", "at most 200 at 64x64 × 1 image"),
        ({"n": 4, "num_inference_steps": 51}, "num_inference_steps", "at most 50 at 64x64 × 4 image"),
    ],
)
def test_work_over_the_models_budget_is_refused_naming_the_field(client, extra, param, words):
    error = _error(client.post("/v1/chat/completions", json=_chat(**extra)), 400)
    assert error["param"] == param and error["code"] == "over_budget"
    assert words in error["message"] and "819200 pixel-steps" in error["message"]  # 64² × 200 for tiny


def test_the_work_budget_is_configurable_and_counts_native_size_when_no_size_is_given():
    from sdkit.errors import InvalidRequestError
    from sdkit.server.wire import check_work

    check_work(GenerationParams("x", num_inference_steps=4), max_work=64 * 64 * 4, native_size=64)
    with pytest.raises(InvalidRequestError, match="at most 4 at 64x64") as info:
        check_work(GenerationParams("x", num_inference_steps=5), max_work=64 * 64 * 4, native_size=64)
    assert info.value.field == "num_inference_steps"
    with pytest.raises(InvalidRequestError) as info:
        check_work(GenerationParams("x", num_images=2, num_inference_steps=1), max_work=64 * 64, native_size=64)
    assert info.value.field == "n"


class SlowBackend:
    """The real backend behind a slow fake of a long denoising loop for prompts holding "slow":
    ``steps`` steps of ``step_s`` seconds, each reported through ``on_step`` like diffusers'
    step callback (which may raise to stop the call)."""

    name = "local"
    capabilities = Capabilities(max_batch=1, batch_key=batch_key, loads=True, step_progress=True, regenerable=True)

    def identity(self):
        return self.inner.identity()

    def __init__(self, inner, *, steps=3000, step_s=0.01):
        self.inner = inner
        self.steps, self.step_s = steps, step_s
        self.steps_run = 0
        self.stopped = []

    def load(self, model):
        return self.inner.load(model)

    def generate_many(self, params, *, on_step=None, on_result=None, return_errors=False):
        if any("slow" in p.prompt for p in params):
            try:
                for i in range(self.steps):
                    time.sleep(self.step_s)
                    self.steps_run += 1
                    if on_step is not None:
                        on_step(i + 1, self.steps)
            except Exception as exc:
                self.stopped.append(type(exc).__name__)
                if return_errors:
                    return [exc] * len(params)
                raise
        return self.inner.generate_many(params, on_step=on_step, return_errors=return_errors)


def test_a_running_job_is_stopped_when_its_client_goes_away(backend):
    slow = SlowBackend(backend)
    with serve_in_background(slow, model="tiny", max_queue=16) as srv:
        queue = srv.app.state.queue
        start = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            httpx.post(srv.url + "/v1/chat/completions", json=_chat("a slow 2048² job"), timeout=0.5)
        _wait_until(lambda: slow.stopped == ["JobAbandoned"], timeout=5)
        assert time.monotonic() - start < 5 and slow.steps_run < 500  # of 3000 (30 s)
        # A streaming client that leaves after the first event is stopped the same way.
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=_chat("slow", stream=True)) as s:
            assert next(s.iter_lines()).startswith("data: ")
        _wait_until(lambda: len(slow.stopped) == 2, timeout=5)

        # Many clients that give up: the queue recovers, and the next request is served.
        def quit_early():
            with pytest.raises(httpx.TimeoutException):
                httpx.post(srv.url + "/v1/chat/completions", json=_chat("slow"), timeout=0.3)

        quitters = [threading.Thread(target=quit_early) for _ in range(12)]
        for t in quitters:
            t.start()
        for t in quitters:
            t.join(10)
        _wait_until(lambda: queue.stats()["running"] == 0 and queue.stats()["waiting"] == 0, timeout=10)
        reply = httpx.post(srv.url + "/v1/chat/completions", json=_chat("a quick one"), timeout=30)
        assert reply.status_code == 200


def test_a_request_past_its_deadline_is_stopped_and_answered_504(backend):
    slow = SlowBackend(backend)
    with serve_in_background(slow, model="tiny", request_timeout_s=1.0) as srv:
        start = time.monotonic()
        reply = httpx.post(srv.url + "/v1/chat/completions", json=_chat("slow"), timeout=30)
        error = _error(reply, 504)
        assert error["code"] == "timeout" and "1 s" in error["message"]
        assert time.monotonic() - start < 5
        _wait_until(lambda: slow.stopped == ["JobAbandoned"], timeout=5)
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=_chat("slow", stream=True), timeout=30) as s:
            lines = [line for line in s.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["error"]["code"] == "timeout"
        assert httpx.post(srv.url + "/v1/chat/completions", json=_chat("quick"), timeout=30).status_code == 200


def test_a_pipeline_call_stops_when_its_step_callback_raises(backend):
    from sdkit.server.jobqueue import JobAbandoned

    seen = []

    def stop(step, total):
        seen.append(step)
        raise JobAbandoned("gone")

    (outcome,) = backend.generate_many(
        [GenerationParams("a cat", num_inference_steps=20)], on_step=stop, return_errors=True
    )
    assert isinstance(outcome, JobAbandoned) and seen == [1]


# --- amplification ---------------------------------------------------------------------------------


def test_the_image_store_is_capped_in_bytes():
    from sdkit.server.state import ImageStore

    store = ImageStore(max_items=100, max_bytes=4000)
    names = [store.put(bytes(1000)) for _ in range(10)]
    assert store.nbytes <= 4000 and len(store) == 4
    assert store.get(names[0]) is None and store.get(names[-1]) == bytes(1000)


# --- leaks and trust --------------------------------------------------------------------------------


def test_image_urls_never_come_from_the_host_header(client, server):
    body = {"prompt": "a ring", "num_inference_steps": STEPS}
    reply = client.post("/v1/images/generations", json=body, headers={"Host": "evil.example"})
    (item,) = reply.json()["data"]
    assert item["url"].startswith(f"{server.url}/files/images/")


def test_a_key_in_the_query_string_is_not_accepted(server):
    reply = httpx.get(f"{server.url}/v1/models?api_key={KEY}")
    assert _error(reply, 401)["code"] == "invalid_api_key"


def test_a_model_that_does_not_load_raises_from_serve_in_background(tmp_path, backend):
    with pytest.raises(ModelError, match="no such folder"):
        serve_in_background(backend, model=str(tmp_path / "no-such-model"))


def test_slow_header_senders_are_cut_off_and_others_are_served(backend):
    with serve_in_background(backend, model="tiny", header_timeout_s=1.0, body_timeout_s=1.0) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        slow = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            slow.append(s)
        start, closed, served = time.monotonic(), set(), False
        try:
            while len(closed) < len(slow) and time.monotonic() - start < 8:
                for i, s in enumerate(slow):  # one header byte from each, every 0.2 s
                    if i in closed:
                        continue
                    try:
                        s.sendall(b"X")
                        if s.recv(1024) == b"":
                            closed.add(i)
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed.add(i)
                if not served:
                    served = httpx.get(srv.url + "/health", timeout=2).status_code == 200
                time.sleep(0.2)
            elapsed = time.monotonic() - start
        finally:
            for s in slow:
                s.close()
        assert served and len(closed) == 20 and elapsed < 4

        # A body that never comes: 408 once the body timeout passes.
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(10)
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 408")
        assert httpx.get(srv.url + "/health").json()["status"] == "ok"


def _serve(args, log, env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    env.pop("SDKIT_SERVER_API_KEYS", None)
    with log.open("wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "sdkit", "serve", *args], stdout=f, stderr=subprocess.STDOUT, env=env
        )


def test_cli_serve_key_file_and_its_logs_hold_no_key_and_no_prompt(tmp_path):
    port = _free_port()
    keyfile = tmp_path / "keys"
    keyfile.write_text(f"# sdkit serve keys\n{KEY}\n")
    log = tmp_path / "serve.log"
    proc = _serve(["--port", str(port), "--model", "tiny", "--api-key-file", str(keyfile)], log)
    url = f"http://127.0.0.1:{port}"
    try:

        def up():
            try:
                return httpx.get(url + "/health", timeout=2).json()["status"] == "ok"
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                return False

        _wait_until(up, timeout=120)
        auth = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{url}/v1/models?api_key={KEY}").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers=auth).status_code == 200
        reply = httpx.post(url + "/v1/chat/completions", json=_chat("zebra-prompt-7Q"), headers=auth, timeout=60)
        assert reply.status_code == 200
        long = httpx.post(url + "/v1/chat/completions", json=_chat("quagga-7Q " * 500), headers=auth, timeout=60)
        assert long.status_code == 400
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert "Uvicorn running on http://127.0.0.1" in text and "GET /v1/models?…" in text
    assert KEY not in text and "zebra-prompt" not in text and "quagga" not in text


@pytest.mark.parametrize(
    ("kind", "status", "says"),
    [("missing", 2, "no such folder"), ("broken", 1, "could not load")],  # a typing mistake is 2, a bad model 1
)
def test_cli_serve_exits_before_listening_when_the_model_does_not_load(tmp_path, kind, status, says):
    model = tmp_path / "model"
    if kind == "broken":
        model.mkdir()
        (model / "model_index.json").write_text(
            '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}'
        )
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = _serve(["--port", str(port), "--model", str(model)], log)
    try:
        assert proc.wait(60) == status
    finally:
        proc.kill()
    text = log.read_text()
    assert says in text and "Traceback" not in text and "Uvicorn running" not in text


def test_cli_serve_exits_at_once_on_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        log = tmp_path / "serve.log"
        proc = _serve(["--port", str(port), "--model", "tiny"], log)
        try:
            assert proc.wait(60) == 1
        finally:
            proc.kill()
    text = log.read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in text and "Traceback" not in text
    assert "Waiting for application startup" not in text  # it never got as far as loading and serving


def test_cli_serve_help_says_that_api_key_shows_in_ps_and_offers_a_file(capsys):
    from sdkit.cli.main import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--api-key-file PATH" in text and "ps" in text and "SDKIT_SERVER_API_KEYS" in text
    assert "--max-work" in text and "--timeout" in text
