"""Shared test configuration: Hypothesis profiles and the CI switch.

Two runs (pyproject's addopts, .ci/run):

- the default run, ``python -m pytest -q`` (the README's command, CI step 1), leaves out tests marked
  ``slow`` and loads a Hypothesis profile sized for it: ``dev`` (100 examples) on a workstation, ``ci``
  (60 examples, derandomised so that CI is reproducible) when the environment variable CI is set;
- the slow run, ``python -m pytest -q -m slow`` (CI step 2), runs the tests marked slow at their full grids,
  and the slow twins of the Hypothesis tests with ``THOROUGH`` settings (2000 examples).

HYPOTHESIS_PROFILE, when set, chooses the profile (``ci``, ``dev`` or ``thorough``) in either run.
``CI_PROFILE`` (CI is set) also turns a missing system tool (pdftoppm, chromium) into a failure, not a skip.
"""

from __future__ import annotations

import os

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
