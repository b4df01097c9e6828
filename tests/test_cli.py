"""The command line: "not certified" is never printed as a radius or budget, and the CLI's usability fixes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hybridcert.cli import app
from hybridcert.theory import HybridNoise
from hybridcert.theory.batch import certify_config

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def test_uncertified_budget_prints_not_certified_not_a_radius() -> None:
    code, text = _run("certify", "--p-a", "0.99", "--budget", "2")
    assert code == 0
    assert "certified radius at d=2: not certified" in text
    assert "0.0525" in text  # the worst case at eps = 0 that decided it, below tau = 0.5
    assert "d=2: 0" not in text

    code, text = _run("certify", "--p-a", "0.99", "--budget", "2", "--json")
    data = json.loads(text)
    assert data["certified"] is False and data["certified_radius"] is None
    assert data["worst_case_at_zero_radius"] < 0.5
    assert [row["budget"] for row in data["frontier"]] == [0]


def test_uncertified_radius_prints_not_certified_not_minus_one() -> None:
    code, text = _run("certify", "--radius", "0.1", "--p-a", "0.4")
    assert code == 0
    assert "certified budget at eps=0.1: not certified" in text and "-1" not in text
    code, text = _run("certify", "--radius", "0.1", "--p-a", "0.4", "--json")
    data = json.loads(text)
    assert data["certified"] is False and data["certified_budget"] is None and data["frontier"] == []


def test_certified_cases_keep_their_numbers() -> None:
    data = certify_config({"p_a": 0.99, "vocab": 30000, "beta": 0.25, "sigma": 1.0, "budget": 0, "radius": 1.0})
    noise = HybridNoise("uniform-other", 30000, 0.25, 1.0)
    assert data["certified"] is True
    assert data["certified_radius"] == noise.certified_radius(0.99, 0)
    assert data["certified_budget"] == 0


@pytest.mark.parametrize("p_a", [0.3, 0.5, 0.6, 0.9, 0.99, 0.999999])
@pytest.mark.parametrize("budget", [0, 1, 3])
def test_a_reported_radius_or_budget_is_always_a_certificate(p_a: float, budget: int) -> None:
    """Whatever certify reports is certified; whatever it leaves out is not (the engine decides both)."""
    noise = HybridNoise("uniform-other", 50, 0.5, 0.5)
    data = certify_config({"p_a": p_a, "vocab": 50, "beta": 0.5, "sigma": 0.5, "budget": budget, "radius": 0.1})
    at_zero = min(noise.worst_case(p_a, d, 0.0) for d in range(budget + 1)) >= 0.5
    assert (data["certified_radius"] is not None) == at_zero
    if data["certified_radius"] is not None:
        # the float lower bound at the boundary itself may sit 1 ulp under tau; just inside it must not
        assert noise.worst_case(p_a, budget, data["certified_radius"] * (1 - 1e-9)) >= 0.5
    at_radius = [noise.worst_case(p_a, d, 0.1) >= 0.5 for d in range(budget + 1)]
    assert data["certified"] == all(at_radius)
    if data["certified_budget"] is None:
        assert not at_radius[0]
    else:
        assert all(noise.worst_case(p_a, d, 0.1) >= 0.5 for d in range(data["certified_budget"] + 1))


def test_engine_zero_radius_is_not_a_certificate_at_eps_zero() -> None:
    """certified_radius returns 0.0 for an uncertified budget; the API's other answers tell it apart."""
    noise = HybridNoise("uniform-other", 30000, 0.25, 1.0)
    assert noise.certified_radius(0.99, 2) == 0.0
    assert noise.worst_case(0.99, 2, 0.0) < 0.5  # so (2, 0) is not certified
    assert noise.certified_budget(0.99, 0.0, max_budget=2) < 2
    assert 2 not in [d for d, _ in noise.frontier(0.99)]
    assert noise.certified_budget(0.4, 0.1) == -1
    radii, mask = noise.frontier_radii(np.array([0.99]), max_budget=2)
    assert mask[0].tolist() == [True, False, False] and radii[0, 2] == 0.0
