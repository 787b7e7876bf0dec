import random

import pytest

from sdkit import RetryPolicy, ValidationError
from sdkit.backends.relay.retry import retry_after_seconds, should_retry_status


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (503, True),
        (400, False),
        (401, False),
        (404, False),
        (413, False),
        (422, False),
    ],
)
def test_which_statuses_are_retried(status, retry):
    assert should_retry_status(status) is retry


def test_backoff_doubles_up_to_the_cap_with_jitter_taken_off():
    policy = RetryPolicy(initial_delay=0.5, max_delay=8.0, jitter=0.25)
    rng = random.Random(0)
    for attempt, base in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0]):
        delay = policy.delay(attempt, rng=rng)
        assert base * 0.75 <= delay <= base
    assert RetryPolicy(jitter=0).delay(2) == 2.0


def test_retry_after_is_honoured_when_reasonable():
    policy = RetryPolicy(jitter=0)
    assert policy.delay(0, retry_after=1.0) == 1.0
    assert policy.delay(0, retry_after=3600) == 0.5  # an hour is not waited for: normal backoff
    assert retry_after_seconds({"Retry-After": "1"}) == 1.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480) == 10.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize("fields", [{"max_retries": -1}, {"max_retries": 1.5}, {"initial_delay": -1}, {"jitter": 2}])
def test_bad_policy_values_are_refused(fields):
    with pytest.raises(ValidationError):
        RetryPolicy(**fields)
