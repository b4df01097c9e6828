"""Theory tests compare against 40-digit mpmath values: run each test at that precision."""

from __future__ import annotations

from collections.abc import Iterator

import mpmath as mp
import pytest

from tests.theory.mp_oracle import DPS


@pytest.fixture(autouse=True)
def _mp_precision() -> Iterator[None]:
    with mp.workdps(DPS):
        yield
