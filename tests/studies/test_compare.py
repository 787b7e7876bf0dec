"""A cross-provider study: the same spec on the local tiny model and the Stability and Flux fakes; it runs,
resumes, verifies offline (the fakes gone), names a tampered archive, and no output holds the key."""

from __future__ import annotations

import pytest

import sdkit
from sdkit import FakeBFL, FakeStability, load_manifest
from sdkit.studies.compare import provider_specs, run_comparison, verify_comparison

KEY = "sk-planted-compare-0123456789abcdef"

SPEC = {
    "name": "lighthouse",
    "model": "tiny",
    "params": {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "num_inference_steps": 2},
    "axes": {"x": "guidance_scale=1,7"},
    "seeds": [1, 2],
}


@pytest.fixture
def fakes():
    with FakeStability(api_key=KEY) as stability, FakeBFL(api_key=KEY) as bfl:
        yield stability, bfl


def providers(stability, bfl):
    return {
        "local": {"backend": "local", "threads": 1},
        "stability": {"backend": "stability", "base_url": stability.url, "model": "sd3.5-medium"},
        "flux": {"backend": "bfl", "base_url": bfl.url, "backend_options": {"poll_interval": 0.01}},
    }


def test_the_same_study_runs_resumes_and_verifies_offline_on_each_provider(tmp_path, fakes, monkeypatch):
    monkeypatch.setenv("STABILITY_API_KEY", KEY)
    monkeypatch.setenv("BFL_API_KEY", KEY)
    out = tmp_path / "compare"
    stability, bfl = fakes

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    local = sdkit.create_backend("local", threads=1, progress=False)
    interrupted = sdkit.create_backend("stability", base_url=stability.url)
    real_generate_many = interrupted.generate_many

    def generate_many(params, *, on_result=None, return_errors=False):  # Ctrl-C after the first stability image
        def report(i, r):
            on_result(i, r)
            raise KeyboardInterrupt

        return real_generate_many(params[:1], on_result=report, return_errors=return_errors)

    interrupted.generate_many = generate_many
    with pytest.raises(KeyboardInterrupt):
        run_comparison(SPEC, providers(stability, bfl), out, backends={"local": local, "stability": interrupted})
    assert len(load_manifest(out / "stability")) == 1
    sent = len(stability.api_requests)

    result = run_comparison(SPEC, providers(stability, bfl), out, backends={"local": local})
    assert result.complete
    assert (result.runs["local"].kept, result.runs["stability"].kept, result.runs["stability"].made) == (4, 1, 3)
    assert len(stability.api_requests) == sent + 3  # the image kept is not asked for again
    assert result.grid_path.is_file()

    for label, backend in (("stability", "stability"), ("flux", "bfl")):
        entries = load_manifest(out / label)
        assert {e["backend"] for e in entries} == {backend}
        assert all(e["regenerable"] is False and e["replies"] for e in entries)
        assert sorted(e["seed"] for e in entries) == [1, 1, 2, 2]  # the seeds the services report
    assert {e["model"] for e in load_manifest(out / "stability")} == {"sd3.5-medium"}
    assert {e["model"] for e in load_manifest(out / "flux")} == {"flux-dev"}

    for path in out.rglob("*"):  # PNGs (text chunks), manifests, specs, replies, grids, environment
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path

    stability.stop()
    bfl.stop()
    monkeypatch.delenv("STABILITY_API_KEY")
    monkeypatch.delenv("BFL_API_KEY")
    checks = verify_comparison(out)
    assert checks["grid"] is True
    assert all(checks[label].ok for label in ("local", "stability", "flux")), {
        k: v.summary() for k, v in checks.items() if k != "grid"
    }
    assert {c.status for c in checks["stability"].checks} == {"archived"}
    assert all("equals the PNG" in c.note for c in checks["stability"].checks)
    assert all("only linked" in c.note for c in checks["flux"].checks)

    entry = load_manifest(out / "stability")[2]
    reply = out / "stability" / entry["replies"][0]["file"]
    reply.write_bytes(reply.read_bytes().replace(b'"seed"', b'"sead"'))
    bad = verify_comparison(out)["stability"]
    assert [(c.cell, c.status) for c in bad.checks if not c.ok] == [(entry["cell"], "archive-tampered")]


def test_a_provider_setting_is_checked_by_name_before_any_work(tmp_path):
    with pytest.raises(sdkit.ValidationError) as caught:
        provider_specs(SPEC, {"stability": {"backend": "stability", "base_url": "http://x", "seeds": [3]}})
    assert caught.value.field == "providers.stability.seeds"
    with pytest.raises(sdkit.ValidationError) as caught:
        provider_specs(SPEC, {"s": {"backend": "stability", "base_url": "http://x", "backend_options": {"modle": 1}}})
    assert caught.value.field.startswith("providers.s.") and "model" in str(caught.value)


def test_a_prompt_expand_axis_is_asked_once_and_shared_by_every_provider(tmp_path, fakes, monkeypatch):
    from sdkit import FakeRelay

    monkeypatch.setenv("SDKIT_API_KEY", KEY)
    stability, bfl = fakes
    with FakeRelay(api_key=KEY) as relay:
        spec = {**SPEC, "axes": {"x": "prompt_expand=2"}, "expand": {"model": "fake-text", "base_url": relay.url}}
        chosen = {k: v for k, v in providers(stability, bfl).items() if k != "local"}
        result = run_comparison(spec, chosen, tmp_path / "c")
        assert result.complete and len(relay.api_requests) == 2
    prompts = {
        label: sorted({e["params"]["prompt"] for e in load_manifest(tmp_path / "c" / label)}) for label in chosen
    }
    assert prompts["stability"] == prompts["flux"] and len(prompts["flux"]) == 2
    assert all(checks.ok for label, checks in verify_comparison(tmp_path / "c").items() if label != "grid")


def test_a_stability_study_with_image_replies_archives_the_bytes_and_verifies(tmp_path, fakes, monkeypatch):
    monkeypatch.setenv("STABILITY_API_KEY", KEY)
    stability, _ = fakes
    spec = {**SPEC, "backend": "stability", "base_url": stability.url, "backend_options": {"accept": "image"}}
    out = tmp_path / "image-replies"
    assert sdkit.run_study(spec, out, progress=False).complete
    entries = load_manifest(out)
    assert all(e["replies"][0]["file"].endswith(".bin") for e in entries)
    assert (out / entries[0]["replies"][0]["file"]).read_bytes().startswith(b"\x89PNG")
    stability.stop()
    checks = sdkit.verify_study(out, progress=False)
    assert checks.ok and all("equals the PNG" in c.note for c in checks.checks)
