import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def backend():
    """One local backend for the session: the tiny pipeline loads once."""
    from sdkit import LocalBackend

    return LocalBackend(progress=False)
