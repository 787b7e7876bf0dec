"""Threads, wait policy and portable mode: chosen, applied around each call, recorded."""

import json
import os
import subprocess
import sys

import pytest

import sdkit
from sdkit.backends.local.cpu import CpuSettings, resolve_threads
from sdkit.errors import ValidationError

FAST = {"num_inference_steps": 4}


def test_settings_refuse_bad_threads_naming_the_value():
    for bad in (0, -1, 1.5, "two", True):
        with pytest.raises(ValidationError) as info:
            CpuSettings(threads=bad)
        assert info.value.field == "threads"
        assert repr(bad) in str(info.value)


def test_portable_mode_refuses_more_than_one_thread():
    with pytest.raises(ValidationError, match="one thread"):
        CpuSettings(threads=2, portable=True)
    assert CpuSettings(threads=1, portable=True).portable


def test_auto_threads_is_one_for_small_calls_and_the_default_for_large_ones():
    import torch

    auto = CpuSettings()
    assert resolve_threads(auto, "cpu", 3_000_000) == 1  # one tiny image
    assert resolve_threads(auto, "cpu", 3_000_000, images=4) == 1
    assert resolve_threads(auto, "cpu", 3_000_000, images=8) == torch.get_num_threads()  # a batch of 8
    assert resolve_threads(auto, "cpu", 3_000_000, pixels=256 * 256) == torch.get_num_threads()
    assert resolve_threads(auto, "cpu", 860_000_000) == torch.get_num_threads()
    assert resolve_threads(auto, "cuda", 3_000_000) is None
    assert resolve_threads(CpuSettings(threads=3), "cpu", 3_000_000) == 3
    assert resolve_threads(CpuSettings(portable=True), "cpu", 860_000_000) == 1


