"""`sdkit convert` writes a single-file checkpoint that `--model FILE` loads offline (issue 16)."""

import hashlib

from sdkit.cli.main import main
from sdkit.metadata.pngfile import read_png_metadata


def test_convert_then_generate_from_the_file_records_a1111s_model_hash(tmp_path, capsys):
    out = tmp_path / "tiny-random.safetensors"
    assert main(["convert", "tiny-random", str(out)]) == 0
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"Model hash: {digest[:10]}" in capsys.readouterr().out
    again = tmp_path / "again.safetensors"
    assert main(["convert", "tiny-random", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()  # the same model gives the same file and hash
    args = ["generate", "a red circle", "--model", str(out), "--steps", "2", "--seed", "3", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "images")]) == 0
    (png,) = (tmp_path / "images").glob("*.png")
    parameters = read_png_metadata(png)["parameters"]
    assert parameters["Model hash"] == digest[:10] and parameters["Model"] == "tiny-random"


def test_convert_refuses_an_existing_file_and_a_model_it_cannot_map(tmp_path, capsys):
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"mine")
    assert main(["convert", "tiny-random", str(taken)]) == 2
    assert taken.read_bytes() == b"mine"
    assert main(["convert", "tiny", str(tmp_path / "tiny.safetensors")]) == 1
    assert "add_embedding" in capsys.readouterr().err
