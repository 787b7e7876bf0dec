import hashlib
import os
import subprocess
import sys

import pytest

from sdkit.cli import main


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
