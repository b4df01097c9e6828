"""Shared test configuration: Hypothesis profiles and the CI switch.

Two runs (pyproject's addopts, .ci/run):

- the default run, ``python -m pytest -q`` (the README's command, CI step 1), leaves out tests marked
  ``slow`` and loads a Hypothesis profile sized for it: ``dev`` (100 examples) on a workstation, ``ci``
  (60 examples, derandomised so that CI is reproducible) when the environment variable CI is set;
- the slow run, ``python -m pytest -q -m slow`` (CI step 2), runs the tests marked slow at their full grids,
  and the slow twins of the Hypothesis tests with ``THOROUGH`` settings (2000 examples).

HYPOTHESIS_PROFILE, when set, chooses the profile (``ci``, ``dev`` or ``thorough``) in either run.
``CI_PROFILE`` (CI is set) also turns a missing system tool (pdftoppm, chromium) into a failure, not a skip.
Fixture ``demo_run``: the README's demo command, run once per session for the tests that need a full demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

CI_PROFILE = bool(os.environ.get("CI"))

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if CI_PROFILE else "dev"))

#: for the slow twin of a Hypothesis test: ``@pytest.mark.slow @THOROUGH @given(...)``
THOROUGH = settings(settings.get_profile("thorough"))


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The README's demo command (``hybridcert demo``: 100 inputs, n = 1000, signed report), run once per session
    in a subprocess (about 10 s of CPU); returns its --out folder and the finished process. Tests assert on the
    process themselves and work on a copy of the folder when they write to it."""
    out = tmp_path_factory.mktemp("demo-run") / "demo-out"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "hybridcert", "demo", "--out", str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    return out, proc
