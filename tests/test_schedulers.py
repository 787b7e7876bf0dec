import pytest

from sdkit import A1111_SCHEDULERS, ValidationError
from sdkit.schedulers import a1111_name, canonical_scheduler, make_scheduler

BASE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
}


@pytest.mark.parametrize("name", sorted(A1111_SCHEDULERS))
def test_every_a1111_name_builds_its_diffusers_scheduler(name):
    cls_name, extra = A1111_SCHEDULERS[name]
    scheduler = make_scheduler(name, BASE)
    assert type(scheduler).__name__ == cls_name
    for key, value in extra.items():
        assert scheduler.config[key] == value
    assert a1111_name(cls_name, dict(scheduler.config)) == name


def test_names_are_case_and_space_insensitive():
    assert canonical_scheduler("dpm++  2m karras") == "DPM++ 2M Karras"


def test_unknown_scheduler_names_the_value():
    with pytest.raises(ValidationError, match="'Eulr'"):
        canonical_scheduler("Eulr")


def test_unknown_class_keeps_its_own_name():
    assert a1111_name("FancyScheduler") == "FancyScheduler"
