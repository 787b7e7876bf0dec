import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from sdkit import load_manifest, run_study, verify_study, write_report

SPEC = """
name: small
model: tiny
params: {prompt: "a red circle on a blue background", width: 64, height: 64, scheduler: "Euler a",
         num_inference_steps: 3}
axes:
  x: "guidance_scale=1,7.5"
  y: "num_inference_steps=2-3"
seeds: [1, 2]
threads: 2
"""


def sdkit_cli(*args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "sdkit", *args], capture_output=True, text=True, env=env, timeout=600, **kw
    )


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SPEC)
    return path


def test_run_writes_a_complete_folder_and_verify_passes_in_a_new_process(tmp_path, spec_file, backend):
    out = tmp_path / "run"
    run = run_study(spec_file, out, backend=backend, progress=False)
    assert (run.made, run.kept, run.failed, run.total) == (8, 0, 0, 8)
    entries = load_manifest(out)
    assert sorted(e["cell"] for e in entries) == list(range(8))
    e = entries[0]
    for key in (
        "params",
        "seed",
        "generator",
        "batch",
        "scheduler_class",
        "scheduler_config",
        "model_hash",
        "dtype",
        "device",
        "torch_threads",
        "versions",
        "png_sha256",
        "elapsed_s",
    ):
        assert key in e, key
    assert e["labels"] == {"x": "CFG: 1", "y": "Steps: 2"}
    assert (out / "grid.png").is_file() and (out / "spec.yaml").is_file()
    env = json.loads((out / "environment.json").read_text())
    assert env["torch_threads"] == 2

    proc = sdkit_cli("study", "verify", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK - 8 identical" in proc.stdout

    again = run_study(spec_file, out, backend=backend, progress=False)
    assert (again.made, again.kept) == (0, 8)

    report = write_report(out)
    page = report.read_text()
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 8 + 1
    assert "src='http" not in page and 'src="http' not in page  # self-contained


def test_an_altered_image_fails_verification_and_is_named(tmp_path, spec_file, backend):
    out = tmp_path / "run"
    run_study(spec_file, out, backend=backend, progress=False)
    victim = out / "images" / "00005.png"
    with Image.open(victim) as im:
        info = dict(im.info)
        altered = im.copy()
    altered.putpixel((0, 0), (0, 255, 0))
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    for k, v in info.items():
        if isinstance(v, str):
            meta.add_text(k, v)
    altered.save(victim, pnginfo=meta)
    result = verify_study(out, backend=backend, progress=False)
    assert not result.ok
    bad = [c for c in result.checks if not c.ok]
    assert [(c.file, c.status) for c in bad] == [("images/00005.png", "tampered")]
    assert "images/00005.png: tampered" in result.summary()

    (out / "images" / "00002.png").unlink()
    result = verify_study(out, backend=backend, progress=False)
    assert {(c.file, c.status) for c in result.checks if not c.ok} == {
        ("images/00005.png", "tampered"),
        ("images/00002.png", "missing"),
    }
    proc = sdkit_cli("study", "verify", str(out), "--no-progress")
    assert proc.returncode == 1
    assert "images/00002.png: missing" in proc.stdout


def test_a_regenerated_image_that_differs_reports_the_largest_pixel_difference(tmp_path, spec_file, backend):
    out = tmp_path / "run"
    run_study(spec_file, out, backend=backend, progress=False)
    entries = load_manifest(out)
    entries[3]["params"]["prompt"] = "a blue square"  # as if the model drew differently now
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    result = verify_study(out, backend=backend, progress=False)
    (check,) = [c for c in result.checks if not c.ok]
    assert check.cell == 3 and check.status == "different" and check.max_diff > 0


def test_interrupted_run_resumes_with_each_image_exactly_once(tmp_path, spec_file, backend):
    out = tmp_path / "run"

    def stop_after_three(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(spec_file, out, backend=backend, progress=False, on_image=stop_after_three)
    partial = load_manifest(out)
    assert 3 <= len(partial) < 8
    run = run_study(spec_file, out, backend=backend, progress=False)
    assert run.kept == len(partial) and run.made == 8 - len(partial)
    cells = [e["cell"] for e in load_manifest(out)]
    assert sorted(cells) == list(range(8))
    assert verify_study(out, backend=backend, progress=False).ok


def test_a_killed_process_leaves_a_folder_the_next_run_completes(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(
        SPEC.replace("seeds: [1, 2]", "seeds: [1, 2, 3, 4, 5, 6]").replace("name: small", "name: big")
        + "batch: false\n"
    )
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdkit", "study", "run", str(spec), "--out", str(out), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(load_manifest(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(load_manifest(out))
    assert before < 24, "the run finished before it could be killed"
    done = sdkit_cli("study", "run", str(spec), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"kept {before}" in done.stderr or f"kept {before + 1}" in done.stderr
    cells = [e["cell"] for e in load_manifest(out)]
    assert sorted(cells) == list(range(24))
    assert not [p for p in (out / "images").iterdir() if p.name.startswith(".")]  # no temp files left


def test_resuming_with_a_different_spec_is_refused(tmp_path, spec_file, backend):
    from sdkit import ValidationError

    out = tmp_path / "run"
    run_study(spec_file, out, backend=backend, progress=False)
    spec_file.write_text(SPEC.replace("seeds: [1, 2]", "seeds: [1, 3]"))
    with pytest.raises(ValidationError, match="different spec"):
        run_study(spec_file, out, backend=backend, progress=False)


def test_remote_study_archives_replies_and_verifies_offline(tmp_path, monkeypatch):
    from sdkit import FakeRelay

    key = "sk-planted-study-0123456789abcdef"
    monkeypatch.setenv("SDKIT_API_KEY", key)
    out = tmp_path / "remote"
    with FakeRelay() as relay:
        spec = {
            "name": "remote",
            "backend": "chat",
            "base_url": relay.url,
            "sd_extras": True,
            "params": {"prompt": "a red circle", "width": 64, "height": 64},
            "axes": {"x": "guidance_scale=1,7"},
            "seeds": [1, 2],
        }
        run = run_study(spec, out, progress=False)
    assert (run.made, run.failed) == (4, 0)
    entries = load_manifest(out)
    assert all(e["regenerable"] is False and e["replies"] for e in entries)
    assert sorted(e["seed"] for e in entries) == [1, 1, 2, 2]
    for path in out.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path

    result = verify_study(out, progress=False)  # the relay is gone: checked from the archive alone
    assert result.ok and {c.status for c in result.checks} == {"archived"}
    reply = out / entries[1]["replies"][0]["file"]
    reply.write_text(reply.read_text().replace("chat.completion", "chat.completiom"))
    result = verify_study(out, progress=False)
    assert [(c.cell, c.status) for c in result.checks if not c.ok] == [(1, "archive-tampered")]


def test_a_grid_that_does_not_match_its_images_fails_verification(tmp_path, spec_file, backend):
    out = tmp_path / "run"
    run_study(spec_file, out, backend=backend, progress=False)
    Image.new("RGB", (10, 10)).save(out / "grid.png")
    result = verify_study(out, backend=backend, progress=False)
    assert not result.ok
    assert "grid.png does not match the images it is made of" in result.summary()
