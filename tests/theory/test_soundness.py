"""Soundness (docs/theory.md §6): every reported radius and budget is on the certified side of the exact value.

Each reported value is re-checked with the 40-digit oracle: the exact worst case AT the reported radius is
>= tau (so the radius is certified), and just beyond it (1e-9 further) is < tau (so it is not needlessly
small). Thousands of cases, vectorised on the float side.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from hybridcert.theory import HybridNoise
from tests.theory import mp_oracle as oracle

CONFIGS = [
    ("uniform-other", 30000, 0.25, 1.0, 4.6e-5),
    ("uniform-other", 5, 0.7, 0.3, 0.5),
    ("uniform-other", 2, 0.2, 0.5, 0.1),
    ("uniform-all", 100, 0.5, 0.25, 0.5),
    ("uniform-all", 7, 0.9, 1.5, 1e-3),
    ("absorb", 50000, 0.6, 0.5, 0.5),
    ("absorb", 10, 0.95, 2.0, 1e-6),
    ("uniform-other", 50000, 0.01, 0.05, 0.3),
]
PER_CONFIG = 300  # x 8 configs x budgets 0..4 -> 12000 radii (slow: CI's second step)


def _exact_p_adv(a: oracle.MpAtoms, p: float, e: mp.mpf) -> mp.mpf:
    if e == 0:
        return oracle.knapsack(a, mp.mpf(p))
    return oracle._g(a, oracle._level(a, mp.mpf(p), e), e)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[f"{c[0]}-V{c[1]}-b{c[2]}" for c in CONFIGS])
def test_reported_radii_are_certified_and_tight(config: tuple[str, int, float, float, float]) -> None:
    kernel, vocab, beta, sigma, tau = config
    noise = HybridNoise(kernel, vocab, beta, sigma)  # type: ignore[arg-type]
    rng = np.random.default_rng(CONFIGS.index(config))
    p = 1.0 - np.exp(rng.uniform(np.log(1e-9), np.log(1.0 - tau), PER_CONFIG))
    checked = 0
    for d in range(5):
        r = noise.certified_radius(p, budget=d, tau=tau)
        a = oracle.atoms(kernel, vocab, beta, d)
        for x, rad in zip(p, r, strict=True):
            if rad == 0.0:
                # not certified: then even the exact worst case at eps = 0 must be (essentially) below tau
                assert oracle.knapsack(a, mp.mpf(x)) < tau * (1 + 1e-9) + 1e-15, (d, x)
                continue
            e = mp.mpf(rad) / sigma
            assert _exact_p_adv(a, x, e) >= tau, f"radius {rad} at d={d}, p={x} is not certified"
            beyond = e + mp.mpf("1e-9") / sigma
            assert _exact_p_adv(a, x, beyond) < tau, f"radius {rad} at d={d}, p={x} is more than 1e-9 short"
            checked += 1
    assert checked > PER_CONFIG  # the grid really exercised certified cases


@pytest.mark.slow
def test_reported_budgets_are_certified_and_tight() -> None:
    rng = np.random.default_rng(7)
    n = 600
    for kernel, vocab, beta, sigma, tau in CONFIGS[:6]:
        noise = HybridNoise(kernel, vocab, beta, sigma)  # type: ignore[arg-type]
        p = 1.0 - np.exp(rng.uniform(np.log(1e-9), np.log(1.0 - tau), n))
        eps = rng.uniform(0.0, 1.5, n) * sigma
        eps[::5] = 0.0
        budgets = noise.certified_budget(p, eps, tau=tau, max_budget=12)
        for x, ep, b in zip(p[::10], eps[::10], budgets[::10], strict=True):
            e = mp.mpf(ep) / sigma
            if b >= 0:
                assert _exact_p_adv(oracle.atoms(kernel, vocab, beta, int(b)), x, e) >= tau
            if b < 12:
                above = _exact_p_adv(oracle.atoms(kernel, vocab, beta, int(b) + 1), x, e)
                assert above < tau * (1 + 1e-9) + 1e-15, (kernel, x, ep, b)
