import pickle

import pytest

from sdkit import Secret
from sdkit.secret import MASK, scrub

KEY = "sk-planted-0123456789abcdef"


def test_a_secret_never_shows_its_value():
    secret = Secret(KEY)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,), repr([secret])):
        assert KEY not in text
        assert MASK in text
    assert secret.reveal() == KEY
    assert secret == Secret(KEY) and bool(secret) and not Secret("")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "x"


def test_scrub_removes_the_key_and_any_bearer_token():
    text = f"bad key {KEY}; header was Authorization: Bearer sk-other-token"
    clean = scrub(text, Secret(KEY))
    assert KEY not in clean and "sk-other-token" not in clean
    assert clean == f"bad key {MASK}; header was Authorization: Bearer {MASK}"
