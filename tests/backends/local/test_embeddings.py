"""Textual inversion: embeddings found by file name in a folder, in A1111's and diffusers' formats."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sdkit import GenerationParams, LocalBackend, ValidationError

BASE = "a red circle on a blue background"


def red_vector(backend, model="tiny", key="text_encoder", tok="tokenizer"):
    pipe = backend.load(model)
    token = getattr(pipe, tok)("red", add_special_tokens=False).input_ids
    assert len(token) == 1
    return getattr(pipe, key).get_input_embeddings().weight[token[0]].detach().clone()


def pixels(backend, prompt, model="tiny"):
    result = backend.generate(GenerationParams(prompt, seed=3, num_inference_steps=6, model=model))
    return result, np.asarray(result.images[0], dtype=np.int16)


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "embeddings"


def test_an_embedding_of_reds_vector_draws_what_red_draws_in_every_format(folder):
    folder.mkdir()
    plain = LocalBackend(progress=False)
    vector = red_vector(plain)
    torch.save({"string_to_param": {"*": vector[None]}, "name": "crimzon", "step": 100}, folder / "crimzon.pt")
    save_file({"emb_params": vector[None].contiguous()}, str(folder / "scarlett.safetensors"))
    torch.save({"<vermil>": vector}, folder / "vermil.bin")  # diffusers' format
    _, base = pixels(plain, BASE)
    backend = LocalBackend(progress=False, embeddings=folder)
    for name in ("crimzon", "scarlett", "vermil"):
        result, image = pixels(backend, BASE.replace("red", name))
        assert np.array_equal(image, base), name
        assert list(result.details["ti_hashes"]) == [name]
        assert len(result.details["ti_hashes"][name]) == 12
    assert backend.identity()["embeddings"] == str(folder)
    # a name inside another word is not the embedding (A1111 matches whole words)
    _, other = pixels(backend, "a crimzonish circle on a blue background")
    assert not np.array_equal(other, base)
    # prompts without an embedding are untouched by the ones loaded before
    assert np.array_equal(pixels(backend, BASE)[1], base)


def test_an_embedding_of_two_vectors_and_with_a_weight(folder):
    folder.mkdir()
    plain = LocalBackend(progress=False)
    vector = red_vector(plain)
    torch.save({"string_to_param": {"*": torch.stack([vector, vector])}}, folder / "twored.pt")
    backend = LocalBackend(progress=False, embeddings=folder)
    _, two = pixels(backend, "a twored circle on a blue background")
    _, expected = pixels(plain, "a red red circle on a blue background")
    assert np.array_equal(two, expected)
    _, weighted = pixels(backend, "a (twored:1.4) circle on a blue background")
    assert not np.array_equal(weighted, two)


def test_sdxl_embeddings_carry_both_encoders_vectors(folder):
    folder.mkdir()
    plain = LocalBackend(progress=False)
    small = red_vector(plain, "tiny-sdxl")
    g = red_vector(plain, "tiny-sdxl", "text_encoder_2", "tokenizer_2")
    save_file({"clip_l": small[None].contiguous(), "clip_g": g[None].contiguous()}, str(folder / "crimzon.safetensors"))
    _, base = pixels(plain, BASE, "tiny-sdxl")
    backend = LocalBackend(progress=False, embeddings=folder)
    assert np.array_equal(pixels(backend, BASE.replace("red", "crimzon"), "tiny-sdxl")[1], base)


def test_an_embedding_for_another_model_is_refused_naming_it(folder, monkeypatch):
    folder.mkdir()
    torch.save({"string_to_param": {"*": torch.zeros(1, 768)}}, folder / "wide.pt")
    monkeypatch.setenv("SDKIT_EMBEDDINGS_DIR", str(folder))
    backend = LocalBackend(progress=False)  # found through the environment
    with pytest.raises(ValidationError, match=r"embedding='wide'.*768 wide; this model's is 64"):
        backend.generate(GenerationParams("a wide circle", seed=1, num_inference_steps=1))


def test_a_missing_folder_is_refused_at_once(tmp_path):
    with pytest.raises(ValidationError, match="embeddings"):
        LocalBackend(embeddings=tmp_path / "nope")
