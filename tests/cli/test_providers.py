"""``--backend stability|bfl`` in generate, sweep and study, on the loopback fakes: PNGs with infotext and the
sdkit record, bad input refused with exit 2 before any request, and the key in no output."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from sdkit import FakeBFL, FakeStability
from sdkit.cli.main import main
from sdkit.metadata.pngfile import read_png_metadata

KEY = "sk-planted-cli-providers-0123456789"


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setenv("STABILITY_API_KEY", KEY)
    monkeypatch.setenv("BFL_API_KEY", KEY)
    with FakeStability(api_key=KEY) as stability, FakeBFL(api_key=KEY) as flux:
        yield {"stability": stability, "bfl": flux}


def no_key_anywhere(folder, *texts):
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    for text in texts:
        assert KEY not in text


@pytest.mark.parametrize("kind", ["stability", "bfl"])
def test_generate_with_a_service_writes_pngs_with_infotext_and_record(fakes, kind, tmp_path, capsys):
    out = tmp_path / kind
    args = [
        "generate",
        "a lighthouse",
        "--backend",
        kind,
        "--base-url",
        fakes[kind].url,
        "--seed",
        "3",
        "--size",
        "64x64",
        "--out",
        str(out),
        "--backend-option",
        "poll_interval=0.01",
    ]
    if kind == "stability":
        args = args[:-2]
    assert main(args) == 0
    (png,) = out.glob("*.png")
    meta = read_png_metadata(png)
    assert meta["parameters"]["Backend"] == kind and meta["parameters"]["Seed"] == "3"
    assert meta["sdkit"]["backend"] == kind and meta["sdkit"]["seed"] == 3
    captured = capsys.readouterr()
    no_key_anywhere(out, captured.out, captured.err)


@pytest.mark.parametrize(("kind", "model"), [("stability", "dall-e-3"), ("bfl", "flux/../x")])
def test_a_model_the_service_does_not_take_is_exit_2_before_any_request(fakes, kind, model, tmp_path, capsys):
    args = ["generate", "x", "--backend", kind, "--base-url", fakes[kind].url, "--model", model, "--out", str(tmp_path)]
    assert main(args) == 2
    assert "model=" in capsys.readouterr().err
    assert fakes[kind].api_requests == []


def test_sweep_with_stability(fakes, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "a lighthouse",
        "--x",
        "size=64x64,128x64",
        "--backend",
        "stability",
        "--base-url",
        fakes["stability"].url,
        "--seed",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["status"] for c in manifest["cells"]] == ["generated", "generated"]
    sizes = [Image.open(out / c["file"]).size for c in manifest["cells"]]
    assert sizes == [(64, 64), (64, 36)]  # the service picks the size: the fake's 64-pixel long side at 1:1, 16:9
    no_key_anywhere(out, *capsys.readouterr())


def test_study_with_bfl_runs_and_verifies_offline(fakes, tmp_path, capsys):
    spec = tmp_path / "flux.yaml"
    spec.write_text(
        f"name: flux\nbackend: bfl\nbase_url: {fakes['bfl'].url}\nbackend_options: {{poll_interval: 0.01}}\n"
        'params: {prompt: a lighthouse, width: 64, height: 64}\naxes: {x: "prompt_sr=lighthouse,windmill"}\n'
        "seeds: [1, 2]\n"
    )
    out = tmp_path / "run"
    assert main(["study", "run", str(spec), "--out", str(out), "--no-progress"]) == 0
    fakes["bfl"].stop()
    assert main(["study", "verify", str(out), "--no-progress"]) == 0
    assert "4 archived" in capsys.readouterr().out
    no_key_anywhere(out)


def test_a_backend_option_with_a_typo_is_named(fakes, tmp_path, capsys):
    args = [
        "generate",
        "x",
        "--backend",
        "bfl",
        "--base-url",
        fakes["bfl"].url,
        "--backend-option",
        "pol_interval=1",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 2
    assert "poll_interval" in capsys.readouterr().err
    assert fakes["bfl"].api_requests == []
