import pickle

import pytest

from sdkit import Secret
from sdkit.secret import MASK, scrub

KEY = "sk-planted-0123456789abcdef"


def test_a_secret_never_shows_its_value():
    secret = Secret(KEY)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret}", repr([secret])):
        assert KEY not in text
        assert MASK in text
    assert secret.reveal() == KEY
    assert secret == Secret(KEY) and bool(secret) and not Secret("")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "x"


def test_scrub_removes_the_key_and_any_bearer_token():
    text = f"bad key {KEY}; header was Authorization: Bearer sk-other-token"
    clean = scrub(text, Secret(KEY))
    assert KEY not in clean and "sk-other-token" not in clean
    assert clean == f"bad key {MASK}; header was Authorization: Bearer {MASK}"


def test_short_placeholder_keys_do_not_mangle_text():
    assert scrub("chatcmpl-fake iVBORw0KGgo", Secret("k"), "EMPTY") == "chatcmpl-fake iVBORw0KGgo"


# --- a planted key never shows up anywhere ------------------------------------------------------

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from sdkit import (  # noqa: E402
    APIError,
    ChatRequest,
    Client,
    FakeRelay,
    FakeReply,
    GenerationParams,
    RemoteBackend,
    RetryPolicy,
    export_request,
    save_result,
)

PLANTED = "sk-planted-7f3c9a1e5b2d4086"


def assert_clean(*texts):
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        assert PLANTED not in text
        assert PLANTED[3:] not in text


def _files_under(folder):
    return [p.read_bytes() for p in folder.rglob("*") if p.is_file()]


def test_planted_key_stays_out_of_cli_stdout_stderr_and_files(tmp_path):
    env = {**os.environ, "SDKIT_API_KEY": PLANTED, "HF_HUB_OFFLINE": "1"}
    env.pop("OPENAI_API_KEY", None)
    with FakeRelay(api_key=PLANTED, shape="markdown-url") as good, FakeRelay(api_key="sk-other") as bad:
        runs = [
            ["generate", "a cat", "--backend", "chat", "--base-url", good.url, "--out", str(tmp_path / "ok")],
            [
                "generate",
                "a cat",
                "--backend",
                "images",
                "--base-url",
                good.url,
                "--sd-extras",
                "--out",
                str(tmp_path / "ok2"),
            ],
            # the relay refuses the key and echoes it back in its error message, as real relays do
            ["generate", "a cat", "--backend", "chat", "--base-url", bad.url, "--out", str(tmp_path / "bad")],
            ["request", "a cat", "--python", "--base-url", good.url],
            ["request", "a cat", "--js"],
            ["request", "a cat"],
        ]
        procs = [
            subprocess.run([sys.executable, "-m", "sdkit", *args], capture_output=True, text=True, env=env, timeout=120)
            for args in runs
        ]
        assert good.api_requests[0].headers["authorization"] == f"Bearer {PLANTED}"  # it was really sent
    assert [p.returncode for p in procs] == [0, 0, 1, 0, 0, 0]
    assert "Incorrect API key provided" in procs[2].stderr
    for p in procs:
        assert_clean(p.stdout, p.stderr)
    files = _files_under(tmp_path)
    assert len(files) == 2
    assert_clean(*files)


def test_planted_key_stays_out_of_exceptions_reprs_results_and_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fast = RetryPolicy(max_retries=1, initial_delay=0.01)
    texts = []
    with FakeRelay(api_key="sk-other") as bad, FakeRelay(api_key=PLANTED) as good:
        client = Client(bad.url, api_key=PLANTED, retry=fast)
        bad.script(FakeReply.error(500, f"upstream said Bearer {PLANTED}"), FakeReply.error(503, f"key {PLANTED}"))
        for _ in range(2):  # scripted 5xx echoes, then the 401 echo
            with pytest.raises(APIError) as info:
                client.chat("a cat")
            err = info.value
            texts += [str(err), repr(err), json.dumps(err.body), str(err.message)]
        good.script(FakeReply.chat(f"no image for you, {PLANTED}"))
        with pytest.raises(APIError) as info:
            Client(good.url, api_key=PLANTED).chat("a cat")
        texts += [str(info.value), info.value.raw]
        backend = RemoteBackend("chat", good.url, api_key=PLANTED)
        result = backend.generate(GenerationParams("a cat", seed=1))
        texts += [repr(client), repr(backend), repr(result), repr(backend.client._api_key)]
        texts += [json.dumps(result.record(0)), repr(dict(result.details))]
        save_result(result, tmp_path)
        texts.append(export_request(ChatRequest.from_prompt("a cat"), "curl", good.url, backend.client._api_key))
    texts += [r.getMessage() for r in caplog.records]
    assert any("retry" in t for t in texts)  # the retries were logged
    assert_clean(*texts, *_files_under(tmp_path))


# --- what comes from a reply (issue 13, finding 4) ----------------------------------------------