def test_result_records_threads_capability_and_portable(tmp_path):
    import torch

    before = torch.get_num_threads()
    backend = sdkit.LocalBackend(progress=False, threads=2)
    result = backend.generate(sdkit.GenerationParams("a red circle", seed=1, **FAST))
    d = result.details
    assert d["torch_threads"] == 2
    assert d["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert d["portable"] is False
    assert torch.get_num_threads() == before  # restored after the call
    record = sdkit.read_png_metadata(sdkit.save_result(result, tmp_path)[0])["sdkit"]
    assert record["torch_threads"] == 2
    assert record["cpu_capability"] == d["cpu_capability"]
    assert "omp_wait_policy" not in record  # speed only: it never changes the pixels


def test_auto_threads_runs_the_tiny_model_on_one_thread():
    backend = sdkit.LocalBackend(progress=False)
    assert backend.generate(sdkit.GenerationParams("a red circle", seed=1, **FAST)).details["torch_threads"] == 1


def test_portable_refuses_a_gpu_device():
    with pytest.raises(ValidationError) as info:
        sdkit.LocalBackend(device="cuda", portable=True)
    assert info.value.field == "device"


_MAKE = """
import hashlib, json, sys
import sdkit
b = sdkit.LocalBackend(progress=False, portable=True)
r = b.generate(sdkit.GenerationParams("a red circle on a blue background", seed=3, num_images=4, num_inference_steps=8))
print(json.dumps({"sha": hashlib.sha256(b"".join(i.tobytes() for i in r.images)).hexdigest(),
                  "cap": r.details["cpu_capability"], "threads": r.details["torch_threads"]}))
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


def _cpu_has_avx2() -> bool:
    import torch

    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


@pytest.mark.skipif(not _cpu_has_avx2(), reason="portable mode needs an x86-64 CPU with AVX2")
def test_portable_mode_gives_identical_pixels_whatever_the_process_was_told():
    # What differs between machines, imitated on this one: the thread count torch starts with, the vector
    # level ATen, MKL and oneDNN would pick. Portable mode must give the same bytes under every one.
    settings = [
        {},
        {"OMP_NUM_THREADS": "1"},
        {"OMP_NUM_THREADS": "2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
        {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AUTO"},
    ]
    outs = []
    for env in settings:
        proc = _run(_MAKE, **env)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert {o["cap"] for o in outs} == {"AVX2"}
    assert {o["threads"] for o in outs} == {1}
    assert len({o["sha"] for o in outs}) == 1, outs


@pytest.mark.skipif(not _cpu_has_avx2(), reason="needs a CPU whose native kernels are not AVX2")
def test_portable_mode_chosen_too_late_says_how_to_start_over():
    code = (
        "import torch\n"
        "torch.ones(64, 64) @ torch.ones(64, 64)\n"
        "import sdkit\n"
        "try:\n"
        "    sdkit.LocalBackend(portable=True)\n"
        "except sdkit.ValidationError as e:\n"
        "    print('ERR', e)\n"
    )
    proc = _run(code, ATEN_CPU_CAPABILITY="default")
    assert proc.returncode == 0, proc.stderr
    assert "ERR" in proc.stdout
    assert "portable" in proc.stdout and "restart" in proc.stdout


def test_cli_refuses_bad_threads_with_status_2(tmp_path, capsys):
    from sdkit.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["generate", "a red circle", "--threads", "0", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "--threads" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_portable_records_it_in_the_png(tmp_path):
    code = "import sys; from sdkit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    args = ["generate", "a red circle", "--seed", "1", "--steps", "2", "--portable", "--no-progress"]
    out = subprocess.run(
        [sys.executable, "-c", code, *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"},
    )
    assert out.returncode == 0, out.stderr
    record = sdkit.read_png_metadata(out.stdout.split()[0])["sdkit"]
    assert record["portable"] is True
    assert record["torch_threads"] == 1
    if _cpu_has_avx2():
        assert record["cpu_capability"] == "AVX2"


def test_a_portable_study_runs_and_verifies_from_the_command_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: portable\nmodel: tiny\nparams: {prompt: a red circle on a blue background, num_inference_steps: 4}\n"
        "axes: {x: 'guidance_scale=1,7.5'}\nseeds: [1, 2]\nportable: true\n"
    )
    code = "import sys; from sdkit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}

    def cli(*args):
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)

    run = cli("study", "run", str(spec), "--out", str(tmp_path / "run"), "--no-progress")
    assert run.returncode == 0, run.stderr
    entries = [json.loads(line) for line in (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()]
    assert {e["portable"] for e in entries} == {True}
    assert {e["torch_threads"] for e in entries} == {1}
    check = cli("study", "verify", str(tmp_path / "run"), "--no-progress")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "4 identical" in check.stdout


def test_verify_names_the_cpu_settings_that_differ():
    from sdkit.studies.verify import _cpu_difference

    entry = {"torch_threads": 2, "cpu_capability": "AVX512", "portable": False, "device": "cpu"}
    now = {"torch_threads": 1, "cpu_capability": "AVX2", "portable": False, "device": "cpu"}
    note = _cpu_difference(entry, now)
    assert "torch_threads 2 → 1" in note and "cpu_capability 'AVX512' → 'AVX2'" in note
    assert "portable" not in note
    assert _cpu_difference(entry, entry) == ""


def test_environment_records_the_cpu_kernels():
    import torch

    from sdkit.environment import capture_environment

    env = capture_environment()
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["omp_wait_policy"] in ("PASSIVE", "ACTIVE", "DEFAULT")


def test_verify_replays_each_batch_with_its_own_thread_count(tmp_path):
    import torch

    spec = {
        "name": "mixed",
        "model": "tiny",
        "params": {"prompt": "a red circle on a blue background", "num_inference_steps": 3},
        "seeds": list(range(1, 10)),  # one batch of 8 and one of 1
    }
    run = sdkit.run_study(spec, tmp_path / "run", progress=False)
    assert run.complete
    entries = [json.loads(line) for line in (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()]
    threads = {e["batch"]["size"]: e["torch_threads"] for e in entries}
    assert threads[1] == 1
    assert threads[8] == torch.get_num_threads()
    check = sdkit.verify_study(tmp_path / "run", progress=False)
    assert check.ok, check.summary()
    assert sum(c.status == "identical" for c in check.checks) == 9
