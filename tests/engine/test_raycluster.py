"""The Ray executor on a real local Ray instance (and a two-node cluster started with ``ray start``).

One Ray instance serves the module (starting one takes ~10 s on 2 cores); tests that need their own
driver (a killed CLI run, a second cluster) run it in a subprocess."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sdkit import GenerationParams, load_manifest, run_study, verify_study  # noqa: E402
from sdkit.engine.executor import InProcessExecutor, plan  # noqa: E402
from sdkit.engine.raycluster import RayExecutor, _connect  # noqa: E402
from sdkit.errors import SdkitError, ValidationError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RAY_BIN = Path(sys.executable).parent / "ray"
API_KEY = "sk-planted-ray-0123456789abcdef"
# 12 images: 2 guidance scales x 2 step counts x 3 seeds, in batches of 3 (equal steps and guidance)
SPEC = {
    "name": "onray",
    "model": "tiny",
    "params": {"prompt": "a red circle on a blue background", "width": 64, "height": 64, "num_inference_steps": 3},
    "axes": {"x": "guidance_scale=1,7.5", "y": "num_inference_steps=2-3"},
    "seeds": [1, 2, 3],
    "threads": 1,
}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs; the workers inherit this environment (the relay's key too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDKIT_API_KEY", API_KEY)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        try:
            assert _connect(ray, None, 2, None)
        except SdkitError:  # Ray's own start-up timed out (a busy machine): once more
            assert _connect(ray, None, 2, None)
        try:
            yield ray
        finally:
            ray.shutdown()


def cells(manifest_dir):
    return {e["cell"]: e for e in load_manifest(manifest_dir)}


def test_ray_run_matches_in_process_pixel_for_pixel_and_verifies(tmp_path, local_ray):
    inproc = run_study(SPEC, tmp_path / "a", progress=False)
    onray = run_study(SPEC, tmp_path / "b", progress=False, executor="ray")
    assert (onray.made, onray.failed, onray.total) == (12, 0, 12)
    a, b = cells(tmp_path / "a"), cells(tmp_path / "b")
    assert sorted(b) == list(range(12))
    for cell in a:
        assert b[cell]["pixels_sha256"] == a[cell]["pixels_sha256"], cell
        assert b[cell]["batch"]["cells"] == a[cell]["batch"]["cells"]  # the planner's batches, as in-process
    assert a[0]["executor"]["kind"] == "in-process"
    where = b[0]["executor"]
    assert where["kind"] == "ray" and where["device"] == "cpu" and where["host"] and where["pid"] != os.getpid()
    assert inproc.complete and verify_study(tmp_path / "b", progress=False).ok


def test_the_spec_key_runs_on_ray_and_a_run_resumes_in_process(tmp_path, local_ray):
    spec = {**SPEC, "executor": "ray", "seeds": [4]}
    first = run_study(spec, tmp_path / "r", progress=False)
    assert first.made == 4 and {e["executor"]["kind"] for e in cells(tmp_path / "r").values()} == {"ray"}
    again = run_study({**spec, "seeds": [4]}, tmp_path / "r", progress=False, executor="in-process")
    assert (again.made, again.kept) == (0, 4)  # where it ran is not part of the spec's identity
    # Ray was running before: the actors stay loaded and the next run of the same backend reuses them
    other = run_study({**spec, "seeds": [5]}, tmp_path / "s", progress=False)
    pids = lambda out: {e["executor"]["pid"] for e in cells(out).values()}  # noqa: E731
    assert other.made == 4 and pids(tmp_path / "s") <= pids(tmp_path / "r")


def _batches(n=12):
    from sdkit.backends.base import Capabilities

    requests = [
        (i, GenerationParams(prompt=f"shape {i % 3}", seed=i, width=64, height=64, num_inference_steps=2))
        for i in range(n)
    ]
    return plan(requests, Capabilities(max_batch=2, batch_key=lambda p: p.num_inference_steps))


@pytest.mark.parametrize("attempts", [3, 1])
def test_a_worker_killed_mid_run_loses_no_cell_and_makes_none_twice(local_ray, backend, attempts):
    """The first image's worker is killed (SIGKILL) as its result arrives: the batch it holds next goes
    to another worker (or, with one attempt, fails naming the death); every cell settles exactly once."""
    from sdkit.backends.base import capabilities

    assert capabilities(backend).max_batch > 1
    batches = _batches()
    settled: dict[int, object] = {}
    killed: list[int] = []

    def on_result(key, outcome, made_with):
        assert key not in settled, f"cell {key} settled twice"
        settled[key] = outcome
        if not killed and not isinstance(outcome, Exception):
            killed.append(outcome.details["executor"]["pid"])
            os.kill(killed[0], signal.SIGKILL)

    executor = RayExecutor("local", {"threads": 1, "progress": False}, workers=2, max_attempts=attempts)
    executor.run(backend, batches, on_result)
    assert sorted(settled) == list(range(12))
    failed = {k: v for k, v in settled.items() if isinstance(v, Exception)}
    pids = {v.details["executor"]["pid"] for v in settled.values() if not isinstance(v, Exception)}
    if attempts == 3:
        assert not failed and len(pids) >= 2 and killed[0] in pids
        reference: dict[int, object] = {}
        InProcessExecutor().run(backend, batches, lambda k, o, m: reference.__setitem__(k, o))
        for key, outcome in settled.items():  # the retried batch is made the same way, same pixels
            assert outcome.images[0].tobytes() == reference[key].images[0].tobytes(), key
    else:
        assert failed and all(isinstance(e, SdkitError) and "Ray worker died" in str(e) for e in failed.values())


def test_an_interrupted_driver_leaves_a_folder_that_resumes(tmp_path, local_ray):
    out = tmp_path / "run"

    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(SPEC, out, progress=False, executor="ray", on_image=interrupt)
    kept = len(cells(out))
    assert 3 <= kept < 12
    again = run_study(SPEC, out, progress=False, executor="ray")
    assert (again.kept, again.made, again.failed) == (kept, 12 - kept, 0)
    assert sorted(cells(out)) == list(range(12)) and verify_study(out, progress=False).ok


def test_a_remote_relay_study_runs_on_ray_without_writing_the_key(tmp_path, local_ray):
    from sdkit import FakeRelay

    out = tmp_path / "remote"
    with FakeRelay() as relay:
        spec = {
            "name": "remote",
            "backend": "chat",
            "base_url": relay.url,
            "sd_extras": True,
            "params": {"prompt": "a red circle", "width": 64, "height": 64},
            "axes": {"x": "guidance_scale=1,7"},
            "seeds": [1, 2, 3],
            "executor": "ray",
        }
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SDKIT_API_KEY", API_KEY)  # the driver's backend checks the key too
            run = run_study(spec, out, progress=False)
        assert len(relay.requests) == 6
    assert (run.made, run.failed) == (6, 0)
    entries = cells(out)
    assert {e["executor"]["kind"] for e in entries.values()} == {"ray"}
    assert all(e["executor"]["device"] == "remote" and e["replies"] for e in entries.values())
    for path in out.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    assert verify_study(out, progress=False).ok


def test_bad_ray_settings_are_refused_before_any_work():
    with pytest.raises(ValidationError, match="ray_workers"):
        RayExecutor("local", workers=0)
    with pytest.raises(ValidationError, match="executor"):
        run_study({**SPEC, "executor": "dask"}, "/nonexistent/never-made")


def _cli(*args, timeout=300, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "sdkit", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _spec_file(tmp_path, **extra):
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **extra}))
    return path


def _ray_processes(marker: str) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
            found.extend(proc.children(recursive=True))
    return found


def _end(procs) -> None:
    import psutil

    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def test_a_killed_cli_driver_on_ray_resumes_each_cell_once(tmp_path, local_ray):
    """`sdkit study run --executor ray` (its own local Ray instance) killed with SIGKILL mid-run; the
    rerun (on the module's Ray) makes only what is missing."""
    out = tmp_path / "run"
    proc = _cli("study", "run", str(_spec_file(tmp_path)), "--out", str(out), "--executor", "ray", "--no-progress")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").exists() and len(cells(out)) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.kill()  # no cleanup of any kind: the folder must be valid as it stands
    proc.wait()
    kept = len(cells(out))
    assert 3 <= kept < 12
    run = run_study(SPEC, out, progress=False, executor="ray")
    assert (run.kept, run.made, run.failed) == (kept, 12 - kept, 0)
    entries = load_manifest(out)
    assert sorted(e["cell"] for e in entries) == list(range(12))
    assert verify_study(out, progress=False).ok


def test_a_two_node_cluster_started_with_ray_start_shares_the_study(tmp_path):
    """`ray start --head` plus `ray start --address` (each with one CPU and its own resource), then
    `sdkit study run --ray-address`: both nodes make images, and the folder verifies."""
    port = 20000 + os.getpid() % 20000
    temp_dir = tempfile.mkdtemp(prefix="sdray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{port}"
    try:
        head = [RAY_BIN, "start", "--head", f"--port={port}", "--num-cpus=1", '--resources={"head": 1}']
        head += ["--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
        node = [RAY_BIN, "start", f"--address={address}", "--num-cpus=1", '--resources={"second": 1}']
        subprocess.run(node, env=env, check=True, capture_output=True, timeout=120)
        out = tmp_path / "two"
        spec = _spec_file(tmp_path, executor="ray")
        proc = _cli("study", "run", str(spec), "--out", str(out), "--ray-address", address, "--ray-workers", "2")
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        nodes = {e["executor"]["node"] for e in load_manifest(out)}
        assert len(nodes) == 2, nodes
        assert verify_study(out, progress=False).ok
    finally:
        _end(_ray_processes(temp_dir) + _ray_processes(f":{port}"))


def test_a_sweep_on_ray_caches_the_same_images_as_in_process(tmp_path, local_ray):
    from sdkit import LocalBackend, Sweep, run_sweep

    backend = LocalBackend(threads=1, progress=False)

    sweep = Sweep(GenerationParams("a red circle", seed=1, width=64, height=64, num_inference_steps=2), x="seed=1-4")
    executor = RayExecutor("local", {"threads": 1, "progress": False}, workers=1)
    onray = run_sweep(sweep, backend, tmp_path / "s", progress=False, executor=executor)
    assert onray.count("generated") == 4
    again = run_sweep(sweep, backend, tmp_path / "s", progress=False)  # in-process finds every image cached
    assert again.count("cached") == 4
    inproc = run_sweep(sweep, backend, progress=False)
    for a, b in zip(onray.images, inproc.images, strict=True):
        assert a.tobytes() == b.tobytes()


def test_ray_flags_without_the_ray_executor_are_refused(tmp_path, capsys):
    from sdkit.cli.main import main

    spec = _spec_file(tmp_path)
    assert main(["study", "run", str(spec), "--out", str(tmp_path / "x"), "--ray-workers", "2"]) == 2
    assert "--ray-workers" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
