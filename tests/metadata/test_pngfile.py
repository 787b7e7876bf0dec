import json
import os
import re
import stat

import pytest
from PIL import Image

from sdkit import GenerationParams, GenerationResult, parse_infotext, read_png_metadata, save_result
from sdkit.metadata.pngfile import atomic_write_bytes


def _result(n=2, seed=40):
    params = GenerationParams(
        "a red circle",
        negative_prompt="blurry, dark",
        seed=seed,
        num_images=n,
        width=64,
        height=64,
        num_inference_steps=4,
        guidance_scale=7.0,
    )
    images = tuple(Image.new("RGB", (64, 64), (i * 50, 0, 0)) for i in range(n))
    return GenerationResult(
        params=params,
        images=images,
        seeds=params.seeds,
        model="tiny",
        backend="local",
        details={"scheduler": "Euler a", "model_hash": "abcdef0123456789", "generator": "cpu"},
    )


def test_png_carries_a1111_parameters_and_sdkit_record(tmp_path):
    paths = save_result(_result(), tmp_path)
    assert [p.name for p in paths] == ["00000-40.png", "00001-41.png"]
    meta = read_png_metadata(paths[1])
    text = meta["text"]["parameters"]
    last = text.split("\n")[-1]
    assert len(re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', last)) >= 3
    p = parse_infotext(text)
    assert p["Prompt"] == "a red circle"
    assert p["Negative prompt"] == "blurry, dark"
    assert (p["Steps"], p["Sampler"], p["CFG scale"], p["Seed"], p["Size"]) == ("4", "Euler a", "7", "41", "64x64")
    assert p["Model hash"] == "abcdef0123"
    record = json.loads(meta["text"]["sdkit"])
    assert record == meta["sdkit"]
    assert record["seed"] == 41 and record["image_index"] == 1
    assert record["params"]["prompt"] == "a red circle"
    assert Image.open(paths[1]).getpixel((0, 0)) == (50, 0, 0)


def test_saving_again_never_overwrites(tmp_path):
    first = save_result(_result(n=1, seed=1), tmp_path)
    second = save_result(_result(n=1, seed=1), tmp_path)
    assert first[0].name == "00000-1.png"
    assert second[0].name == "00001-1.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000-1.png", "00001-1.png"]  # no temp files left


def test_image_without_parameters(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    meta = read_png_metadata(tmp_path / "plain.png")
    assert "parameters" not in meta and "sdkit" not in meta


def _save_many(folder, count, barrier):
    barrier.wait()
    for _ in range(count):
        save_result(_result(n=1, seed=7), folder)


def test_two_processes_saving_into_one_folder_never_overwrite_each_other(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_save_many, args=(tmp_path, 40, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 80, f"{80 - len(names)} saves were overwritten"
    assert all(re.fullmatch(r"\d{5}-7\.png", n) for n in names)  # no temporary files left behind
    assert read_png_metadata(tmp_path / names[-1])["sdkit"]["seed"] == 7


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask_like_open_does(tmp_path, umask):
    old = os.umask(umask)
    try:
        (path,) = save_result(_result(n=1), tmp_path / "out")
        atomic_write_bytes(tmp_path / "out" / "notes.txt", b"hi")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == expected
    assert stat.S_IMODE(path.stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "out" / "notes.txt").stat().st_mode) == expected


def test_a_write_error_names_the_file_and_is_an_sdkit_error(tmp_path):
    from sdkit import SdkitError
    from sdkit.metadata.pngfile import output_errors

    with (
        pytest.raises(SdkitError, match=r"could not write .*x\.png: Permission denied"),
        output_errors(tmp_path / "x.png"),
    ):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".x.png.123.tmp"))
