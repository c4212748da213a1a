"""environment.yml (conda, untestable here) pins exactly what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import REPO


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(==|>=|<=|<|>|~=|!=)?\s*(.*)", req.strip())
        if match:
            pins[match.group(1).lower()] = req.replace(" ", "")
    return pins


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_pins = _pins([r for r in pip_section if not r.startswith("-")])
    project_pins = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    assert env_pins == project_pins
    assert project_pins["torch"] == "torch==2.14.1" and project_pins["torchvision"] == "torchvision==0.29.1"
    assert any(r.startswith("-e") for r in pip_section), "the pip section installs this package"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11"