import base64  # noqa: E402

from sdkit import read_png_metadata  # noqa: E402
from sdkit.backends.relay.fakerelay import chat_completion, fake_png  # noqa: E402


def _data_uri() -> str:
    return "data:image/png;base64," + base64.b64encode(fake_png("a cat")).decode()


def test_a_key_echoed_in_the_request_id_stays_out_of_errors_results_and_pngs(tmp_path):
    echo = {"x-request-id": f"Bearer {PLANTED}"}
    with FakeRelay() as relay:
        relay.script(FakeReply.error(400, "bad request", request_id=PLANTED))
        with Client(relay.url, api_key=PLANTED) as client, pytest.raises(APIError) as info:
            client.chat("a cat")
        err = info.value
        relay.script(FakeReply.json(chat_completion({"content": f"![x]({_data_uri()})"}), headers=echo))
        with Client(relay.url, api_key=PLANTED) as client:
            reply = client.chat("a cat")
        relay.script(FakeReply.json(chat_completion({"content": f"![x]({_data_uri()})"}), headers=echo))
        with RemoteBackend("chat", relay.url, api_key=PLANTED) as backend:
            result = backend.generate(GenerationParams("a cat", seed=1))
    paths = save_result(result, tmp_path)
    assert err.request_id == MASK and "bad request" in str(err)
    assert reply.request_id == f"Bearer {MASK}"
    assert result.details["request_ids"] == [f"Bearer {MASK}"]
    assert_clean(str(err), repr(err), reply.request_id, json.dumps(result.record(0)), repr(dict(result.details)))
    assert_clean(*(p.read_bytes() for p in paths), json.dumps(read_png_metadata(paths[0]), default=str))


def test_a_bearer_token_in_a_reply_does_not_eat_the_image_after_it():
    body = json.dumps(chat_completion({"content": f"token used: Bearer abc123\n![x]({_data_uri()})"}))
    assert "abc123\\n![x](data:image/png;base64," in body  # the newline is escaped in the JSON text
    with FakeRelay() as relay:
        relay.script(FakeReply(body=body.encode()))
        with Client(relay.url, api_key=PLANTED) as client:
            reply = client.chat("a cat")
    assert reply.images[0].data == fake_png("a cat")
    assert reply.raw == body  # kept as received: nothing but the key is masked


def test_the_raw_reply_is_kept_byte_exact_but_for_the_key(tmp_path):
    content = f"key {PLANTED}, escaped {json.dumps(PLANTED)[1:-1]}; Bearer abc123\n![x]({_data_uri()})"
    body = json.dumps(chat_completion({"content": content}))
    with FakeRelay() as relay:
        relay.script(FakeReply(body=body.encode()))
        with RemoteBackend("chat", relay.url, api_key=PLANTED) as backend:
            result = backend.generate(GenerationParams("a cat", seed=1))
    assert result.details["raw_reply"] == (body.replace(PLANTED, MASK),)
    assert "Bearer abc123" in result.details["raw_reply"][0]
    assert result.images[0].size == (64, 64)


def test_scrub_finds_the_key_escaped_as_in_json_and_stops_bearer_at_a_backslash():
    key = "sk-with/slash-0123456789"
    assert scrub('{"k": "sk-with\\/slash-0123456789"}', key) == '{"k": "' + MASK + '"}'
    assert scrub('"Bearer abc123\\n![x](data:image/png;base64,iVBOR)"') == (
        f'"Bearer {MASK}\\n![x](data:image/png;base64,iVBOR)"'
    )
    assert scrub("Bearer abc123", patterns=False) == "Bearer abc123"


def test_a_key_echoed_in_the_request_id_stays_out_of_a_study_and_sdkit_info(tmp_path, monkeypatch):
    from sdkit.studies.run import run_study

    monkeypatch.setenv("SDKIT_API_KEY", PLANTED)
    echo = {"x-request-id": PLANTED}
    with FakeRelay() as relay:
        relay.script(*[FakeReply.json(chat_completion({"content": f"![x]({_data_uri()})"}), headers=echo)] * 2)
        spec = {
            "name": "echo",
            "backend": "chat",
            "base_url": relay.url,
            "params": {"prompt": "a cat"},
            "seeds": [1, 2],
        }
        run = run_study(spec, tmp_path / "study", progress=False)
    assert (run.made, run.failed) == (2, 0)
    manifest = (tmp_path / "study" / "manifest.jsonl").read_text()
    assert f'"request_ids": ["{MASK}"]' in manifest
    pngs = sorted((tmp_path / "study" / "images").glob("*.png"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    info = subprocess.run(
        [sys.executable, "-m", "sdkit", "info", str(pngs[0])], capture_output=True, text=True, env=env
    )
    assert info.returncode == 0 and info.stdout
    assert_clean(info.stdout, info.stderr, *_files_under(tmp_path))
