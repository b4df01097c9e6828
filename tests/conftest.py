"""Shared test configuration: Hypothesis profiles and the CI profile switch.

Under CI (environment variable CI set) slow checks run on smaller grids: tests read ``CI_PROFILE``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

CI_PROFILE = bool(os.environ.get("CI"))

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if CI_PROFILE else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
