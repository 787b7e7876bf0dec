"""Which prompts read differently now, and how a sweep's cache tells the old images from the new."""

import hashlib
import json

import pytest

from sdkit import GenerationParams
from sdkit.prompts.syntax import is_plain_text, may_use_prompt_language
from sdkit.sweeps.runner import cache_key


@pytest.mark.parametrize("text", ["a red circle", "a, b: c", "3:4", "a red circle)", "<foo:bar>", ""])
def test_plain(text):
    assert is_plain_text(text) and not may_use_prompt_language(text)


@pytest.mark.parametrize(
    "text", ["(red)", "[red]", "a BREAK b", "[a:b:0.5]", "[a|b]", "\\(x\\)", "x <lora:a:1>", "word " * 80]
)
def test_uses_the_language(text):
    assert may_use_prompt_language(text)


def test_plain_prompts_keep_their_cache_keys_and_the_others_get_new_ones():
    ident = {"name": "local", "device": "cpu"}

    def old_key(p):  # the key as sdkit made it before the prompt language
        blob = json.dumps({"backend": ident, "params": p.to_dict()}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    plain = GenerationParams("a red circle", seed=1)
    assert cache_key(ident, plain) == old_key(plain)
    weighted = GenerationParams("a (red:1.3) circle", seed=1)
    assert cache_key(ident, weighted) != old_key(weighted)
    assert cache_key(ident, plain.replace(negative_prompt="[blue]")) != old_key(plain.replace(negative_prompt="[blue]"))
    assert "clip_skip" not in plain.to_dict() and plain.replace(clip_skip=2).to_dict()["clip_skip"] == 2
