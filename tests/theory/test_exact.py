"""Exactness and soundness of the float64 engine against the independent mpmath oracle (docs/theory.md §4, §6, §8)."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from hybridcert.theory import HybridNoise, cohen_radius, knapsack_worst_case
from tests.theory import mp_oracle as oracle

TOL = 1e-9  # required absolute agreement
SLACK = mp.mpf("1e-25")  # oracle accuracy: "never above the exact value" is checked up to this


def _random_case(rng: np.random.Generator) -> dict[str, object]:
    kernel = str(rng.choice(["uniform-other", "uniform-all", "absorb"]))
    vocab = int(np.exp(rng.uniform(np.log(2), np.log(50000))))
    if kernel == "uniform-other" and rng.random() < 0.1:
        vocab = 2
    beta = float(rng.uniform(0.01, 0.99))
    d = int(rng.choice([0, 1, 2, 3, 4, 6, 8, 16, 32, 64], p=[0.1, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05]))
    tau = float(np.exp(rng.uniform(np.log(1e-6), np.log(0.5))))
    # p_a between tau and 1 - 1e-6, log-uniform in the gap to 1 so that both ends are exercised
    gap = float(np.exp(rng.uniform(np.log(1e-6), np.log(1 - tau))))
    p_a = 1.0 - gap
    sigma = float(rng.uniform(0.05, 2.0))
    return {"kernel": kernel, "vocab": vocab, "beta": beta, "d": d, "tau": tau, "p_a": p_a, "sigma": sigma}


N_CASES = 160  # slow: the whole grid runs in CI's second step


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(N_CASES))
def test_radius_and_worst_case_match_oracle(seed: int) -> None:
    """Over a broad random grid: radius and worst case agree with the 40-digit oracle to 1e-9 and never
    exceed it."""
    c = _random_case(np.random.default_rng(1000 + seed))
    noise = HybridNoise(c["kernel"], c["vocab"], c["beta"], c["sigma"])  # type: ignore[arg-type]
    r = noise.certified_radius(c["p_a"], budget=c["d"], tau=c["tau"])
    exact = oracle.radius(c["kernel"], c["vocab"], c["beta"], c["sigma"], c["p_a"], c["d"], c["tau"], r)
    assert r <= exact + SLACK, (c, r, exact)
    assert abs(r - exact) <= TOL, (c, r, exact)

    eps = float(np.random.default_rng(seed).uniform(0.0, 2.0)) * c["sigma"]  # type: ignore[operator]
    wc = noise.worst_case(c["p_a"], budget=c["d"], radius=eps)
    exact_wc = oracle.worst_case(c["kernel"], c["vocab"], c["beta"], c["sigma"], c["p_a"], c["d"], eps)
    assert 0.0 <= wc <= exact_wc + SLACK, (c, eps, wc, exact_wc)
    assert abs(wc - exact_wc) <= TOL, (c, eps, wc, exact_wc)


def test_theory_section_8_numbers() -> None:
    """docs/theory.md §8: Cohen's radius and the paper's setting, to the printed digits, rounded down."""
    assert cohen_radius(0.9, 0.5) == pytest.approx(0.6407757827723, abs=1e-12)
    assert cohen_radius(0.9, 0.5) <= 0.6407757827723002967
    noise = HybridNoise("uniform-other", 30000, 0.25, 1.0)
    expected = [7.2246896, 6.4697929, 5.6251955]
    for d, value in enumerate(expected):
        assert noise.certified_radius(0.99954, budget=d, tau=4.6e-5) == pytest.approx(value, abs=6e-8)


def test_d0_is_cohen_for_every_kernel() -> None:
    """d = 0 reduces to Cohen et al. for every kernel (docs/theory.md §4)."""
    p = np.linspace(0.3, 1 - 1e-9, 40)
    for kernel in ("uniform-other", "uniform-all", "absorb"):
        noise = HybridNoise(kernel, 100, 0.3, 0.7)  # type: ignore[arg-type]
        np.testing.assert_allclose(noise.certified_radius(p, 0, tau=0.3), cohen_radius(p, 0.7, tau=0.3), atol=1e-9)
        eps = 0.4
        z = np.array([float(mp.ncdf(mp.sqrt(2) * mp.erfinv(2 * mp.mpf(x) - 1) - eps / 0.7)) for x in p])
        np.testing.assert_allclose(noise.worst_case(p, 0, eps), z, atol=1e-12)


@pytest.mark.parametrize("kernel", ["uniform-other", "uniform-all", "absorb"])
@pytest.mark.parametrize("d", [1, 3, 8])
def test_small_eps_is_the_knapsack(kernel: str, d: int) -> None:
    """eps -> 0 gives the discrete fractional knapsack (docs/theory.md §4), and eps = 0 is exactly it."""
    noise = HybridNoise(kernel, 50, 0.4, 1.0)  # type: ignore[arg-type]
    p = np.linspace(0.05, 0.999999, 25)
    knap = knapsack_worst_case(p, noise.token_kernel, d)
    np.testing.assert_array_equal(noise.worst_case(p, d, 0.0), knap)
    for eps in (1e-6, 1e-8):
        np.testing.assert_allclose(noise.worst_case(p, d, eps), knap, atol=50 * eps)
    for x, k in zip(p[::6], knap[::6], strict=True):
        exact = oracle.knapsack(oracle.atoms(kernel, 50, 0.4, d), mp.mpf(x))
        assert k <= exact + SLACK
        assert abs(k - exact) < 1e-10


def test_absorb_closed_form() -> None:
    """absorb: r*(d) = sigma [Phi^-1(1 - (1 - p)/beta^d) - Phi^-1(tau/beta^d)] (docs/theory.md §4)."""
    beta, sigma, tau = 0.8, 0.5, 0.05
    noise = HybridNoise("absorb", 1000, beta, sigma)
    for d in (1, 2, 5):
        for p in (0.9, 0.99, 0.9999):
            bd = mp.mpf(beta) ** d
            lo, hi = 1 - (1 - mp.mpf(p)) / bd, mp.mpf(tau) / bd
            if not (0 < lo < 1 and 0 < hi < 1) or lo <= hi:
                continue
            exact = sigma * (mp.sqrt(2) * mp.erfinv(2 * lo - 1) - mp.sqrt(2) * mp.erfinv(2 * hi - 1))
            r = noise.certified_radius(p, d, tau)
            assert r <= exact and abs(r - exact) < 1e-9, (d, p, r, exact)


def test_uniform_all_is_uniform_other_with_rescaled_beta() -> None:
    """uniform-all with beta equals uniform-other with beta (V - 1)/V (docs/theory.md §1)."""
    v, beta = 37, 0.6
    a = HybridNoise("uniform-all", v, beta, 1.0)
    b = HybridNoise("uniform-other", v, beta * (v - 1) / v, 1.0)
    p = np.linspace(0.6, 0.99999, 30)
    for d in (1, 4):
        np.testing.assert_allclose(a.certified_radius(p, d, 0.5), b.certified_radius(p, d, 0.5), atol=1e-9)


def test_zero_clean_mass_atoms_are_infinite_ratio() -> None:
    """beta = 1 (uniform-other): a kept clean token never appears, so seeing it proves an attack (ratio +inf);
    mapping it to ratio 0 would overstate the certificate (docs/theory.md §3, §7)."""
    noise = HybridNoise("uniform-other", 10, 1.0, 1.0)
    atoms = noise.token_kernel.atoms(1)
    # clean law at a differing position: a w.p. 0, b w.p. 1/9, c w.p. 8/9; attacked: a w.p. 1/9, b 0, c 8/9
    assert atoms.attacked_infinite_ratio == pytest.approx(1 / 9, rel=1e-14)
    assert atoms.clean_zero_ratio == pytest.approx(1 / 9, rel=1e-14)
    for p in (0.5, 0.9, 0.999):
        exact = oracle.worst_case("uniform-other", 10, 1.0, 1.0, p, 1, 0.0)
        wc = noise.worst_case(p, 1, 0.0)
        assert wc <= exact + SLACK and abs(wc - exact) < 1e-10
        # the attacked law puts 1/9 on an outcome the clean law never produces: p_adv <= 8/9
        assert noise.worst_case(p, 1, 0.3) <= 8 / 9


def test_frontier_is_staircase_and_matches_single_queries() -> None:
    noise = HybridNoise("uniform-other", 30000, 0.25, 1.0)
    p = np.array([0.6, 0.9, 0.99954, 0.999999])
    radii, mask = noise.frontier_radii(p, tau=4.6e-5)
    assert np.all(np.diff(radii, axis=1) <= 0)
    for i, x in enumerate(p):
        listed = noise.frontier(float(x), tau=4.6e-5)
        assert [d for d, _ in listed] == list(np.flatnonzero(mask[i]))
        for d, r in listed:
            assert r == min(noise.certified_radius(float(x), dd, tau=4.6e-5) for dd in range(d + 1))
        last = listed[-1][0]
        assert noise.worst_case(float(x), last + 1, 0.0) < 4.6e-5
