"""The set-up files agree with each other, and the README's commands are what CI runs."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = _pyproject()
    declared = list(project["dependencies"])
    for extra, reqs in project["optional-dependencies"].items():
        if extra != "all":
            declared += reqs
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_reqs = [r for r in pip_list if not r.startswith("-e")]
    by_name = {_name(r): r.replace(" ", "") for r in declared}
    env_by_name = {_name(r): r.replace(" ", "") for r in conda_reqs}
    assert set(env_by_name) == set(by_name)
    for name, req in by_name.items():
        if name != "torch":  # environment.yml pins the CPU build that the Makefile installs
            assert env_by_name[name] == req, name
    assert env_by_name["torch"] == "torch==2.13.0"


def test_distribution_name_differs_from_pypi_sdkit_and_readme_says_so():
    assert _pyproject()["name"] == "sdkit-lab"
    readme = (ROOT / "README.md").read_text()
    assert "sdkit-lab" in readme and "easydiffusion" in readme


def test_torch_is_a_range_for_the_package_and_pinned_for_dev():
    local = _pyproject()["optional-dependencies"]["local"]
    assert "torch>=2.1" in local
    assert "TORCH := torch==2.13.0" in (ROOT / "Makefile").read_text()
    assert not any(_name(r) == "torchvision" for r in local)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("\n## ", readme.index("make test"))]
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()
