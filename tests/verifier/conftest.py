"""Fixtures for the verifier tests: a results.json written from the real theory, per docs/results-format.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.results.builders import NOISE, make_results

__all__ = ["NOISE", "make_results"]


@pytest.fixture
def results_path(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(make_results([0.9912, 0.97, 0.8, 0.4])), encoding="utf-8")
    return path
