"""Run folders as people use them: resumed, damaged, or handed over by someone else."""

import base64
import json
import os
import stat

import pytest
from PIL import Image

from sdkit import SdkitError, ValidationError, load_manifest, run_study, verify_study, write_report
from sdkit.backends.base import Capabilities
from sdkit.cli.main import main

SPEC = """
name: four
model: tiny
params: {prompt: "a red circle on a blue background", width: 64, height: 64, scheduler: "Euler a",
         num_inference_steps: 2}
axes:
  x: "guidance_scale=1,7.5"
seeds: [1, 2]
threads: 2
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "four.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def done(tmp_path, spec_file, backend):
    """A complete run of the 4-image study (two batches of two)."""
    out = tmp_path / "run"
    run = run_study(spec_file, out, backend=backend, progress=False)
    assert (run.made, run.total) == (4, 4)
    return out


def _rewrite(out, entries):
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


def _sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("older_sdkit", [False, True], ids=["now", "ids-from-an-older-sdkit"])
def test_a_swapped_image_after_a_resume_fails_verification(done, spec_file, backend, older_sdkit):
    """The issue's reproduction: a resumed batch reused the id of the batch [0, 1], so verify
    never made cell 1 again and said OK for a swapped image. Folders an older sdkit wrote keep
    the reused id: verify must still make every image again."""
    (done / "images" / "00000.png").unlink()
    run = run_study(spec_file, done, backend=backend, progress=False)
    assert (run.made, run.kept) == (1, 3)
    entries = load_manifest(done)
    if older_sdkit:
        first = next(e for e in entries if e["cell"] == 1)["batch"]["id"]
        next(e for e in entries if e["cell"] == 0)["batch"]["id"] = first
    # swap cell 1's image for cell 2's and record its sha: a forgery that keeps the files consistent
    (done / "images" / "00001.png").write_bytes((done / "images" / "00002.png").read_bytes())
    for e in entries:
        if e["cell"] == 1:
            e["png_sha256"] = _sha(done / "images" / "00001.png")
    _rewrite(done, entries)
    run_study(spec_file, done, backend=backend, progress=False)  # rebuilds the grid from the swapped image
    result = verify_study(done, backend=backend, progress=False)
    assert not result.ok
    assert len(result.checks) == 4  # every image accounted for
    assert {c.cell: c.status for c in result.checks}[1] == "different"
    if older_sdkit:
        return
    ids = {}
    for e in load_manifest(done):
        ids.setdefault(e["batch"]["id"], set()).add(tuple(e["batch"]["cells"]))
    assert all(len(cells) == 1 for cells in ids.values()), ids  # one id, one batch


@pytest.mark.parametrize("bad", ["../../secret.txt", "ABSOLUTE", "images/../../secret.txt", "LINK"])
def test_a_manifest_path_outside_the_folder_is_refused_everywhere(done, spec_file, backend, bad):
    secret = (done / bad).resolve() if ".." in bad else done.parent / "secret.txt"
    secret.write_bytes(b"my ssh key: hunter2")
    entries = load_manifest(done)
    if bad == "LINK":
        (done / "images" / "00000.png").unlink()
        (done / "images" / "00000.png").symlink_to(secret)
    else:
        entries[0]["file"] = str(secret.resolve()) if bad == "ABSOLUTE" else bad
        entries[0]["png_sha256"] = _sha(secret)
    _rewrite(done, entries)
    with pytest.raises(ValidationError, match="outside the run folder"):
        write_report(done)
    assert not (done / "report.html").exists()
    with pytest.raises(ValidationError, match=r"manifest\.jsonl line 1"):
        verify_study(done, backend=backend, progress=False)
    run = run_study(spec_file, done, backend=backend, progress=False)  # repairs: the cell is made again
    assert run.made == 1 and any("line 1 dropped" in n for n in run.notes)
    page = write_report(done).read_text()
    assert base64.b64encode(secret.read_bytes()).decode()[:20] not in page
    assert verify_study(done, backend=backend, progress=False).ok
    assert secret.read_bytes() == b"my ssh key: hunter2"


def test_report_cli_refuses_a_path_outside_the_folder_with_exit_2(done, capsys):
    entries = load_manifest(done)
    entries[2]["file"] = "/etc/hostname"
    _rewrite(done, entries)
    assert main(["study", "report", str(done)]) == 2
    assert "outside the run folder" in capsys.readouterr().err


def test_a_bare_number_in_the_manifest_is_named_and_run_repairs_it(done, spec_file, backend, capsys):
    with open(done / "manifest.jsonl", "a") as f:
        f.write("123\n")
    with pytest.raises(ValidationError, match=r"manifest\.jsonl line 5.*not a JSON object"):
        verify_study(done, backend=backend, progress=False)
    assert main(["study", "verify", str(done), "--no-progress"]) == 2
    assert "line 5" in capsys.readouterr().err
    run = run_study(spec_file, done, backend=backend, progress=False)
    assert (run.made, run.kept) == (0, 4)
    assert run.notes == ("manifest.jsonl line 5 dropped: it is not a JSON object; its image is made again",)
    assert "123" not in (done / "manifest.jsonl").read_text().splitlines()
    assert verify_study(done, backend=backend, progress=False).ok


def test_a_damaged_manifest_line_is_made_again_and_the_good_ones_kept(done, spec_file, backend):
    lines = (done / "manifest.jsonl").read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # cut in the middle
    (done / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    run = run_study(spec_file, done, backend=backend, progress=False)
    assert (run.made, run.kept) == (1, 3)
    assert run.notes == ("manifest.jsonl line 2 dropped: it is not valid JSON; its image is made again",)
    assert verify_study(done, backend=backend, progress=False).ok


def test_invalid_environment_json_is_named_and_run_does_not_mix_environments(done, spec_file, backend, capsys):
    (done / "environment.json").write_text("{not json")
    with pytest.raises(ValidationError, match=r"environment\.json.*not valid JSON line 1"):
        verify_study(done, backend=backend, progress=False)
    with pytest.raises(ValidationError, match="remove it to record this environment"):
        run_study(spec_file, done, backend=backend, progress=False)
    assert main(["study", "report", str(done)]) == 2
    assert "environment.json" in capsys.readouterr().err
    (done / "environment.json").unlink()
    run = run_study(spec_file, done, backend=backend, progress=False)
    assert run.kept == 4
    assert verify_study(done, backend=backend, progress=False).ok


def test_invalid_spec_yaml_is_named_in_verify_and_rewritten_by_run(done, spec_file, backend):
    (done / "spec.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ValidationError, match=r"spec\.yaml"):
        verify_study(done, backend=backend, progress=False)
    with pytest.raises(ValidationError, match=r"spec\.yaml"):
        write_report(done)
    run = run_study(spec_file, done, backend=backend, progress=False)
    assert run.kept == 4 and run.notes[0].startswith("spec.yaml was not valid YAML")
    assert verify_study(done, backend=backend, progress=False).ok


def test_kept_images_must_be_of_their_cell(done, spec_file, backend):
    entries = load_manifest(done)
    entries[3]["params"]["prompt"] = "something else"
    _rewrite(done, entries)
    run = run_study(spec_file, done, backend=backend, progress=False)
    assert (run.made, run.kept) == (1, 3)
    assert "line 4 dropped: it has parameters that are not its cell's" in run.notes[0]


def test_verify_of_a_missing_folder_is_not_a_study_run_folder_exit_2(tmp_path, capsys):
    assert main(["study", "verify", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "not a study run folder" in capsys.readouterr().err
    with pytest.raises(ValidationError, match="not a study run folder"):
        verify_study(tmp_path, progress=False)


def test_a_study_whose_images_all_fail_prints_the_reason(spec_file, tmp_path, monkeypatch, capsys):
    import sdkit.studies.run
    from sdkit import GenerationError

    class Failing:
        name = "local"
        capabilities = Capabilities(max_batch=8, regenerable=True)

        def identity(self):
            return {}

        def generate_many(self, params, *, on_result=None, return_errors=False):
            return [GenerationError("out of GPU memory (as if)") for _ in params]

    monkeypatch.setattr(sdkit.studies.run, "make_backend", lambda spec, **kw: Failing())
    assert main(["study", "run", str(spec_file), "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "failed 4 of 4" in err
    assert "image 0 failed: GenerationError: out of GPU memory (as if)" in err


def test_a_write_error_mid_run_names_the_path_and_keeps_finished_images(
    tmp_path, spec_file, backend, monkeypatch, capsys
):
    import sdkit.engine.runfolder
    import sdkit.studies.run

    real = sdkit.engine.runfolder.atomic_write_bytes

    def refuse_cell_two(path, data):
        if path.name == "00002.png":
            raise PermissionError(13, "Permission denied", str(path))
        real(path, data)

    monkeypatch.setattr(sdkit.engine.runfolder, "atomic_write_bytes", refuse_cell_two)
    out = tmp_path / "run"
    with pytest.raises(SdkitError, match=r"could not write .*00002\.png: Permission denied"):
        run_study(spec_file, out, backend=backend, progress=False)
    assert sorted(e["cell"] for e in load_manifest(out)) == [0, 1]
    monkeypatch.setattr(sdkit.studies.run, "make_backend", lambda spec, **kw: backend)
    assert main(["study", "run", str(spec_file), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "sdkit: error: could not write" in err and "Traceback" not in err
    monkeypatch.undo()
    run = run_study(spec_file, out, backend=backend, progress=False)
    assert (run.kept, run.made) == (2, 2)


def test_study_files_follow_the_umask(tmp_path, spec_file, backend):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        run_study(spec_file, out, backend=backend, progress=False)
        write_report(out)
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"spec.yaml", "environment.json", "manifest.jsonl", "grid.png", "report.html"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}
    with Image.open(out / "grid.png") as grid:
        assert json.loads(grid.info["sdkit-grid"])["seeds"] == [1, 2]


def test_interrupting_at_every_image_loses_nothing(tmp_path, spec_file, backend):
    """Ctrl-C after each image in turn, resuming every time: each image made once, none lost."""
    out = tmp_path / "run"
    interrupts = 0
    for _ in range(10):
        reported = []

        def stop_after_one(done, total, reported=reported):
            reported.append(done)
            if len(reported) == 1:
                raise KeyboardInterrupt

        try:
            run = run_study(spec_file, out, backend=backend, progress=False, on_image=stop_after_one)
        except KeyboardInterrupt:
            interrupts += 1
            assert len(load_manifest(out)) == reported[-1]  # everything reported is on disk and listed
            continue
        break
    assert interrupts == 4 and run.complete and (run.made, run.kept) == (0, 4)  # each interrupt kept its image
    assert sorted(e["cell"] for e in load_manifest(out)) == [0, 1, 2, 3]
    assert not [p for p in out.rglob(".*")]  # no temporary files
    assert verify_study(out, backend=backend, progress=False).ok


def test_a_file_that_is_not_a_png_but_matches_its_sha_is_tampered_and_made_again(done, spec_file, backend):
    entries = load_manifest(done)
    (done / "images" / "00001.png").write_bytes(b"not a png")
    entries[1]["png_sha256"] = _sha(done / "images" / "00001.png")
    _rewrite(done, entries)
    result = verify_study(done, backend=backend, progress=False)
    assert {c.cell: c.status for c in result.checks}[1] == "tampered"
    run = run_study(spec_file, done, backend=backend, progress=False)
    assert (run.made, run.kept) == (1, 3)
    assert verify_study(done, backend=backend, progress=False).ok


def test_a_grid_without_a_title_line_from_an_older_sdkit_still_verifies(done, backend):
    from sdkit.studies.folder import save_grids, study_sweep
    from sdkit.studies.spec import parse_study_spec

    sweep = study_sweep(parse_study_spec(SPEC))
    by_cell = {e["cell"]: e for e in load_manifest(done)}
    with Image.open(done / "grid.png") as titled:
        titled_height = titled.height
    save_grids(done, sweep, by_cell, {}, describe=False)  # as an older sdkit wrote it
    with Image.open(done / "grid.png") as untitled:
        assert untitled.height < titled_height
    assert verify_study(done, backend=backend, progress=False).ok
    with Image.open(done / "images" / "00000.png") as im:  # a grid that does not match still fails
        im.convert("RGB").resize((200, 200)).save(done / "grid.png")
    assert "grid.png does not match" in verify_study(done, backend=backend, progress=False).summary()
