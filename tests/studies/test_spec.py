import pytest

from sdkit import ValidationError
from sdkit.studies.spec import parse_study_spec

SPEC = """
name: cfg-vs-steps
backend: local            # or chat / images, with base_url
model: tiny
params: {prompt: "a red circle", negative_prompt: "", width: 64, height: 64, scheduler: "Euler a"}
axes:
  x: "guidance_scale=1,4,7.5"
  y: "num_inference_steps=5-15 (+5)"
seeds: [1, 2]
"""


def test_parses_the_documented_spec():
    spec = parse_study_spec(SPEC)
    assert spec.name == "cfg-vs-steps"
    assert spec.params.prompt == "a red circle"
    assert spec.params.scheduler == "Euler a"
    assert (spec.params.width, spec.params.model) == (64, "tiny")
    assert spec.axes == {"x": "guidance_scale=1,4,7.5", "y": "num_inference_steps=5-15 (+5)"}
    assert spec.seeds == (1, 2)
    assert parse_study_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ("colour: red", "colour"),
        ("params: {prompt: x, cfg: 7}", "params.cfg"),
        ("params: {prompt: x, width: 65}", "params.width"),
        ("params: {prompt: x, seed: 3}", "params.seed"),
        ("params: {prompt: ''}", "params.prompt"),
        ("axes: {w: 'seed=1,2'}", "axes.w"),
        ("axes: {x: 'guidance_scale'}", "axes.x"),
        ("axes: {y: 'seed=1,2'}", "axes"),
        ("seeds: [1, -2]", "seeds[1]"),
        ("seeds: [1, 1]", "seeds"),
        ("seeds: []", "seeds"),
        ("backend: midjourney", "backend"),
        ("backend: chat", "base_url"),
        ("base_url: http://127.0.0.1:1", "base_url"),
        ("name: 'a/b'", "name"),
        ("model: ''", "model"),
        ("threads: 0", "threads"),
        ("batch: maybe", "batch"),
    ],
)
def test_bad_keys_and_values_are_refused_with_their_path(patch, path):
    base = {"name": "s", "params": {"prompt": "x"}}
    import yaml

    base.update(yaml.safe_load(patch))
    with pytest.raises(ValidationError) as info:
        parse_study_spec(base)
    assert info.value.field == path
    assert path in str(info.value)


def test_invalid_yaml():
    with pytest.raises(ValidationError, match="not valid YAML"):
        parse_study_spec("name: [unclosed")


def test_portable_key_is_checked_and_recorded_only_when_on():
    from sdkit.studies.spec import parse_study_spec

    base = {"name": "s", "params": {"prompt": "a red circle"}}
    assert "portable" not in parse_study_spec(base).to_dict()
    spec = parse_study_spec({**base, "portable": True})
    assert spec.portable and spec.to_dict()["portable"] is True
    for bad, field in (({"portable": "yes"}, "portable"), ({"portable": True, "threads": 2}, "threads")):
        with pytest.raises(ValidationError) as info:
            parse_study_spec({**base, **bad})
        assert info.value.field == field
    assert parse_study_spec({**base, "threads": "auto"}).threads == "auto"


@pytest.mark.parametrize(
    ("spec", "field", "meant"),
    [
        ({"name": "a", "seed": [1]}, "seed", "seeds"),
        ({"name": "a", "parms": {}}, "parms", "params"),
        ({"name": "a", "params": {"prompt": "p", "cfg": 3}}, "params.cfg", "guidance_scale"),
        ({"name": "a", "params": {"prompt": "p"}, "axes": {"X": "seed=1,2"}}, "axes.X", "x"),
    ],
)
def test_a_misspelt_key_suggests_the_one_meant(spec, field, meant):
    with pytest.raises(ValidationError, match=f"did you mean '{meant}'") as info:
        parse_study_spec(spec)
    assert info.value.field == field


def test_backend_options_are_checked_against_the_kind_and_recorded():
    base = {"name": "s", "params": {"prompt": "a red circle"}}
    spec = parse_study_spec(
        {**base, "backend": "images", "base_url": "http://127.0.0.1:9/v1", "backend_options": {"max_concurrency": 2}}
    )
    assert spec.options() == {"max_concurrency": 2, "base_url": "http://127.0.0.1:9/v1"}
    assert spec.to_dict()["backend_options"] == {"max_concurrency": 2}
    assert "backend_options" not in parse_study_spec(base).to_dict()  # folders made before it existed compare equal
    with pytest.raises(ValidationError, match="did you mean 'max_concurrency'") as info:
        parse_study_spec(
            {**base, "backend": "chat", "base_url": "http://x/v1", "backend_options": {"max_concurency": 2}}
        )
    assert info.value.field == "backend_options.max_concurency"
    with pytest.raises(ValidationError, match="is not an option of backend 'chat'") as info:
        parse_study_spec({**base, "backend": "chat", "base_url": "http://x/v1", "threads": 2})
    assert info.value.field == "threads"
    with pytest.raises(ValidationError, match="top-level 'threads'"):
        parse_study_spec({**base, "backend_options": {"threads": 2}})


def test_a_registered_kind_is_a_study_backend():
    import sdkit

    class Solid:
        name = "solid_spec"

        def __init__(self, shade: int = 0):
            self.shade = shade

        def identity(self):
            return {"shade": self.shade}

    sdkit.register_backend("solid_spec", Solid)
    try:
        spec = parse_study_spec(
            {"name": "s", "params": {"prompt": "x"}, "backend": "solid_spec", "backend_options": {"shade": 3}}
        )
        assert spec.backend == "solid_spec" and sdkit.create_backend(spec.backend, **spec.options()).shade == 3
    finally:
        sdkit.backends.unregister_backend("solid_spec")
    with pytest.raises(ValidationError, match="is not a backend kind"):
        parse_study_spec({"name": "s", "params": {"prompt": "x"}, "backend": "solid_spec"})
