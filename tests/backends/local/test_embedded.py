import hashlib
import json
from pathlib import Path

import pytest

from sdkit import ModelError, embedded_model_path
from sdkit.backends.local.embedded import VOCAB_WORDS, write_tokenizer


def _weights_digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.safetensors")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_same_build_gives_same_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("SDKIT_CACHE_DIR", str(tmp_path / "a"))
    a = embedded_model_path("tiny-random")
    monkeypatch.setenv("SDKIT_CACHE_DIR", str(tmp_path / "b"))
    b = embedded_model_path("tiny-random")
    assert a != b
    assert _weights_digest(a) == _weights_digest(b)
    assert json.loads((a / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    # built once, then reused from the cache folder
    stamp = (b / "model_index.json").stat().st_mtime_ns
    assert embedded_model_path("tiny-random") == b
    assert (b / "model_index.json").stat().st_mtime_ns == stamp


def test_loads_with_diffusers_from_pretrained():
    from diffusers import AutoPipelineForText2Image, StableDiffusionXLPipeline

    for name in ("tiny", "tiny-random"):
        pipe = AutoPipelineForText2Image.from_pretrained(str(embedded_model_path(name)))
        assert pipe.tokenizer.model_max_length == 77
        assert pipe.text_encoder.config.eos_token_id == pipe.tokenizer.eos_token_id
    xl = AutoPipelineForText2Image.from_pretrained(str(embedded_model_path("tiny-sdxl")))
    assert isinstance(xl, StableDiffusionXLPipeline)


def test_tokenizer_knows_words_and_still_tokenizes_unknown_ones(tmp_path):
    from transformers import CLIPTokenizer

    write_tokenizer(tmp_path)
    tok = CLIPTokenizer.from_pretrained(str(tmp_path), model_max_length=77)
    ids = tok("a red circle").input_ids
    assert len(ids) == 5  # start, three whole words, end
    for word in VOCAB_WORDS:  # every vocabulary word is one token, whatever the words before it
        assert len(tok(word).input_ids) == 3, word
    unknown = tok("a zyxwvut thing").input_ids
    assert len(unknown) > 5
    assert tok.decode(unknown, skip_special_tokens=True) == "a zyxwvut thing"
    assert len(tok("word " * 200, truncation=True).input_ids) == 77


def test_unknown_embedded_name():
    with pytest.raises(ModelError, match="tiny-xxl"):
        embedded_model_path("tiny-xxl")


def test_default_tiny_is_the_trained_model_shipped_in_the_package(tmp_path, monkeypatch):
    import sdkit

    monkeypatch.setenv("SDKIT_CACHE_DIR", str(tmp_path))
    folder = embedded_model_path("tiny")
    assert folder.is_relative_to(Path(sdkit.__file__).parent)
    assert not (tmp_path / "models").exists()  # nothing built, nothing copied
    weights = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert weights <= 10 * 1024 * 1024
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]


def test_package_data_patterns_cover_every_shipped_model_file():
    import fnmatch

    import tomllib

    import sdkit

    root = Path(sdkit.__file__).parent
    patterns = tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "sdkit"
    ]
    files = [p.relative_to(root).as_posix() for p in (root / "models").rglob("*") if p.is_file()]
    assert files
    assert [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []


def test_tiny_tokenizer_knows_the_caption_words_and_still_tokenizes_others():
    from transformers import CLIPTokenizer

    from training.shapes import COLOURS, SHAPES

    tok = CLIPTokenizer.from_pretrained(str(embedded_model_path("tiny") / "tokenizer"))
    assert tok.model_max_length == 77
    for word in ("red", "blue", "circle", "square", "large", "white"):
        assert len(tok(word).input_ids) == 3, word  # start, the whole word, end
    for word in [*COLOURS, *SHAPES, "background", "small", "large", "left", "right", "top", "bottom", "center"]:
        assert len(tok(word).input_ids) == 3, word
        assert tok.decode(tok(word).input_ids, skip_special_tokens=True) == word
    unknown = tok("a zyxwvut circle").input_ids
    assert tok.decode(unknown, skip_special_tokens=True) == "a zyxwvut circle"
