"""The regression gate's statistics against scipy, exact rational arithmetic and published tables."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from scipy.stats import binomtest

from hybridcert.regression.gate import Gate, as_fraction, exact_mcnemar, nice_radii, rate_interval


def _exact_two_sided(b: int, c: int) -> Fraction:
    """min(1, 2 P[X <= min(b, c)]) for X ~ Binomial(b + c, 1/2), in exact rationals."""
    n = b + c
    if n == 0:
        return Fraction(1)
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(Fraction(1), Fraction(2 * tail, 2**n))


@pytest.mark.parametrize("b", range(0, 26))
def test_mcnemar_matches_scipy_binomtest_and_exact_rationals(b: int) -> None:
    for c in range(0, 26):
        p = exact_mcnemar(b, c)
        if b + c:
            assert p == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-12, abs=1e-300)
        assert p == pytest.approx(float(_exact_two_sided(b, c)), rel=1e-12, abs=1e-300)
        assert exact_mcnemar(c, b) == p  # symmetric in lost / gained


def test_mcnemar_large_tables_match_scipy() -> None:
    # Agresti, Categorical Data Analysis (3rd ed.), Table 11.1: presidential approval, b = 150, c = 86
    for b, c in [(150, 86), (86, 150), (500, 430), (1000, 1000), (3, 400)]:
        assert exact_mcnemar(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-10)
    assert exact_mcnemar(150, 86) < 1e-4  # Agresti: z = -4.17, a clear change


def test_mcnemar_textbook_values() -> None:
    # Fagerland, Lydersen, Laake (2013), BMC Med Res Methodol 13:91, airway hyper-responsiveness before and
    # after stem cell transplantation: discordant pairs 1 and 7, exact conditional McNemar p = 0.070.
    assert round(exact_mcnemar(1, 7), 3) == 0.070
    # all five discordant pairs in one direction: 2 / 2^5
    assert exact_mcnemar(0, 5) == pytest.approx(1 / 16, rel=1e-14)
    assert exact_mcnemar(0, 0) == 1.0
    assert exact_mcnemar(4, 4) == 1.0


@pytest.mark.parametrize("bad", [(-1, 2), (1.5, 2), (True, 2), ("3", 1)])
def test_mcnemar_refuses_non_counts(bad: tuple[object, object]) -> None:
    with pytest.raises(ValueError, match="integer >= 0"):
        exact_mcnemar(*bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1, 7, 40, 250])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_rate_interval_is_clopper_pearson_rounded_outwards(n: int, level: float) -> None:
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        lo, hi = rate_interval(k, n, level)
        ref = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
        assert lo <= ref.low + 1e-12 and hi >= ref.high - 1e-12  # scipy's own rounding is ~1e-14
        assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


@pytest.mark.parametrize("n", [1, 7, 40])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_rate_interval_contains_the_exact_interval_at_the_ends(n: int, level: float) -> None:
    # k = 0 and k = n have closed forms: upper(0) = 1 - a^(1/n), lower(n) = a^(1/n), a = (1 - level) / 2
    import mpmath

    with mpmath.workdps(40):
        a = (1 - mpmath.mpf(str(level))) / 2
        assert rate_interval(0, n, level)[1] >= 1 - a ** (mpmath.mpf(1) / n)
        assert rate_interval(n, n, level)[0] <= a ** (mpmath.mpf(1) / n)


def test_rate_interval_edge_cases() -> None:
    assert rate_interval(0, 0) == (0.0, 1.0)
    lo, hi = rate_interval(10, 10, 0.95)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10), rel=1e-9)
    with pytest.raises(ValueError, match="confidence level"):
        rate_interval(1, 2, 1.0)


def test_max_drop_is_read_as_the_decimal_written() -> None:
    assert as_fraction("x", 0.03) == Fraction(3, 100)
    assert as_fraction("x", "0.03") == Fraction(3, 100)
    gate = Gate(max_drop=0.03)  # type: ignore[arg-type]
    # 1 - 0.97 is 0.030000000000000027 in floats; exactly 3/100 is not above a max drop of 0.03
    assert not gate.fails(Fraction(100, 100) - Fraction(97, 100), p_value=0.0)
    assert gate.fails(Fraction(31, 1000), p_value=1.0)
    gated = Gate(max_drop=Fraction(0), alpha=0.05)
    assert gated.fails(Fraction(1, 10), p_value=0.049)
    assert not gated.fails(Fraction(1, 10), p_value=0.05)
    assert not gated.fails(Fraction(0), p_value=0.0)  # no drop never fails
    for bad in ("nan", "inf", "x", True, 1.5, -0.1):
        with pytest.raises(ValueError, match="max_drop"):
            Gate(max_drop=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        Gate(alpha=0.0)


def test_nice_radii_are_round_steps_up_to_the_largest() -> None:
    assert nice_radii(1.14) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_radii(7.22) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert nice_radii(1.3) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    assert nice_radii(0.0) == [0.0]
    assert nice_radii(float("inf")) == [0.0]
    for largest in (0.013, 0.9, 3.3, 51.0):
        grid = nice_radii(largest)
        assert grid[0] == 0.0 and grid[-1] <= largest and 6 <= len(grid) <= 11
