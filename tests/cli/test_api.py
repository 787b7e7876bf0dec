"""`sdkit request` and `sdkit generate --backend chat|images` (in-process, against a loopback relay)."""

import json

import pytest

from sdkit import FakeRelay, read_png_metadata
from sdkit.backends.relay.fakerelay import fake_color
from sdkit.cli.main import main
from tests.backends.relay.test_apirequest import PAGE_BODY, PAGE_PROMPT
from tests.backends.relay.test_snippet import PAGE_HEADERS, curl_parts


@pytest.fixture(autouse=True)
def _no_api_env(monkeypatch):
    for name in ("SDKIT_BASE_URL", "SDKIT_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_request_curl_of_the_page_example_is_the_page_body_and_headers(capsys):
    assert main(["request", PAGE_PROMPT, "--curl", "--base-url", "https://relay.example"]) == 0
    url, headers, body = curl_parts(capsys.readouterr().out)
    assert (url, headers, body) == ("https://relay.example/v1/chat/completions", PAGE_HEADERS, PAGE_BODY)


def test_request_defaults_to_curl_reading_base_url_from_the_environment(capsys, monkeypatch):
    assert main(["request", "a cat"]) == 0
    assert '"$SDKIT_BASE_URL/v1/chat/completions"' in capsys.readouterr().out
    monkeypatch.setenv("SDKIT_BASE_URL", "https://env.example/v1")
    assert main(["request", "a cat", "--model", "sd3"]) == 0
    url, _, body = curl_parts(capsys.readouterr().out)
    assert url == "https://env.example/v1/chat/completions" and json.loads(body)["model"] == "sd3"


@pytest.mark.parametrize(("flag", "marker"), [("--python", "httpx.post("), ("--js", "fetch(")])
def test_request_in_python_and_javascript(capsys, flag, marker):
    assert main(["request", "a cat", flag, "--base-url", "https://r.example"]) == 0
    out = capsys.readouterr().out
    assert marker in out and "https://r.example/v1/chat/completions" in out
    if flag == "--python":
        compile(out, "<snippet>", "exec")


def test_request_sd_extras_images_endpoint_and_include_key(capsys, monkeypatch):
    monkeypatch.setenv("SDKIT_API_KEY", "sk-cli-key-123")
    assert main(["request", "a cat", "--backend", "images", "--size", "512x512", "--seed", "4"]) == 0
    _, headers, body = curl_parts(capsys.readouterr().out)
    assert json.loads(body) == {"model": "stable-diffusion-api", "prompt": "a cat", "size": "512x512", "seed": 4}
    assert "Authorization: Bearer $SDKIT_API_KEY" in headers
    assert main(["request", "a cat", "--include-key"]) == 0
    assert "Authorization: Bearer sk-cli-key-123" in curl_parts(capsys.readouterr().out)[1]


def test_request_bad_input_exits_2(capsys):
    assert main(["request", "a cat", "--seed", "-1"]) == 2
    assert "seed=-1" in capsys.readouterr().err
    assert main(["request", "a cat", "--include-key"]) == 2
    assert "api_key" in capsys.readouterr().err


def test_generate_through_the_chat_api_writes_pngs_like_the_local_path(tmp_path, capsys):
    with FakeRelay() as relay:
        code = main(["generate", "a red circle", "--backend", "chat", "--base-url", relay.url, "--out", str(tmp_path)])
    assert code == 0
    paths = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["00000-x.png"]  # the remote seed is unknown
    meta = read_png_metadata(paths[0])
    assert meta["sdkit"]["backend"] == "chat" and meta["sdkit"]["model"] == "stable-diffusion-api"
    assert meta["sdkit"]["base_url"] == relay.url
    assert "Backend: chat" in meta["text"]["parameters"]


def test_generate_through_the_images_api_with_sd_extras_keeps_seeds(tmp_path, capsys):
    with FakeRelay() as relay:
        args = ["generate", "a cat", "--backend", "images", "--base-url", relay.url, "--sd-extras"]
        code = main([*args, "--seed", "5", "--n", "2", "--model", "sd-turbo", "--out", str(tmp_path)])
        sent = sorted((r.json() for r in relay.api_requests), key=lambda b: b["seed"])
    assert code == 0
    paths = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["00000-5.png", "00001-6.png"]
    assert [b["model"] for b in sent] == ["sd-turbo"] * 2
    meta = read_png_metadata(paths[1])
    assert meta["parameters"]["Seed"] == "6"
    from PIL import Image

    with Image.open(paths[1]) as im:
        assert im.convert("RGB").getpixel((0, 0)) == fake_color("a cat", 6)


def test_generate_without_a_base_url_exits_2_naming_it(tmp_path, capsys):
    assert main(["generate", "a cat", "--backend", "chat", "--out", str(tmp_path)]) == 2
    assert "base_url=None" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_generate_api_failure_exits_1_with_the_server_message(tmp_path, capsys):
    with FakeRelay(api_key="sk-right") as relay:
        code = main(["generate", "x", "--backend", "chat", "--base-url", relay.url, "--out", str(tmp_path)])
    assert code == 1
    assert "HTTP 401" in capsys.readouterr().err
