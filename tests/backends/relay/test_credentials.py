import sys
import types

import pytest

from sdkit import Secret, ValidationError
from sdkit.backends.relay.credentials import resolve_api_key, resolve_base_url


def test_argument_then_sdkit_then_openai_environment():
    env = {"SDKIT_BASE_URL": "https://a.example/", "OPENAI_BASE_URL": "https://b.example"}
    assert resolve_base_url("https://c.example/v1/", environ=env) == "https://c.example/v1"
    assert resolve_base_url(environ=env) == "https://a.example"
    assert resolve_base_url(environ={"OPENAI_BASE_URL": "https://b.example"}) == "https://b.example"
    keys = {"SDKIT_API_KEY": "sk-a", "OPENAI_API_KEY": "sk-b"}
    assert resolve_api_key("sk-arg", environ=keys).reveal() == "sk-arg"
    assert resolve_api_key(environ=keys).reveal() == "sk-a"
    assert resolve_api_key(environ={"OPENAI_API_KEY": "sk-b"}).reveal() == "sk-b"
    assert resolve_api_key("", environ=keys) is None  # "" means: send no key
    assert isinstance(resolve_api_key(environ=keys), Secret)


def test_missing_or_bad_base_url_is_refused_by_name(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(ValidationError, match="SDKIT_BASE_URL") as info:
        resolve_base_url(environ={})
    assert info.value.field == "base_url"
    with pytest.raises(ValidationError):
        resolve_base_url("relay.example", environ={})


def test_colab_secrets_are_read_when_google_colab_is_importable(monkeypatch):
    userdata = types.SimpleNamespace(
        get=lambda name: {"SDKIT_API_KEY": "sk-colab", "SDKIT_BASE_URL": "https://co.lab"}[name]
    )
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    assert resolve_api_key(environ={}).reveal() == "sk-colab"
    assert resolve_base_url(environ={}) == "https://co.lab"


def test_no_key_anywhere_outside_a_notebook_means_none_without_prompting(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def refuse(*args):
        raise AssertionError("must not prompt outside a notebook")

    monkeypatch.setattr("getpass.getpass", refuse)
    assert resolve_api_key(environ={}) is None
