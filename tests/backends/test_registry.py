"""The backend registry: built-ins and outsiders through the same door."""

import importlib.metadata

import pytest

import sdkit
from sdkit import ValidationError
from sdkit.backends import registry


class Solid:
    def __init__(self, *, colour: str = "red", kind: str = "solid_reg"):
        self.name = kind
        self.colour = colour

    def identity(self):
        return {"colour": self.colour}


@pytest.fixture
def solid():
    sdkit.register_backend("solid_reg", Solid)
    yield
    registry.unregister_backend("solid_reg")


def test_builtin_kinds_are_listed_first_and_build_without_importing_torch_at_registration():
    assert sdkit.backend_kinds()[:3] == ("local", "chat", "images")
    assert registry.backend_options("images")[:2] == ("base_url", "api_key")


def test_an_outside_kind_registers_builds_and_is_offered(solid):
    assert "solid_reg" in sdkit.backend_kinds()
    backend = sdkit.create_backend("solid_reg", colour="blue")
    assert backend.colour == "blue" and sdkit.backends.identity(backend) == {
        "name": "solid_reg",
        "colour": "blue",
        "batching": "none",
    }


def test_mistakes_are_named_with_suggestions(solid):
    with pytest.raises(ValidationError, match="did you mean 'local'"):
        sdkit.create_backend("locl")
    with pytest.raises(ValidationError, match="did you mean 'colour'") as info:
        sdkit.create_backend("solid_reg", color="blue")
    assert info.value.field == "color"
    with pytest.raises(ValidationError, match="already registered"):
        sdkit.register_backend("solid_reg", Solid)
    with pytest.raises(ValidationError, match="lower-case name"):
        sdkit.register_backend("Bad Name", Solid)
    sdkit.register_backend("solid_reg", lambda: Solid(kind="other"), replace=True)
    with pytest.raises(sdkit.SdkitError, match="made a backend named 'other'"):
        sdkit.create_backend("solid_reg")


def test_installed_packages_add_kinds_through_the_entry_point_group(monkeypatch):
    point = importlib.metadata.EntryPoint("solid_ep", "tests.backends.test_registry:Solid", registry.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        return [point] if kw.get("group") == registry.ENTRY_POINT_GROUP else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_loaded", False)
    try:
        assert "solid_ep" in sdkit.backend_kinds()
        assert sdkit.create_backend("solid_ep", kind="solid_ep").colour == "red"
    finally:
        registry.unregister_backend("solid_ep")
