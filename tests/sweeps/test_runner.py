import json

import numpy as np
import pytest
from PIL import Image

from sdkit import GenerationError, GenerationParams, GenerationResult, Sweep, read_png_metadata, run_sweep
from sdkit.sweeps.runner import backend_identity, cache_key


class FakeBackend:
    """Solid-colour images from the seed; a prompt containing FAIL fails; ``stop_after`` interrupts."""

    name = "fake"

    def __init__(self, stop_after=None):
        self.calls = []
        self.stop_after = stop_after
        self.made = 0

    def identity(self):
        return {}

    def generate(self, params):
        return self.generate_many([params])[0]

    def generate_many(self, params, *, on_result=None, return_errors=False):
        self.calls.append(list(params))
        out = []
        for i, p in enumerate(params):
            if self.stop_after is not None and self.made >= self.stop_after:
                raise KeyboardInterrupt
            if "FAIL" in p.prompt:
                outcome = GenerationError(f"cannot draw {p.prompt!r}")
                if not return_errors:
                    raise outcome
            else:
                colour = (p.seed % 256, p.num_inference_steps * 10 % 256, int(p.guidance_scale * 10) % 256)
                image = Image.new("RGB", (64, 64), colour)
                outcome = GenerationResult(p, (image,), (p.seed,), p.model, self.name)
                self.made += 1
            out.append(outcome)
            if on_result is not None:
                on_result(i, outcome)
        return out


BASE = GenerationParams("a cat", seed=1, num_inference_steps=2)


def test_runs_every_cell_in_one_backend_call_and_keeps_grid_order(tmp_path):
    backend = FakeBackend()
    sweep = Sweep(BASE, x="cfg=1,2,3", y="steps=2,4", seeds=2)
    result = run_sweep(sweep, backend, tmp_path, progress=False)
    assert len(backend.calls) == 1
    assert len(backend.calls[0]) == 12
    assert [c.cell for c in result.cells] == sweep.cells()
    assert result.count("generated") == 12
    first = result.cells[0]
    assert first.path == tmp_path / "images" / f"{first.key}.png"
    assert read_png_metadata(first.path)["sdkit"]["cache_key"] == first.key
    assert result.grid_paths == (tmp_path / "grid.png",)


def test_model_axis_is_the_outer_loop():
    backend = FakeBackend()
    sweep = Sweep(BASE, x="model=tiny,other", y="cfg=1,2")
    run_sweep(sweep, backend, None, progress=False)
    assert [p.model for p in backend.calls[0]] == ["tiny", "tiny", "other", "other"]


def test_a_rerun_regenerates_nothing(tmp_path):
    sweep = Sweep(BASE, x="cfg=1,2", seeds=2)
    first = run_sweep(sweep, FakeBackend(), tmp_path, progress=False)
    backend = FakeBackend()
    again = run_sweep(sweep, backend, tmp_path, progress=False)
    assert backend.calls == []
    assert again.count("cached") == 4
    for a, b in zip(first.cells, again.cells, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    sweep = Sweep(BASE, x="cfg=1,2,3", y="steps=2,4")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, FakeBackend(stop_after=4), tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [c["status"] for c in manifest["cells"]].count("generated") == 4
    assert [c["status"] for c in manifest["cells"]].count("pending") == 2
    backend = FakeBackend()
    result = run_sweep(sweep, backend, tmp_path, progress=False)
    assert len(backend.calls[0]) == 2
    assert (result.count("cached"), result.count("generated")) == (4, 2)
    assert len(list((tmp_path / "images").glob("*.png"))) == 6


def test_a_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path):
    sweep = Sweep(GenerationParams("a cat", seed=1), x="prompt_sr=cat,FAIL,dog")
    result = run_sweep(sweep, FakeBackend(), tmp_path, progress=False)
    assert [c.status for c in result.cells] == ["generated", "failed", "generated"]
    assert "GenerationError: cannot draw 'a FAIL'" in result.cells[1].error
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["cells"][1]["status"] == "failed"
    assert "cannot draw" in manifest["cells"][1]["error"]
    backend = FakeBackend()
    run_sweep(sweep, backend, tmp_path, progress=False)
    assert [p.prompt for p in backend.calls[0]] == ["a FAIL"]  # failures are not cached: tried again


def test_an_unexpected_backend_crash_only_fails_the_faulty_cells():
    class Crashing(FakeBackend):
        def generate_many(self, params, **kw):
            if len(params) > 1:
                raise TypeError("boom")
            if params[0].guidance_scale == 2.0:
                raise TypeError("bad cfg")
            return super().generate_many(params, **kw)

    result = run_sweep(Sweep(BASE, x="cfg=1,2,3"), Crashing(), None, progress=False)
    assert [c.status for c in result.cells] == ["generated", "failed", "generated"]
    assert "bad cfg" in result.cells[1].error


