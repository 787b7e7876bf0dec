import pytest

from sdkit import A1111_SCHEDULERS, ValidationError
from sdkit.backends.local.schedulers import a1111_name, canonical_scheduler, make_scheduler

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
    if cls_name == "LMSDiscreteScheduler":
        pytest.importorskip("scipy", reason="LMS needs the lms extra (scipy)")
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


def test_lms_without_scipy_names_the_extra_to_install(monkeypatch):
    import importlib.util

    from sdkit.backends.local.schedulers import make_scheduler
    from sdkit.errors import MissingDependencyError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"sdkit-lab\[lms\]"):
        make_scheduler("LMS", {})


def test_lms_runs_when_scipy_is_there():
    pytest.importorskip("scipy")
    from sdkit.backends.local.schedulers import make_scheduler

    assert type(make_scheduler("LMS Karras", {})).__name__ == "LMSDiscreteScheduler"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("k_euler_a", "Euler a"),
        ("k_euler_ancestral", "Euler a"),
        ("euler_ancestral", "Euler a"),
        ("Euler-a", "Euler a"),
        ("k_lms_ka", "LMS Karras"),
        ("k_dpm_2_a", "DPM2 a"),
        ("dpm_2_ancestral", "DPM2 a"),
        ("k_dpmpp_2m", "DPM++ 2M"),
        ("k_dpmpp_2m_ka", "DPM++ 2M Karras"),
        ("dpmpp_2m_karras", "DPM++ 2M Karras"),
        ("dpmpp_2m_sde_karras", "DPM++ 2M SDE Karras"),
        ("k_dpmpp_sde", "DPM++ SDE"),
        ("uni_pc", "UniPC"),
        ("plms", "PNDM"),
    ],
)
def test_k_diffusion_and_comfyui_spellings_are_accepted(name, canonical):
    assert canonical_scheduler(name) == canonical


@pytest.mark.parametrize(
    ("name", "meant"),
    [("Eular a", "'Euler a'"), ("DPM++ 2M Karas", "'DPM++ 2M Karras'"), ("EulerDiscrete", "'EulerDiscreteScheduler'")],
)
def test_a_misspelt_scheduler_is_refused_with_the_close_name(name, meant):
    with pytest.raises(ValidationError, match="did you mean") as info:
        canonical_scheduler(name)
    assert info.value.field == "scheduler"
    assert meant in str(info.value)


# --- step counts a scheduler cannot run (issue 15) --------------------------------------------------------------


def run_steps(scheduler_name, config, steps):
    """Run the scheduler's own loop the way a pipeline does, on a tiny latent with made-up model output."""
    import torch

    scheduler = make_scheduler(scheduler_name, config)
    scheduler.set_timesteps(steps)
    x = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(torch.ones_like(x) * 0.1, t, scheduler.scale_model_input(x, t)).prev_sample
    return x


@pytest.mark.parametrize(
    ("name", "config", "steps", "fails"),
    [
        ("PNDM", BASE, 1, True),
        ("PNDM", BASE, 3, True),
        ("PNDM", BASE, 4, False),
        ("PNDM", {**BASE, "skip_prk_steps": True}, 1, False),  # SD 1.5's own PNDM config
        ("LCM", BASE, 50, False),
        ("LCM", BASE, 51, True),
        ("LCM", {**BASE, "original_inference_steps": 100}, 80, False),
        ("Euler", BASE, 1, False),
        ("DPM++ 2M", BASE, 1, False),
    ],
)
def test_steps_problem_says_exactly_where_diffusers_fails(name, config, steps, fails):
    from sdkit.backends.local.schedulers import scheduler_spec, steps_problem

    cls, extra = scheduler_spec(name)
    assert (steps_problem(cls, {**config, **extra}, steps) is not None) == fails
    if fails:
        with pytest.raises((ValueError, IndexError)):
            run_steps(name, config, steps)
    else:
        run_steps(name, config, steps)


def test_check_steps_names_field_value_and_scheduler():
    from sdkit.backends.local.schedulers import check_steps

    with pytest.raises(ValidationError) as info:
        check_steps("PNDM", 2, ("EulerDiscreteScheduler", BASE))
    assert (info.value.field, info.value.value) == ("num_inference_steps", 2)
    assert "PNDM needs at least 4 steps" in str(info.value)
    with pytest.raises(ValidationError, match="PNDMScheduler \\(the model's own\\)"):
        check_steps(None, 3, ("PNDMScheduler", BASE))
    check_steps(None, 1, ("PNDMScheduler", {**BASE, "skip_prk_steps": True}))
    check_steps("PNDM", 1, ("PNDMScheduler", {**BASE, "skip_prk_steps": True}))  # the model's config carries over
