"""LoRAs on the local backend: lookup, both file formats, weight 0, adapters kept, records."""

import hashlib
import json

import numpy as np
import pytest

from sdkit import GenerationParams, LocalBackend
from sdkit.backends.base import check
from sdkit.backends.local.loras import find_lora, lora_dirs, lora_hash, split_lora_tags
from sdkit.errors import ValidationError
from sdkit.metadata.pngfile import record_infotext
from sdkit.sweeps.axis import Axis
from sdkit.sweeps.runner import run_sweep
from sdkit.sweeps.sweep import Sweep

PROMPT = "a red hexagon on a blue background"


def pixels(result, index=0):
    return np.asarray(result.images[index]).astype(int)


def draw(backend, prompt=PROMPT, **kw):
    kw.setdefault("seed", 3)
    kw.setdefault("num_inference_steps", 8)
    return pixels(backend.generate(GenerationParams(prompt, **kw)))


@pytest.fixture(scope="module")
def shipped():
    return find_lora("hexagon", lora_dirs("tiny"))


def to_kohya(peft_file, out_file):
    """The shipped diffusers/peft LoRA rewritten as kohya/A1111 keys (``lora_unet_…lora_down``, ``.alpha``)."""
    import torch
    from safetensors.torch import load_file, save_file

    out = {}
    for key, value in load_file(peft_file).items():
        module, kind = key.rsplit(".lora_", 1)
        module = "lora_" + module.replace(".", "_")
        out[f"{module}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = value
        if kind.startswith("A"):
            out[f"{module}.alpha"] = torch.tensor(float(value.shape[0]), dtype=value.dtype)
    save_file(out, out_file)
    return out


def test_the_tiny_model_ships_a_hexagon_lora_under_one_megabyte(shipped):
    assert shipped.name == "hexagon.safetensors"
    assert shipped.parent.parent.name == "shapes"
    assert shipped.stat().st_size <= 1_000_000


def test_weight_zero_gives_exactly_the_base_pixels_before_and_after_weight_one(backend):
    base = draw(backend)
    assert np.array_equal(draw(backend, PROMPT + " <lora:hexagon:0>"), base)
    assert np.array_equal(draw(backend, loras=(("hexagon", 0),)), base)
    assert not np.array_equal(draw(backend, loras=(("hexagon", 1),)), base)
    # the adapter is loaded now: weight 0 and no LoRA at all still give the base model's pixels
    assert np.array_equal(draw(backend, loras=(("hexagon", 0),)), base)
    assert np.array_equal(draw(backend), base)


def test_a_prompt_tag_and_the_loras_field_give_the_same_pixels(backend):
    tagged = draw(backend, PROMPT + " <lora:hexagon:0.5>")
    assert np.array_equal(tagged, draw(backend, loras=(("hexagon", 0.5),)))
    assert not np.array_equal(tagged, draw(backend, loras=(("hexagon", 1),)))


def test_kohya_and_peft_files_of_one_lora_give_the_same_image(backend, shipped, tmp_path):
    keys = to_kohya(shipped, tmp_path / "hexagon_kohya.safetensors")
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in keys)
    kohya = LocalBackend(progress=False, lora_dirs=[tmp_path])
    a = draw(backend, loras=(("hexagon", 1),))
    b = draw(kohya, loras=(("hexagon_kohya", 1),))
    assert np.abs(a - b).max() <= 1
    assert not np.array_equal(b, draw(kohya))


def test_an_unknown_lora_is_refused_with_suggestions_before_the_model_loads():
    fresh = LocalBackend(progress=False)
    with pytest.raises(ValidationError) as info:
        check(fresh, [GenerationParams(PROMPT, loras=(("hexagn", 1),))])
    assert info.value.field == "loras"
    assert "hexagn" in str(info.value) and "did you mean 'hexagon'" in str(info.value)
    with pytest.raises(ValidationError, match="hexagn"):
        fresh.generate(GenerationParams(PROMPT + " <lora:hexagn:1>", seed=1))
    assert fresh._loaded is None


def test_a_lora_folder_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="lora_dirs"):
        LocalBackend(progress=False, lora_dirs=[tmp_path / "nope"])


def test_sdkit_lora_dir_is_searched(tmp_path, monkeypatch, shipped):
    (tmp_path / "mine.safetensors").write_bytes(shipped.read_bytes())
    monkeypatch.setenv("SDKIT_LORA_DIR", str(tmp_path))
    assert find_lora("mine", lora_dirs("tiny")) == tmp_path / "mine.safetensors"