def test_manifest_lists_every_image_with_its_place_and_parameters(tmp_path):
    sweep = Sweep(BASE, x="cfg=1,2", z="steps=2,3")
    run_sweep(sweep, FakeBackend(), tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["count"] == 4
    assert manifest["grids"] == ["grid-z0.png", "grid-z1.png"]
    assert manifest["labels"] == {"x": ["CFG: 1", "CFG: 2"], "z": ["Steps: 2", "Steps: 3"]}
    assert Sweep.from_dict(manifest["sweep"]) == sweep
    cell = manifest["cells"][3]
    assert (cell["x"], cell["z"], cell["params"]["guidance_scale"]) == (1, 1, 2.0)
    assert (tmp_path / cell["file"]).is_file()


def test_cache_key_changes_with_parameters_and_backend_but_not_with_calls():
    fake = backend_identity(FakeBackend())
    assert fake == {"name": "fake", "batching": "none"}
    key = cache_key(fake, BASE)
    assert key == cache_key(fake, GenerationParams("a cat", seed=1, num_inference_steps=2))
    assert key != cache_key(fake, BASE.replace(seed=2))
    assert key != cache_key({**fake, "name": "local"}, BASE)
    assert key != cache_key({**fake, "batching": "max_batch=8"}, BASE)


def test_local_sweep_batches_cells_and_matches_images_made_alone(backend, tmp_path):
    sweep = Sweep(GenerationParams("a red circle", seed=3, num_inference_steps=2), x="cfg=1,7", seeds=2)
    result = run_sweep(sweep, backend, tmp_path, progress=False)
    assert [c.record["batch_size"] for c in result.cells] == [2, 2, 2, 2]
    assert result.backend["batching"] == f"max_batch={backend.max_batch}"
    for c in result.cells:
        alone = backend.generate(c.cell.params).images[0]
        diff = np.abs(np.asarray(alone, dtype=np.int16) - np.asarray(c.image, dtype=np.int16)).max()
        assert diff <= 1
    assert result.cells[0].image.size == (64, 64)
    assert read_png_metadata(result.cells[0].path)["parameters"]["Seed"] == "3"


def test_backend_identity_keeps_the_remote_url_without_credentials():
    from sdkit import RemoteBackend

    remote = RemoteBackend("chat", "https://user:secret@relay.example:8443/v1?key=sk-123", model="sd-turbo")
    ident = backend_identity(remote)
    assert ident == {
        "name": "chat",
        "model": "sd-turbo",
        "sd_extras": False,
        "base_url": "https://relay.example:8443/v1",
        "batching": "none",
    }
    assert "secret" not in json.dumps(ident) and "sk-123" not in json.dumps(ident)


def test_a_result_without_images_is_a_failed_cell():
    class Empty(FakeBackend):
        def generate_many(self, params, *, on_result=None, return_errors=False):
            out = [GenerationResult(p, (), (), p.model, self.name) for p in params]
            for i, r in enumerate(out):
                on_result(i, r)
            return out

    result = run_sweep(Sweep(BASE, x="cfg=1,2"), Empty(), None, progress=False)
    assert [c.status for c in result.cells] == ["failed", "failed"]
    assert "no image" in result.cells[0].error


def test_remote_sweep_runs_concurrently_with_a_bound_and_reruns_from_cache(tmp_path):
    from sdkit import FakeRelay, RemoteBackend
    from sdkit.backends.relay.fakerelay import fake_color

    sweep = Sweep(GenerationParams("a cat", seed=1), x="seed=1-4", y="prompt_sr=cat,dog")
    with FakeRelay(delay=0.05) as relay:
        with RemoteBackend("images", relay.url, sd_extras=True, max_concurrency=3) as backend:
            result = run_sweep(sweep, backend, tmp_path, progress=False)
            sent = len(relay.api_requests)
            again = run_sweep(sweep, backend, tmp_path, progress=False)
        assert len(relay.api_requests) == sent == 8
        assert 1 < relay.max_in_flight <= 3
    assert result.count("generated") == 8 and again.count("cached") == 8
    for c in result.cells:
        assert c.image.getpixel((0, 0)) == fake_color(c.cell.params.prompt, c.cell.params.seed)
    assert result.backend["name"] == "images" and result.backend["batching"] == "none"


def test_a_write_error_mid_sweep_names_the_file_and_keeps_the_finished_images(tmp_path, monkeypatch):
    import sdkit.engine.runfolder
    from sdkit import SdkitError

    real = sdkit.engine.runfolder.atomic_write_bytes
    written = []

    def refuse_after_two(path, data):
        if path.suffix == ".png" and len(written) == 2:
            raise PermissionError(13, "Permission denied", str(path))
        real(path, data)
        if path.suffix == ".png":
            written.append(path)

    monkeypatch.setattr(sdkit.engine.runfolder, "atomic_write_bytes", refuse_after_two)
    sweep = Sweep(BASE, x="cfg=1,2,3")
    with pytest.raises(SdkitError, match=r"could not write .*images/[0-9a-f]{64}\.png: Permission denied") as info:
        run_sweep(sweep, FakeBackend(), tmp_path, progress=False)
    assert isinstance(info.value.__cause__, PermissionError)
    assert all(p.is_file() for p in written)
    monkeypatch.undo()
    backend = FakeBackend()
    result = run_sweep(sweep, backend, tmp_path, progress=False)
    assert (result.count("cached"), result.count("generated")) == (2, 1)


def test_grids_carry_the_sweep_description_in_a_text_chunk_and_a_title_line(tmp_path):
    sweep = Sweep(BASE.replace(prompt="a cat on a mat"), x="cfg=1,2", seeds=2)
    result = run_sweep(sweep, FakeBackend(), tmp_path, progress=False)
    (path,) = result.grid_paths
    meta = read_png_metadata(path)
    described = json.loads(meta["text"]["sdkit-grid"])
    assert described["prompt"] == "a cat on a mat"
    assert described["model"] == BASE.model
    assert described["seeds"] == [1, 2]
    assert described["axes"] == {"x": "guidance_scale=1,2"}
    assert meta["text"]["Title"].startswith("a cat on a mat · model ")
    assert meta["text"]["Title"].endswith("seeds 1-2")
    plain = result.grids(describe=False)[0]
    with Image.open(path) as titled:
        assert titled.height > plain.height  # the title band above the labels
        band = titled.convert("L").crop((0, 0, titled.width, titled.height - plain.height))
        assert band.getextrema()[0] < 128  # text is drawn in it


def test_resume_seed_reuses_the_recorded_seed_only_for_the_same_sweep(tmp_path):
    from sdkit.sweeps.runner import resume_seed

    recorded = Sweep(BASE.replace(seed=12345), x="cfg=1,2")
    run_sweep(recorded, FakeBackend(), tmp_path, progress=False)
    redrawn = Sweep(BASE.replace(seed=999), x="cfg=1,2")
    assert resume_seed(redrawn, tmp_path) == recorded
    assert resume_seed(Sweep(BASE.replace(seed=999), x="cfg=1,3"), tmp_path) is None
    assert resume_seed(Sweep(BASE.replace(seed=999, prompt="a dog"), x="cfg=1,2"), tmp_path) is None
    assert resume_seed(redrawn, tmp_path / "nowhere") is None
    (tmp_path / "manifest.json").write_text("123")
    assert resume_seed(redrawn, tmp_path) is None


def test_sweep_cli_without_seed_resumes_into_the_same_folder(tmp_path, capsys):
    from sdkit.cli.main import main

    out = tmp_path / "sweep"
    args = ["sweep", "a red circle", "--x", "cfg=1,7", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    seed = json.loads((out / "manifest.json").read_text())["sweep"]["base"]["seed"]
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"resuming with seed {seed}" in err
    assert "0 generated, 2 cached, 0 failed" in err
    assert len(list((out / "images").glob("*.png"))) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sweep"]["base"]["seed"] == seed and manifest["count"] == 2
    assert main([*args, "--seed", str((seed + 1) % 2**32)]) == 0  # an explicit seed is a new sweep
    assert len(list((out / "images").glob("*.png"))) == 4


def test_sweep_files_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o002)
    try:
        run_sweep(Sweep(BASE, x="cfg=1,2"), FakeBackend(), tmp_path, progress=False)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "grid.png"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o664}


