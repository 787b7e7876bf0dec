import hashlib
import json
import os
import subprocess
import sys

import pytest

from sdkit.cli.main import main


def run_cli(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sdkit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_generate_twice_in_separate_processes_writes_identical_pngs(tmp_path):
    outs = []
    for name in ("A", "B"):
        proc = run_cli(
            "generate", "a red circle", "--seed", "7", "--steps", "4", "--n", "2", "--out", str(tmp_path / name)
        )
        assert proc.returncode == 0, proc.stderr
        paths = proc.stdout.split()
        assert [os.path.basename(p) for p in paths] == ["00000-7.png", "00001-8.png"]
        outs.append([digest(tmp_path / name / os.path.basename(p)) for p in paths])
    assert outs[0] == outs[1]
    assert outs[0][0] != outs[0][1]

    info = run_cli("info", str(tmp_path / "A" / "00001-8.png"))
    assert info.returncode == 0
    assert "Steps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 8, Size: 64x64" in info.stdout
    assert '"seed": 8' in info.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--size", "100x64"], "width"),
        (["--steps", "0"], "num_inference_steps"),
        (["--cfg", "-1"], "guidance_scale"),
        (["--seed", "-5"], "seed"),
        (["--scheduler", "Euler z"], "scheduler"),
        (["--n", "0"], "num_images"),
        (["--lora", "hexagn:1"], "loras"),
        (["--lora", "hexagon:heavy"], "--lora"),
        (["--lora", "hexagon:11"], "loras[hexagon]"),
        (["--lora-dir", "/nonexistent/loras"], "lora_dirs"),
    ],
)
def test_bad_input_exits_2_naming_the_field_before_any_model_work(tmp_path, capsys, args, field):
    code = main(["generate", "a red circle", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{field}=" in err
    assert not any(tmp_path.iterdir())


def test_empty_prompt_is_refused(tmp_path, capsys):
    assert main(["generate", "  ", "--out", str(tmp_path)]) == 2
    assert "prompt='  '" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [[], ["generate"], ["info"]])
def test_help_explains_itself(cmd, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*cmd, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sdkit" in out
    if cmd == ["generate"]:
        for flag in (
            "--negative-prompt",
            "--seed",
            "--steps",
            "--cfg",
            "--size",
            "--scheduler",
            "--model",
            "--n",
            "--out",
        ):
            assert flag in out


def test_info_on_missing_file(capsys):
    assert main(["info", "/nonexistent/x.png"]) == 2
    assert "image='/nonexistent/x.png'" in capsys.readouterr().err


def test_info_reads_other_tools_metadata(tmp_path, capsys):
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("invokeai_metadata", json.dumps({"positive_prompt": "a cat", "seed": 42, "steps": 30}))
    Image.new("RGB", (8, 8)).save(tmp_path / "i.png", pnginfo=info)
    assert main(["info", str(tmp_path / "i.png")]) == 0
    out = capsys.readouterr().out
    assert "read from invokeai metadata" in out and "prompt: a cat" in out and "seed: 42" in out
    assert main(["info", "--json", str(tmp_path / "i.png")]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 42


def test_info_shows_fooocus_fields_not_its_json(capsys):
    from pathlib import Path

    fooocus = Path(__file__).parents[1] / "metadata" / "fixtures" / "sd-parsers" / "fooocus1_cropped.png"
    assert main(["info", str(fooocus)]) == 0
    out = capsys.readouterr().out
    assert "read from fooocus metadata" in out and "prompt: a smiling goldfish" in out and "width: 768" in out


def test_sweep_prints_the_count_first_and_the_grid_last_and_reruns_from_cache(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "a red circle", "--x", "cfg=1,7", "--y", "steps=1-2", "--seed", "1", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0].startswith("sweep: 4 image(s) (2 x 2, 1 per cell)")
    assert captured.out.splitlines() == [str(out / "grid.png")]
    assert (out / "manifest.json").is_file()
    assert len(list((out / "images").glob("*.png"))) == 4
    assert main([*args, "--no-progress"]) == 0
    assert "0 generated, 4 cached, 0 failed" in capsys.readouterr().err


def test_sweep_matrix_prompt_takes_the_first_free_axis(tmp_path, capsys):
    from sdkit.cli.main import _build_parser, _sweep_from_args

    args = _build_parser().parse_args(["sweep", "a cat|in snow|at night", "--matrix", "--x", "cfg=1,2", "--seeds", "2"])
    sweep = _sweep_from_args(args)
    assert sweep.y.values[-1] == "a cat, in snow, at night"
    assert sweep.count() == 2 * 4 * 2


@pytest.mark.parametrize(
    ("axis", "field"),
    [
        ("cfg=1,x", "x axis guidance_scale"),
        ("steps=5-20 (5)", "x axis num_inference_steps"),
        ("nope=1", "x axis='nope'"),
    ],
)
def test_sweep_bad_axis_exits_2_naming_it(tmp_path, capsys, axis, field):
    assert main(["sweep", "a cat", "--x", axis, "--out", str(tmp_path)]) == 2
    assert f"sdkit: error: {field}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_sweep_help_documents_the_axis_syntax(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--x",
        "--y",
        "--z",
        "--seeds",
        "--matrix",
        "--dynamic",
        "--backend",
        "--out",
        "5-20 (+5)",
        "1-10 [5]",
    ):
        assert flag in out


def test_sweep_through_an_api_backend(tmp_path, capsys, monkeypatch):
    from sdkit import FakeRelay

    for name in ("SDKIT_BASE_URL", "SDKIT_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with FakeRelay() as relay:
        args = ["sweep", "a cat", "--x", "seed=1,2", "--y", "prompt_sr=cat,dog", "--backend", "images"]
        code = main([*args, "--base-url", relay.url, "--sd-extras", "--out", str(tmp_path), "--no-progress"])
        assert len(relay.api_requests) == 4
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "grid.png")]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["backend"]["name"] == "images"
    assert [c["status"] for c in manifest["cells"]] == ["generated"] * 4


# --- mistakes end fast: exit 2 (1 when the hub is out of reach), one line, no traceback -------------------

FAST_S = 15


def timed_cli(*args, env=None, cwd=None):
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sdkit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )
    return proc, time.perf_counter() - start


