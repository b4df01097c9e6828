"""Fixtures for the verifier tests: a results.json written from the real theory, per docs/results-format.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybridcert.theory import HybridNoise

NOISE = {"kernel": "uniform-other", "vocab_size": 10, "beta": 0.75, "sigma": 0.25}


def make_results(p_values: list[float], tau: float = 0.5, max_budget: int = 3) -> dict[str, Any]:
    noise = HybridNoise(NOISE["kernel"], NOISE["vocab_size"], NOISE["beta"], NOISE["sigma"])
    inputs = []
    for i, p in enumerate(p_values):
        frontier = [{"budget": d, "radius": r} for d, r in noise.frontier(p, tau=tau, max_budget=max_budget)]
        inputs.append({"id": f"x{i:04d}", "label": 1, "side": "flag", "threshold": tau, "p_a_lower": p,
                       "decision": "flag" if frontier else "abstain", "frontier": frontier})
    return {"schema": "hybridcert/results/v1", "config": {"noise": dict(NOISE), "tau": tau}, "inputs": inputs}


@pytest.fixture
def results_path(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(make_results([0.9912, 0.97, 0.8, 0.4])), encoding="utf-8")
    return path