@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
def test_a_sweep_interrupted_by_a_signal_resumes_with_no_corrupt_or_orphan_file(tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "sdkit", "sweep", "a red circle", "--x", "cfg=1,2,3,4", "--y", "steps=2,3"]
    args += ["--seeds", "3", "--seed", "5", "--max-batch", "1", "--out", str(out), "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("images/*.png"))) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(getattr(signal, sig))
    proc.communicate(timeout=60)
    made = {p.name for p in out.glob("images/*.png")}
    assert 3 <= len(made) < 24, "the sweep finished before it could be interrupted"
    for name in made:  # whatever is there is a whole PNG
        with Image.open(out / "images" / name) as im:
            im.load()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{24 - len(made)} generated, {len(made)} cached, 0 failed" in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {Path(c["file"]).name for c in manifest["cells"]}
    on_disk = {p.name for p in (out / "images").iterdir()}
    assert listed == on_disk and len(listed) == 24  # no orphan, no temporary file, nothing missing


def test_a_model_the_backend_cannot_load_is_refused_before_any_image(tmp_path):
    import sdkit

    sweep = Sweep(GenerationParams("x", seed=1, num_inference_steps=2), x="model=tiny,tiny2")
    with pytest.raises(sdkit.ValidationError, match="did you mean 'tiny'"):
        run_sweep(sweep, sdkit.LocalBackend(progress=False), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