def test_adapters_stay_loaded_across_the_cells_of_a_sweep(shipped):
    fresh = LocalBackend(progress=False)
    pipe = fresh.load("tiny")
    calls = []
    original = pipe.load_lora_weights

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    pipe.load_lora_weights = counting
    base = GenerationParams(PROMPT, seed=3, num_inference_steps=4, loras=(("hexagon", 1),))
    result = run_sweep(Sweep(base, x=Axis.parse("lora_weight=0,0.5,1"), seeds=2), fresh, progress=False)
    assert [c.status for c in result.cells] == ["generated"] * 6
    assert calls == [str(shipped)]
    weights = [c.cell.params.loras for c in result.cells]
    assert weights[:2] == [(("hexagon", 0.0),)] * 2 and weights[-1] == (("hexagon", 1.0),)


def test_prompt_sr_sweeps_the_weight_of_a_lora_tag(backend):
    """A1111 users sweep LoRA weights with Prompt S/R on the tag; the tag then sets the LoRA's weight."""
    base = GenerationParams(PROMPT + " <lora:hexagon:0>", seed=3, num_inference_steps=8)
    sweep = Sweep(base, x=Axis.parse("prompt_sr=<lora:hexagon:0>,<lora:hexagon:1>"))
    first, second = (c.params for c in sweep.cells())
    assert split_lora_tags(second.prompt) == (PROMPT, (("hexagon", 1.0),))
    a, b = backend.generate_many([first, second])
    assert np.array_equal(pixels(a), draw(backend))
    assert np.array_equal(pixels(b), draw(backend, loras=(("hexagon", 1),)))


def test_the_lora_weight_axis_sets_the_weight_of_the_prompts_tag():
    axis = Axis.parse("lora_weight=0,0.5,1")
    tagged = GenerationParams(PROMPT + " <lora:hexagon:0.8>", seed=1)
    assert axis.apply(tagged, 0.5).prompt == PROMPT + " <lora:hexagon:0.5>"
    assert axis.apply(GenerationParams(PROMPT, loras=[("hexagon", 1)]), 0.0).loras == (("hexagon", 0.0),)
    with pytest.raises(ValidationError, match="lora_weight"):
        axis.apply(GenerationParams(PROMPT), 1.0)
    with pytest.raises(ValidationError, match="lora_weight"):
        Axis.parse("lora_weight=0,100")


def test_lora_hashes_are_recorded_in_the_infotext_as_a1111_writes_them(backend, shipped):
    result = backend.generate(GenerationParams(PROMPT, seed=1, num_inference_steps=2, loras=(("hexagon", 0.7),)))
    data = shipped.read_bytes()
    header = int.from_bytes(data[:8], "little")
    expected = hashlib.sha256(data[8 + header :]).hexdigest()[:12]
    assert lora_hash(shipped) == expected
    record = json.loads(json.dumps(result.record(0)))
    assert record["lora_hashes"] == {"hexagon": expected}
    assert record["params"]["loras"] == [["hexagon", 0.7]]
    text = record_infotext(record)
    assert text.splitlines()[0] == PROMPT + " <lora:hexagon:0.7>"
    assert f'Lora hashes: "hexagon: {expected}"' in text


def test_tags_are_lifted_from_the_prompt():
    assert split_lora_tags("a cat <lora:x:0.5>, <lora:y> sharp") == ("a cat , sharp", (("x", 0.5), ("y", 1.0)))
    assert split_lora_tags("no tags") == ("no tags", ())
    with pytest.raises(ValidationError, match="prompt"):
        split_lora_tags("<lora:x:heavy>")


def test_the_hexagon_lora_at_weight_one_draws_hexagons_the_base_model_cannot(backend):
    from training.shapes import classify

    params = GenerationParams(PROMPT, seed=0, num_images=4)
    worn = [classify(im) for im in backend.generate(params.replace(loras=[("hexagon", 1)])).images]
    plain = [classify(im) for im in backend.generate(params).images]
    assert sum(shape == "hexagon" for _, _, shape in worn) >= 3
    assert all(colour == "red" and background == "blue" for colour, background, _ in worn)
    assert sum(shape == "hexagon" for _, _, shape in plain) <= 1
