"""Prompt ideas through Chat: expand_prompt against a loopback chat model that returns text; the
prompt_expand=N axis in sweeps (CLI) and studies (recorded, cached, verified offline)."""

from __future__ import annotations

import json

import pytest

import sdkit
from sdkit import FakeRelay, FakeReply, expand_axis, expand_prompt, load_manifest, run_study, verify_study
from sdkit.backends.relay.expand import DEFAULT_SYSTEM_PROMPT, expand_count, resolve_expand_axes
from sdkit.cli.main import main

KEY = "sk-planted-expand-0123456789abcdef"


@pytest.fixture
def relay():
    with FakeRelay(api_key=KEY) as r:
        yield r


def test_asks_the_chat_model_with_the_system_prompt_and_the_idea(relay):
    e = expand_prompt("a lighthouse", model="fake-text", n=3, base_url=relay.url, api_key=KEY)
    bodies = [r.json() for r in relay.api_requests]
    assert [b["seed"] for b in bodies] == [0, 1, 2]
    assert bodies[0]["model"] == "fake-text"
    assert bodies[0]["messages"] == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "a lighthouse"},
    ]
    assert relay.api_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert len(e.prompts) == 3 and len(set(e.prompts)) == 3
    assert all(p.startswith("a lighthouse, ") for p in e.prompts)
    assert (e.model, e.system_prompt, e.base_url) == ("fake-text", DEFAULT_SYSTEM_PROMPT, relay.url)
    assert [json.loads(r)["choices"][0]["message"]["content"] for r in e.raw_replies] == list(e.prompts)


def test_the_system_prompt_is_editable_and_changes_the_reply(relay):
    a = expand_prompt("a lighthouse", model="fake-text", base_url=relay.url, api_key=KEY)
    b = expand_prompt("a lighthouse", model="fake-text", base_url=relay.url, api_key=KEY, system_prompt="Be terse.")
    assert relay.api_requests[-1].json()["messages"][0] == {"role": "system", "content": "Be terse."}
    assert a.key != b.key


def test_a_reply_is_cleaned_of_quotes_and_labels(relay):
    relay.script(FakeReply.chat('Prompt: "a lighthouse, stormy sea, oil painting"\n\nI hope this helps!'))
    e = expand_prompt("a lighthouse", model="other", base_url=relay.url, api_key=KEY)
    assert e.prompts == ("a lighthouse, stormy sea, oil painting",)


def test_an_empty_reply_is_a_reply_error(relay):
    relay.script(FakeReply.chat("   "))
    with pytest.raises(sdkit.ReplyError, match="no text"):
        expand_prompt("a lighthouse", model="other", base_url=relay.url, api_key=KEY)


def test_cached_expansions_cost_no_request(relay, tmp_path):
    first = expand_prompt("a lighthouse", model="fake-text", n=2, base_url=relay.url, api_key=KEY, cache=tmp_path)
    sent = len(relay.api_requests)
    again = expand_prompt("a lighthouse", model="fake-text", n=2, base_url=relay.url, api_key=KEY, cache=tmp_path)
    assert again == first and len(relay.api_requests) == sent
    assert KEY not in (tmp_path / f"{first.key}.json").read_text()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"idea": " "}, "idea"),
        ({"n": 0}, "n"),
        ({"n": 17}, "n"),
        ({"model": ""}, "model"),
        ({"system_prompt": ""}, "system_prompt"),
    ],
)
def test_bad_input_is_refused_before_any_request(relay, kwargs, field):
    args = {"idea": "a lighthouse", "base_url": relay.url, "api_key": KEY, **kwargs}
    with pytest.raises(sdkit.ValidationError) as caught:
        expand_prompt(args.pop("idea"), **args)
    assert caught.value.field == field and relay.api_requests == []


def test_the_axis_is_a_prompt_axis_labelled_by_idea(relay):
    axis = expand_axis(expand_prompt("a lighthouse", model="fake-text", n=2, base_url=relay.url, api_key=KEY))
    assert axis.param == "prompt" and axis.labels == ("idea 1", "idea 2")
    assert expand_count("prompt_expand=3") == 3 and expand_count("steps=3") is None
    with pytest.raises(sdkit.ValidationError, match="prompt_expand"):
        expand_count("prompt_expand=99")
    with pytest.raises(sdkit.ValidationError, match="chat model first"):
        sdkit.Sweep(sdkit.GenerationParams("x", seed=1), x="prompt_expand=2")


def test_offline_resolution_needs_the_kept_expansions(tmp_path):
    with pytest.raises(sdkit.ValidationError, match="not in"):
        resolve_expand_axes({"x": "prompt_expand=2"}, "a lighthouse", cache=tmp_path, offline=True)


def test_cli_expand_prints_one_prompt_a_line(relay, monkeypatch, capsys):
    monkeypatch.setenv("SDKIT_BASE_URL", relay.url)
    monkeypatch.setenv("SDKIT_API_KEY", KEY)
    assert main(["expand", "a lighthouse", "-n", "2", "--model", "fake-text"]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("a lighthouse, ") for line in lines)
    assert main(["expand", "a lighthouse", "--model", "fake-text", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "fake-text" and record["raw_replies"]
    assert main(["expand", "a lighthouse", "-n", "0"]) == 2


def test_cli_sweep_with_a_prompt_expand_axis_keeps_the_expansion(relay, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SDKIT_BASE_URL", relay.url)
    monkeypatch.setenv("SDKIT_API_KEY", KEY)
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "a lighthouse",
        "--x",
        "prompt_expand=2",
        "--chat-model",
        "fake-text",
        "--backend",
        "images",
        "--out",
        str(out),
        "--seed",
        "1",
        "--no-progress",
        "--size",
        "64x64",
    ]
    assert main(args) == 0
    (kept,) = (out / "expansions").glob("*.json")
    record = json.loads(kept.read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    prompts = sorted({c["params"]["prompt"] for c in manifest["cells"]})
    assert prompts == sorted(record["prompts"])
    sent = len(relay.api_requests)
    assert main(args) == 0  # cached: neither the prompts nor the images are asked for again
    assert len(relay.api_requests) == sent


def test_a_study_with_a_prompt_expand_axis_records_resumes_and_verifies_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SDKIT_API_KEY", KEY)
    out = tmp_path / "ideas"
    with FakeRelay(api_key=KEY) as relay:
        spec = {
            "name": "ideas",
            "backend": "images",
            "base_url": relay.url,
            "sd_extras": True,
            "params": {"prompt": "a lighthouse", "width": 64, "height": 64},
            "axes": {"x": "prompt_expand=3"},
            "expand": {"model": "fake-text", "base_url": relay.url},
            "seeds": [1],
        }
        run = run_study(spec, out, progress=False)
        assert (run.made, run.failed) == (3, 0)
        chats = [r for r in relay.api_requests if r.path.endswith("/chat/completions")]
        assert len(chats) == 3
        again = run_study(spec, out, progress=False)
        assert again.kept == 3 and len([r for r in relay.api_requests if r.path.endswith("/chat/completions")]) == 3
    (kept,) = (out / "expansions").glob("*.json")
    record = json.loads(kept.read_text())
    assert record["model"] == "fake-text" and len(record["raw_replies"]) == 3
    assert sorted(e["params"]["prompt"] for e in load_manifest(out)) == sorted(record["prompts"])
    assert verify_study(out, progress=False).ok  # the relay is gone: prompts and images from the folder
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    kept.unlink()
    with pytest.raises(sdkit.ValidationError, match="prompt_expand"):
        verify_study(out, progress=False)
