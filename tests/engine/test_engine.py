"""The execution engine with a backend written outside sdkit against the contract alone: registered
through the public API, it sweeps (cached by its identity), runs studies and has them verified; the
planner and the executor give it the calls its declared capabilities allow."""

import json

import numpy as np
import pytest
from PIL import Image

import sdkit
from sdkit import Capabilities, GenerationParams, GenerationResult, Sweep, create_backend, run_sweep
from sdkit.engine.executor import InProcessExecutor, plan
from sdkit.studies.folder import load_manifest
from sdkit.studies.run import run_study
from sdkit.studies.verify import verify_study


def colour(p, shade):
    return ((p.seed * 37 + shade) % 256, int(p.guidance_scale * 10) % 256, p.num_inference_steps * 20 % 256)


class Solid:
    """Draws one solid colour from the seed, guidance and steps; ``shade`` shifts it (and is in its identity)."""

    name = "solid"

    def __init__(self, *, shade=0, regenerable=False, max_batch=1, by_size=False):
        self.shade = shade
        self.calls = []
        self.capabilities = Capabilities(
            max_batch=max_batch,
            batch_key=(lambda p: (p.width, p.height)) if by_size else None,
            regenerable=regenerable,
        )

    def identity(self):
        return {"shade": self.shade}

    def generate(self, params):
        return self.generate_many([params])[0]

    def generate_many(self, params, *, on_result=None, return_errors=False):
        self.calls.append(list(params))
        out = []
        for i, p in enumerate(params):
            image = Image.new("RGB", (p.width or 64, p.height or 64), colour(p, self.shade))
            out.append(GenerationResult(p, (image,), (p.seed,), p.model, self.name))
            if on_result is not None:
                on_result(i, out[-1])
        return out


def solid(*, shade=0, regenerable=False, max_batch=1, by_size=False):
    return Solid(shade=shade, regenerable=regenerable, max_batch=max_batch, by_size=by_size)


@pytest.fixture
def registered():
    from sdkit.backends.registry import unregister_backend

    sdkit.register_backend("solid", solid)
    try:
        yield
    finally:
        unregister_backend("solid")


BASE = GenerationParams("a square", seed=1, num_inference_steps=2, width=64, height=64)
SWEEP = Sweep(BASE, x="cfg=1,2,3", seeds=2)


def test_an_outside_backend_sweeps_is_cached_by_its_identity_and_a_changed_identity_makes_all_again(
    registered, tmp_path
):
    assert "solid" in sdkit.backend_kinds()
    first = create_backend("solid")
    result = run_sweep(SWEEP, first, tmp_path, progress=False)
    assert result.count("generated") == 6 and len(first.calls) == 1  # no batching declared: one call, all at once
    for c in result.cells:
        assert c.image.getpixel((0, 0)) == colour(c.cell.params, 0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["backend"] == {"name": "solid", "shade": 0, "batching": "none"}

    again = create_backend("solid")
    cached = run_sweep(SWEEP, again, tmp_path, progress=False)
    assert again.calls == [] and cached.count("cached") == 6
    for a, b in zip(result.cells, cached.cells, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))

    shaded = create_backend("solid", shade=40)
    remade = run_sweep(SWEEP, shaded, tmp_path, progress=False)
    assert remade.count("generated") == 6 and sum(len(c) for c in shaded.calls) == 6
    assert all(c.image.getpixel((0, 0)) == colour(c.cell.params, 40) for c in remade.cells)
    assert len(list((tmp_path / "images").glob("*.png"))) == 12  # both identities' images, side by side


STUDY = {
    "name": "squares",
    "params": {"prompt": "a square", "width": 64, "height": 64, "num_inference_steps": 2},
    "axes": {"x": "guidance_scale=1,2"},
    "seeds": [1, 2],
}


