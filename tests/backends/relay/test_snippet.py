import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from sdkit import ChatRequest, FakeRelay, ImagesRequest, SDExtras, Secret, ValidationError, export_request
from sdkit.backends.relay.snippet import to_curl, to_javascript, to_python
from tests.backends.relay.test_apirequest import PAGE_BODY, PAGE_PROMPT

KEY = "sk-planted-snippet-0123456789"
PAGE_HEADERS = ["Accept: application/json", "Authorization: Bearer $SDKIT_API_KEY", "Content-Type: application/json"]


def curl_parts(command: str):
    tokens = shlex.split(command.replace("\\\n", " "))
    assert tokens[:4] == ["curl", "--location", "--request", "POST"]
    headers = [tokens[i + 1] for i, t in enumerate(tokens) if t == "--header"]
    body = tokens[tokens.index("--data-raw") + 1]
    return tokens[4], headers, body


def test_page_example_as_curl_carries_exactly_the_page_body_and_the_three_headers():
    snippet = to_curl(ChatRequest.from_prompt(PAGE_PROMPT), "https://relay.example")
    url, headers, body = curl_parts(snippet)
    assert url == "https://relay.example/v1/chat/completions"
    assert headers == PAGE_HEADERS
    assert body == PAGE_BODY
    assert snippet.splitlines()[1:4] == [
        "--header 'Accept: application/json' \\",
        '--header "Authorization: Bearer $SDKIT_API_KEY" \\',
        "--header 'Content-Type: application/json' \\",
    ]


def test_quotes_in_the_prompt_survive_the_shell():
    request = ChatRequest.from_prompt('it\'s a "quoted" $HOME `cat`')
    _, _, body = curl_parts(to_curl(request, "https://r.example"))
    assert body == request.to_json()


@pytest.mark.parametrize("language", ["curl", "python", "js"])
def test_the_key_is_masked_unless_asked_for(language):
    request = ChatRequest.from_prompt("a cat")
    masked = export_request(request, language, "https://r.example", Secret(KEY))
    assert KEY not in masked and "SDKIT_API_KEY" in masked
    shown = export_request(request, language, "https://r.example", Secret(KEY), include_key=True)
    assert f"Bearer {KEY}" in shown
    with pytest.raises(ValidationError, match="include_key"):
        export_request(request, language, include_key=True)


def test_unknown_language_is_refused():
    with pytest.raises(ValidationError) as info:
        export_request(ChatRequest.from_prompt("x"), "go")
    assert info.value.field == "language"


def _env(relay):
    return {**os.environ, "SDKIT_BASE_URL": relay.url, "SDKIT_API_KEY": KEY}


def _run_against_relay(command, relay):
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(relay), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


REQUEST = ChatRequest.from_prompt("a red circle", extras=SDExtras(seed=3))


def test_curl_snippet_runs_against_a_loopback_relay():
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    with FakeRelay(api_key=KEY) as relay:
        out = _run_against_relay(["bash", "-c", to_curl(REQUEST)], relay)
        assert relay.api_requests[0].body.decode() == REQUEST.to_json()
    assert json.loads(out)["object"] == "chat.completion"


def test_python_snippet_runs_against_a_loopback_relay():
    with FakeRelay(api_key=KEY) as relay:
        out = _run_against_relay([sys.executable, "-c", to_python(REQUEST)], relay)
        assert relay.api_requests[0].json() == REQUEST.to_body()
    assert "'object': 'chat.completion'" in out


def test_javascript_snippet_runs_against_a_loopback_relay():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    with FakeRelay(api_key=KEY) as relay:
        out = _run_against_relay(["node", "-e", to_javascript(REQUEST)], relay)
        assert relay.api_requests[0].json() == REQUEST.to_body()
    assert json.loads(out)["object"] == "chat.completion"


def test_images_request_snippets_use_the_images_endpoint():
    request = ImagesRequest(prompt="a cat", n=2, size="512x512")
    url, _headers, body = curl_parts(to_curl(request, "https://r.example/v1"))
    assert url == "https://r.example/v1/images/generations"
    assert json.loads(body) == {"model": "stable-diffusion-api", "prompt": "a cat", "n": 2, "size": "512x512"}
    compile(to_python(request), "<snippet>", "exec")