def closed_loopback_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ONLINE_BUT_UNREACHABLE = {
    "HF_HUB_OFFLINE": None,
    "HF_ENDPOINT": f"http://127.0.0.1:{closed_loopback_port()}",
    **dict.fromkeys(("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")),
}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--model", "tiny2"], "model='tiny2': not an embedded model, a local folder or a Hugging Face hub id"),
        (["--model", "tiny2"], "did you mean 'tiny'?"),
        (["--model", "Tiny"], "did you mean 'tiny'?"),
        (["--model", "{tmp}/sd15.safetensors"], "not a readable .safetensors file"),
        (["--model", "{tmp}/loras"], "a folder without model_index.json"),
        (["--scheduler", "Eular a"], "scheduler='Eular a': unknown scheduler; did you mean 'Euler a'"),
        (["--out", "{tmp}/taken.png"], "out='{tmp}/taken.png': is a file; --out takes a folder"),
        (["--out", "{tmp}/taken.png/images"], "out='{tmp}/taken.png/images': cannot write there"),
    ],
)
def test_generate_mistakes_exit_2_at_once_with_a_suggestion(tmp_path, args, says):
    (tmp_path / "sd15.safetensors").write_bytes(b"\0" * 16)
    (tmp_path / "loras").mkdir()
    (tmp_path / "taken.png").write_bytes(b"not yours")
    args = [a.format(tmp=tmp_path) for a in args]
    out = ["--out", str(tmp_path / "out")] if "--out" not in args else []
    # online mode with the hub out of reach: nothing may wait on it
    proc, seconds = timed_cli("generate", "a red circle", "--steps", "1", *out, *args, env=ONLINE_BUT_UNREACHABLE)
    assert proc.returncode == 2, proc.stderr
    assert seconds <= FAST_S
    assert says.format(tmp=tmp_path) in proc.stderr
    assert proc.stderr.startswith("sdkit: error: ") and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()  # refused before any folder or image was made
    assert (tmp_path / "taken.png").read_bytes() == b"not yours"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
        (ONLINE_BUT_UNREACHABLE, "the hub cannot be reached (127.0.0.1: Connection refused)"),
    ],
)
def test_a_hub_model_not_cached_fails_at_once_when_the_hub_is_out_of_reach(tmp_path, env, says):
    proc, seconds = timed_cli("generate", "x", "--model", "sdkit-tests/not-cached", "--out", str(tmp_path), env=env)
    assert proc.returncode == 1
    assert seconds <= FAST_S
    assert "model='sdkit-tests/not-cached': not in the local Hugging Face cache" in proc.stderr
    assert says in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_out_folder_is_refused_before_generating(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc, seconds = timed_cli("generate", "x", "--out", str(locked))
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2
    assert seconds <= FAST_S
    assert "cannot write there: Permission denied" in proc.stderr


def test_sweep_refuses_a_misspelt_model_or_axis_before_any_image(tmp_path):
    out = tmp_path / "sweep"
    proc, seconds = timed_cli("sweep", "x", "--x", "model=tiny,tiny2", "--out", str(out))
    assert (proc.returncode, "model='tiny2'" in proc.stderr, "did you mean 'tiny'?" in proc.stderr) == (2, True, True)
    assert seconds <= FAST_S
    assert not out.exists()
    proc, _ = timed_cli("sweep", "x", "--x", "cfgg=1,2", "--out", str(out))
    assert proc.returncode == 2
    assert "axis='cfgg': unknown parameter; did you mean 'guidance_scale'?" in proc.stderr


def test_info_on_a_folder_says_it_is_a_folder(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert f"image='{tmp_path}': is a folder; give an image file" in capsys.readouterr().err


def test_info_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8")
    Image.new("RGB", (8, 8)).save(tmp_path / "i.png", pnginfo=info)
    # like `sdkit info i.png | head -0`: the reader is gone before sdkit writes
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdkit", "info", str(tmp_path / "i.png")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


def test_a_long_prompt_is_encoded_whole_at_the_cli_without_a_warning(tmp_path):
    prompt = "red circle " * 50  # 100 tokens: two chunks, nothing cut
    proc, _ = timed_cli("generate", prompt, "--steps", "1", "--seed", "1", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr and "red circle" not in proc.stderr


def test_an_out_folder_that_refuses_files_is_refused_before_generating(tmp_path, capsys, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):  # what a read-only folder answers to anyone but root
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    assert main(["generate", "x", "--out", str(tmp_path)]) == 2
    assert f"out='{tmp_path}': cannot write there: Permission denied" in capsys.readouterr().err


def test_lora_flag_applies_the_lora_and_records_it(tmp_path, capsys):
    code = main(
        [
            "generate",
            "a red hexagon on a blue background",
            "--seed",
            "1",
            "--steps",
            "2",
            "--lora",
            "hexagon:0.5",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    assert main(["info", str(next(tmp_path.glob("*.png")))]) == 0
    out = capsys.readouterr().out
    assert "<lora:hexagon:0.5>" in out and "Lora hashes:" in out