def test_a_study_on_an_outside_backend_verifies_its_files_against_the_manifest(registered, tmp_path):
    backend = create_backend("solid")
    run = run_study(STUDY, tmp_path / "run", backend=backend, progress=False)
    assert (run.made, run.failed, run.total) == (4, 0, 4)
    entries = load_manifest(tmp_path / "run")
    assert all(e["regenerable"] is False and e["backend"] == "solid" for e in entries)
    assert not (tmp_path / "run" / "replies").exists()

    calls = len(backend.calls)
    result = verify_study(tmp_path / "run", backend=backend, progress=False)
    assert result.ok and {c.status for c in result.checks} == {"archived"}
    assert len(backend.calls) == calls  # it declared it cannot make them again: nothing is made

    victim = tmp_path / "run" / entries[2]["file"]
    Image.new("RGB", (64, 64), "white").save(victim)
    result = verify_study(tmp_path / "run", progress=False)
    assert [(c.cell, c.status) for c in result.checks if not c.ok] == [(2, "tampered")]


def test_a_study_on_an_outside_regenerable_backend_is_made_again_and_compared(registered, tmp_path):
    out = tmp_path / "run"
    run = run_study(STUDY, out, backend=create_backend("solid", regenerable=True), progress=False)
    assert run.complete
    entries = load_manifest(out)
    assert all(e["regenerable"] is True and e["batch"]["size"] == 1 for e in entries)
    assert len({e["batch"]["id"] for e in entries}) == 4

    again = create_backend("solid", regenerable=True)
    result = verify_study(out, backend=again, progress=False)
    assert result.ok and {c.status for c in result.checks} == {"identical"}
    assert sum(len(c) for c in again.calls) == 4

    result = verify_study(out, backend=create_backend("solid", shade=9, regenerable=True), progress=False)
    assert not result.ok and {c.status for c in result.checks} == {"different"}
    assert all(c.max_diff == 9 for c in result.checks)


def test_a_backend_that_declares_batches_of_two_gets_calls_of_at_most_two_compatible_requests(registered, tmp_path):
    backend = create_backend("solid", max_batch=2, by_size=True)
    sweep = Sweep(BASE, x="cfg=1,2,3", y="width=64,72", seeds=1)
    result = run_sweep(sweep, backend, tmp_path, progress=False)
    assert result.count("generated") == 6
    assert sorted(len(call) for call in backend.calls) == [1, 1, 2, 2]
    for call in backend.calls:
        assert len({(p.width, p.height) for p in call}) == 1

    out = tmp_path / "study"
    study = {**STUDY, "axes": {"x": "guidance_scale=1,2,3"}}
    run_study(study, out, backend=create_backend("solid", max_batch=2, regenerable=True), progress=False)
    batches = {e["batch"]["id"]: e["batch"]["cells"] for e in load_manifest(out)}
    assert sorted(batches.values()) == [[0, 1], [2, 3], [4, 5]]  # exactly the calls made, recorded
    replay = create_backend("solid", max_batch=2, regenerable=True)
    assert verify_study(out, backend=replay, progress=False).ok
    assert sorted([p.seed for p in call] for call in replay.calls) == [[1, 2], [1, 2], [1, 2]]


def test_the_in_process_executor_reports_every_request_with_the_keys_made_with_it():
    backend = Solid(max_batch=3)
    requests = [(10 + i, BASE.replace(seed=i)) for i in range(5)]
    seen = []
    InProcessExecutor().run(backend, plan(requests, backend.capabilities), lambda k, r, w: seen.append((k, w)))
    assert seen == [(10, (10, 11, 12)), (11, (10, 11, 12)), (12, (10, 11, 12)), (13, (13, 14)), (14, (13, 14))]

    class Crashing(Solid):
        def generate_many(self, params, **kw):
            if len(params) > 1 or params[0].seed == 1:
                raise TypeError("boom")
            return super().generate_many(params, **kw)

    outcomes = {}
    InProcessExecutor().run(Crashing(), plan(requests, Solid().capabilities), lambda k, r, w: outcomes.update({k: r}))
    assert [type(outcomes[k]).__name__ for k in range(10, 15)] == ["GenerationResult", "SdkitError"] + [
        "GenerationResult"
    ] * 3
