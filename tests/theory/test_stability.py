"""Stability where the naive formula breaks (issue 2): rho^d beyond float64, p_a within 1e-12 of 1,
tau near 1e-9, eps/sigma from 1e-8 to 50. No NaN, no warnings, and still exact."""

from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest

from hybridcert.theory import HybridNoise, clopper_pearson_lower, cohen_radius
from tests.theory import mp_oracle as oracle

SLACK = mp.mpf("1e-25")


@pytest.fixture(autouse=True)
def _strict_floats():
    """Every float warning is an error here, and numpy raises instead of returning inf/nan silently
    (underflow to 0 of masses and tails below 1e-308 is by design and covered by the solvers' slack)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            yield


@pytest.mark.slow
def test_rho_power_d_far_beyond_float64() -> None:
    """V = 50000, beta = 0.01, d = 64: rho^64 ~ 1e428 overflows float64; masses stay exact in log space."""
    noise = HybridNoise("uniform-other", 50000, 0.01, 1.0)
    atoms = noise.token_kernel.atoms(64)
    assert np.isfinite(atoms.log_ratio).all() and atoms.log_ratio[-1] > 900  # log rho^64 ~ 985
    assert abs(np.exp(atoms.log_clean).sum() - 1.0) < 1e-12
    assert abs(np.exp(atoms.log_attacked).sum() - 1.0) < 1e-12
    p = np.array([0.5, 0.9, 0.999, 1 - 1e-9])
    for eps in (0.0, 1e-8, 0.1, 1.0, 50.0):
        wc = noise.worst_case(p, 64, eps)
        assert np.isfinite(wc).all() and ((wc >= 0) & (wc <= 1)).all()
        for x, w in zip(p, wc, strict=True):
            exact = oracle.worst_case("uniform-other", 50000, 0.01, 1.0, float(x), 64, eps)
            assert w <= exact + SLACK and abs(w - exact) < 1e-9, (x, eps, w, exact)
    r = noise.certified_radius(1 - 1e-12, 64, tau=1e-9)
    exact = oracle.radius("uniform-other", 50000, 0.01, 1.0, 1 - 1e-12, 64, 1e-9, r)
    assert r <= exact + SLACK and abs(r - exact) < 1e-9


@pytest.mark.parametrize("kernel", ["uniform-other", "uniform-all", "absorb"])
def test_p_a_within_1e12_of_one_and_tau_near_1e9(kernel: str) -> None:
    noise = HybridNoise(kernel, 1000, 0.3, 0.5)  # type: ignore[arg-type]
    for p in (1 - 1e-12, 1 - 1e-10, 1 - 1e-6):
        for d in (0, 1, 3):
            r = noise.certified_radius(p, d, tau=1e-9)
            assert np.isfinite(r) and r > 0
            exact = oracle.radius(kernel, 1000, 0.3, 0.5, p, d, 1e-9, r)
            assert r <= exact + SLACK and abs(r - exact) < 1e-9, (p, d, r, exact)
    # Cohen at p = 1 - 1e-12: Phi^-1 through the exact complement, not through 1 - p rounding
    assert cohen_radius(1 - 1e-12, 1.0, 1e-9) == pytest.approx(
        float(oracle.cohen(1 - 1e-12, 1.0, 1e-9)), abs=1e-9
    )


@pytest.mark.parametrize("e", [1e-8, 1e-6, 1e-3, 1.0, 10.0, 50.0])
def test_eps_over_sigma_from_1e8_to_50(e: float) -> None:
    sigma = 0.25
    noise = HybridNoise("uniform-other", 30000, 0.25, sigma)
    p = np.array([0.2, 0.6, 0.99954, 1 - 1e-12])
    for d in (1, 2, 8):
        wc = noise.worst_case(p, d, e * sigma)
        for x, w in zip(p, wc, strict=True):
            exact = oracle.worst_case("uniform-other", 30000, 0.25, sigma, float(x), d, e * sigma)
            assert w <= exact + SLACK and abs(w - exact) < 1e-9, (x, d, e, w, exact)


def test_confidence_bound_extremes() -> None:
    lo = clopper_pearson_lower(np.array([0, 1, 9999, 10000]), 10000, 1e-12)
    assert lo[0] == 0.0 and np.isfinite(lo).all() and (np.diff(lo) > 0).all()
    assert lo[3] <= float(mp.mpf(1e-12) ** (mp.mpf(1) / 10000))
