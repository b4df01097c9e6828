"""CI's contract: the default test run leaves out the slow tests, .ci/run runs it and then the slow ones, and
constraints.txt pins every dependency that ``pip install -e ".[all]"`` installs."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _name(requirement: str) -> str:
    """PEP 503 normalised project name of a requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not an exact pin"
            pins[_name(name)] = version
    return pins


def test_default_run_leaves_out_the_slow_tests() -> None:
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert shlex.split(options["addopts"])[-2:] == ["-m", "not slow"]
    assert any(marker.startswith("slow:") for marker in options["markers"])


def test_ci_runs_the_default_command_then_the_slow_tests() -> None:
    calls = [line.strip() for line in CI.splitlines() if re.match(r"run_pytest\b(?!\()", line.strip())]
    assert calls == ["run_pytest", "run_pytest -m slow"]  # step 1: the README's command; step 2: the slow tests
    assert '.venv/bin/python -m pytest -q "$@"' in CI
    assert '"$status" = 5' in CI  # "no tests ran" is a failure
    assert 'pip install -q -e ".[all]" -c constraints.txt' in CI


def test_constraints_pin_every_dependency_of_all() -> None:
    pins = _constraints()
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if _name(r) != "hybridcert"]
    missing = sorted({_name(r) for r in requirements} - set(pins))
    assert not missing, f"constraints.txt does not pin {missing}: add the versions CI tested"
    assert "hybridcert" not in pins
    assert pins["torch"] == "2.13.0"  # the CPU wheel the README and .ci/run install first
