"""Each check passes on the real theory, and the verifier's own building blocks are right."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest
from mpmath import iv, mp
from typer.testing import CliRunner

from hybridcert.cli import app
from hybridcert.verifier.highprec import HighPrecisionSolver, check_highprec, gaussian_mass_below, random_cases
from hybridcert.verifier.interval import phi_interval, prove_budget, prove_frontier, prove_worst_case
from hybridcert.verifier.properties import check_properties
from hybridcert.verifier.reference import NoiseParams, exact_atoms, group_atoms, knapsack, raw_outcomes
from hybridcert.verifier.runner import Grid, check_interval
from hybridcert.verifier.symbolic import check_symbolic, derive

THEORY8 = NoiseParams("uniform-other", 30000, 0.25, 1.0)


def test_symbolic_passes_on_theory() -> None:
    result = check_symbolic(2, seed=3)
    assert result.passed, result.failures
    der = derive()
    assert all(der.sums_to_one.values())
    assert der.limits[0] == 1 and der.limits[1] == 0  # e -> 0: below the boundary 1, above it 0


def test_highprec_passes_on_theory() -> None:
    result = check_highprec(random_cases(np.random.default_rng(2), 1, 1, max_budget=2))
    assert result.passed, result.failures
    assert result.max_abs_error is not None and result.max_abs_error < 1e-8


def test_properties_pass_on_theory() -> None:
    result = check_properties(8, 5, mc_samples=4000)
    assert result.passed, result.failures
    assert result.cases >= 7 * 8


def test_interval_check_passes_on_theory() -> None:
    result = check_interval(Grid("t", interval_configs=3, interval_max_budget=3))
    assert result.passed, result.failures and result.cases >= 3


def test_gaussian_quadrature_matches_erfc_to_many_digits() -> None:
    with mp.workdps(50):
        for x in ("-1e4", "-40", "-7.5", "-1", "-0.3", "0", "0.7", "5"):
            q, c = gaussian_mass_below(mp.mpf(x)), mp.ncdf(mp.mpf(x))
            assert abs(q / c - 1) < mp.mpf(10) ** -40, x


def test_phi_interval_encloses_the_quadrature() -> None:
    old = iv.dps
    iv.dps = 60
    try:
        for a, b in ((-50.0, -49.9), (-3.0, 2.0), (8.0, 8.5)):
            box = phi_interval(iv.mpf([a, b]))
            with mp.workdps(60):
                lo, hi = gaussian_mass_below(mp.mpf(a)), gaussian_mass_below(mp.mpf(b))
                assert mp.make_mpf(box._mpi_[0]) <= lo and hi <= mp.make_mpf(box._mpi_[1])
    finally:
        iv.dps = old


def test_table_atoms_equal_raw_outcomes_grouped() -> None:
    for kernel in ("uniform-other", "uniform-all", "absorb"):
        for d in (1, 2, 3):
            table = exact_atoms(kernel, 4, 0.3, d)
            raw = group_atoms(raw_outcomes(kernel, 4, 0.3, d), d)
            assert table == raw, (kernel, d)
            assert sum(table.clean) + table.c0 == 1 and sum(table.attacked) + table.a_inf == 1


def test_knapsack_by_hand() -> None:
    atoms = exact_atoms("uniform-other", 3, 0.5, 1)  # P(a) = 1/2, P(b) = P(c) = 1/4; ratios 1/2, 1, 2
    assert knapsack(atoms, Fraction(1, 2)) == Fraction(1, 4)
    assert knapsack(atoms, Fraction(5, 8)) == Fraction(1, 4) + Fraction(1, 8)
    assert knapsack(atoms, Fraction(1)) == 1


def test_theory8_frontier_is_proved_and_a_nudge_up_is_not() -> None:
    p, tau = 0.99954, 4.6e-5
    frontier = [(0, 7.2246896), (1, 6.4697929), (2, 5.6251955)]  # docs/theory.md §8, rounded to 8 digits
    proofs = prove_frontier(THEORY8, p, tau, [(d, r - 1e-7) for d, r in frontier])
    assert all(pr.proved and pr.lower_bound >= tau for pr in proofs)
    assert not any(pr.proved for pr in prove_frontier(THEORY8, p, tau, [(d, r * (1 + 1e-6)) for d, r in frontier]))


def test_budget_proof_and_exact_cases() -> None:
    noise = NoiseParams("uniform-all", 10, 0.6, 0.5)
    assert prove_budget(noise, 0.99, 0.1, 2, 0.5).proved
    assert not prove_budget(noise, 0.99, 0.1, 40, 0.5).proved
    absorb = NoiseParams("absorb", 5, 0.5, 1.0)
    proof = prove_worst_case(absorb, 1.0, 2, math.inf, 0.5)  # p_A = 1: worst case 1 - A_inf = beta^2 = 1/4
    assert not proof.proved and proof.method == "exact-infinite"
    assert prove_worst_case(absorb, 1.0, 1, math.inf, 0.5).proved  # 1 - A_inf = 1/2 >= 1/2
    assert prove_worst_case(absorb, 0.99, 1, 0.0, 0.49).method == "exact-rational"


def test_a_radius_too_large_to_evaluate_is_not_proved_and_raises_nothing() -> None:
    """QA of issue 10: a frontier radius of 1e308 made mpmath's erfc raise OverflowError (verify --results
    exited 3); it must be "not proved" (exit 1), never an internal error and never proved."""
    noise = NoiseParams("uniform-other", 32, 0.75, 0.35)
    for radius in (1e308, 1e300):
        proof = prove_worst_case(noise, 0.9482, 0, radius, 0.5)
        assert not proof.proved and "beyond what the proof can evaluate" in proof.reason


def test_highprec_absorb_radius_matches_its_closed_form() -> None:
    noise = NoiseParams("absorb", 3, 0.6, 0.5)
    got = HighPrecisionSolver(noise, 1).radius(0.99, 0.5)
    with mp.workdps(40):
        m = mp.mpf(0.6)
        probit = lambda x: mp.sqrt(2) * mp.erfinv(2 * x - 1)  # noqa: E731
        exact = mp.mpf(0.5) * (probit(1 - (1 - mp.mpf(0.99)) / m) - probit(mp.mpf(0.5) / m))
        assert abs(got - exact) < mp.mpf(10) ** -35
    assert isinstance(got, mpmath.mpf)


def test_cli_checks_json_and_html(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["verify", "--check", "interval", "--json", "--html", str(page)])
    assert res.exit_code == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert data["passed"] and [c["name"] for c in data["checks"]] == ["interval"]
    html = page.read_text()
    assert "interval" in html and "PASS" in html and "<script" not in html
    res = CliRunner().invoke(app, ["verify", "--check", "nonsense"])
    assert res.exit_code == 2 and "unknown check" in res.stderr


@pytest.mark.slow
def test_cli_quick_passes() -> None:
    res = CliRunner().invoke(app, ["verify", "--quick"])
    assert res.exit_code == 0, res.stdout
    assert "PASS" in res.stdout
