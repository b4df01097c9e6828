"""Sequential certification (issue 7): the anytime-valid confidence sequence and the stopping rule.

Coverage is checked by simulation over whole sample paths (optional stopping), against an independent
high-precision evaluation of the mixture martingale, and against the failure of the naive alternative
(Clopper-Pearson re-evaluated after every chunk), which the same simulation must catch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.stats import binom

from hybridcert.theory import (
    HybridNoise,
    SequentialRule,
    certified_points,
    clopper_pearson_lower,
    cs_lower,
    cs_upper,
    decide,
    run_sequential,
)
from hybridcert.theory.sequential import DEFAULT_PRIOR, log_mixture_martingale
from tests.conftest import THOROUGH

Bound = Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.float64]]

NOISE = HybridNoise(kernel="uniform-other", vocab_size=10, beta=0.25, sigma=0.25)
POINTS = ((0, 0.25), (0, 0.5), (1, 0.25))


# ----------------------------------------------------------------------------------------------------------
# an independent reference: M_n(p0) in 30 digits by quadrature (mpmath), not through scipy's betainc


def _reference_m(k: int, n: int, p0: float, a: float = 0.1, b: float = 0.1) -> mp.mpf:
    """pi([0, p0]) + int_{p0}^1 R_n(q; p0) pi(dq), integrating over u = 1 - q = v^(1/b) so that the
    (1 - q)^(b - 1) singularity of the prior at q = 1 disappears (tanh-sinh misses mass there otherwise)."""
    with mp.workdps(30):
        return _reference_m_at_working_precision(k, n, p0, a, b)


def _reference_m_at_working_precision(k: int, n: int, p0: float, a: float, b: float) -> mp.mpf:
    A, B, K, N, P = mp.mpf(a), mp.mpf(b), mp.mpf(k), mp.mpf(n), mp.mpf(p0)
    u0 = 1 - P
    c = -K * mp.log(P) - (N - K) * mp.log(u0) - mp.log(mp.beta(A, B)) - mp.log(B)

    def f(v: mp.mpf) -> mp.mpf:
        u = v ** (1 / B)
        if u == 0:
            return mp.exp(c) if k == n else mp.mpf(0)
        return mp.exp((A - 1 + K) * mp.log1p(-u) + (N - K) * mp.log(u) + c)

    mode, sd = 1 - K / N, mp.sqrt(max(K * (N - K), N) / N**3)
    cuts = [mode + j * sd for j in (-40, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 40)]
    pts = sorted({mp.mpf(0), u0**B, *[x**B for x in cuts if 0 < x < u0]})
    return mp.betainc(A, B, 0, P, regularized=True) + mp.quad(f, pts)


REFERENCE_CASES = [(10**6, 10**6), (999_000, 10**6), (1, 10**6), (3, 3), (10_000, 10_000), (50, 10_000),
                   (500_000, 10**6), (7, 20), (1, 1)]


@pytest.mark.slow
@pytest.mark.parametrize(("k", "n"), REFERENCE_CASES)
def test_lower_bound_is_in_the_rejected_set_and_tight(k: int, n: int) -> None:
    """Soundness: M_n(L) >= 1/alpha exactly (so L <= the exact L_n, module docstring), and tightness:
    a point 1e-6 (relative, on the near side) above L is no longer rejected."""
    alpha = 0.001
    low = float(cs_lower(k, n, alpha))
    assert 0.0 < low < k / n or (k == n and 0.0 < low < 1.0)
    assert _reference_m(k, n, low) >= 1 / alpha
    above = low + (1 - low) * 1e-6 if low > 0.5 else low * (1 + 1e-6)
    assert _reference_m(k, n, above) < 1 / alpha


def test_log_martingale_matches_reference() -> None:
    for k, n, p0 in [(3, 3, 0.2), (900, 1000, 0.85), (10**6, 10**6, 0.99999), (2, 500, 1e-4)]:
        ours = float(log_mixture_martingale(k, n, p0))
        assert ours == pytest.approx(float(mp.log(_reference_m(k, n, p0))), rel=1e-9, abs=1e-9)


# ----------------------------------------------------------------------------------------------------------
# shape of the martingale and of the bounds


SEARCH_CASES = {
    "n": st.integers(1, 10**7),
    "frac": st.floats(0.0, 1.0),
    "alpha": st.sampled_from([1e-9, 1e-3, 0.05, 0.5]),
    "prior": st.sampled_from([(0.1, 0.1), (1.0, 1.0), (0.5, 3.0)]),
}


def _search_returns_a_rejected_point_next_to_the_edge(
    n: int, frac: float, alpha: float, prior: tuple[float, float]
) -> None:
    """For any counts: the reported bound is rejected (log M_n >= log(1/alpha), so it is <= L_n), a point
    1e-7 (relative) nearer k/n is not, and a smaller alpha gives a smaller bound."""
    k = round(frac * n)
    low = float(cs_lower(k, n, alpha, prior=prior))
    assert 0.0 <= low <= k / n
    if k == 0:
        assert low == 0.0
        return
    assert low > 0.0
    assert float(log_mixture_martingale(k, n, low, prior=prior)) >= -math.log(alpha)
    nearer = low + (1 - low) * 1e-7 if low > 0.5 else low * (1 + 1e-7)
    if nearer < 1.0:
        assert float(log_mixture_martingale(k, n, nearer, prior=prior)) < -math.log(alpha)
    assert float(cs_lower(k, n, alpha / 10, prior=prior)) <= low


test_search_returns_a_rejected_point_next_to_the_edge = given(**SEARCH_CASES)(
    _search_returns_a_rejected_point_next_to_the_edge
)
test_search_returns_a_rejected_point_next_to_the_edge_thorough = pytest.mark.slow(
    THOROUGH(given(**SEARCH_CASES)(_search_returns_a_rejected_point_next_to_the_edge))
)




@pytest.mark.parametrize(("k", "n"), [(1, 1), (5, 40), (37, 40), (40, 40), (9_990, 10_000), (3, 10**6)])
def test_martingale_decreases_below_k_over_n_and_stays_below_one_above(k: int, n: int) -> None:
    """The two facts the module docstring proves and the bisection relies on."""
    mle = k / n
    below = np.linspace(mle * 1e-6, mle * (1 - 1e-6), 400) if k < n else 1 - np.logspace(0, -12, 400) * 0.999
    below = below[(below > 0) & (below < 1)]
    m = log_mixture_martingale(k, n, below)
    assert (np.diff(m) <= 1e-9 * np.maximum(1.0, np.abs(m[1:]))).all()
    if k < n:
        above = np.linspace(mle, 1 - 1e-9, 200)
        assert (log_mixture_martingale(k, n, above) <= 1e-9).all()


def test_lower_is_nondecreasing_in_successes_and_below_the_mle() -> None:
    n = 300
    k = np.arange(n + 1)
    low = cs_lower(k, n, 0.05)
    assert low[0] == 0.0
    assert (np.diff(low) >= 0).all()
    assert (low[1:-1] < k[1:-1] / n).all() and 0.0 < low[-1] < 1.0
    assert (low <= k / n).all()


def test_upper_is_the_mirror_of_lower() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(1, 5000, 200)
    k = rng.binomial(n, rng.uniform(size=n.size))
    for prior in [(0.1, 0.1), (0.5, 2.0)]:
        up = cs_upper(k, n, 0.01, prior=prior)
        mirror = 1.0 - cs_lower(n - k, n, 0.01, prior=prior[::-1])
        assert (up >= mirror).all()
        assert np.allclose(up, mirror, rtol=0, atol=1e-15)
        assert (up >= k / n).all()
        assert (cs_lower(k, n, 0.01, prior=prior) <= k / n).all()
    assert float(cs_upper(0, 0, 0.01)) == 1.0
    assert float(cs_lower(0, 0, 0.01)) == 0.0


@pytest.mark.parametrize("n", [1_000, 10_000, 1_000_000])
def test_all_successes_near_one_at_large_n(n: int) -> None:
    """k = n, p near 1: finite, below 1, increasing in n, and its width 1 - L within a factor 1.5 of fixed-n
    Clopper-Pearson's (the price of time-uniformity is about b log(n) / log(1/alpha), module docstring)."""
    alpha = 0.001
    low = float(cs_lower(n, n, alpha))
    cp = float(clopper_pearson_lower(n, n, alpha))
    assert 0.0 < low < cp < 1.0
    assert (1 - low) < 1.5 * (1 - cp)
    assert float(cs_lower(n - 1, n, alpha)) < low < float(cs_lower(2 * n, 2 * n, alpha))


def test_small_p_resolved_in_log_space() -> None:
    """k = 1 of 10^6 draws: the bound is tiny but positive and resolved to many digits (logit bisection)."""
    low = float(cs_lower(1, 10**6, 0.001))
    assert 1e-14 < low < 1e-9
    assert float(cs_upper(1, 10**6, 0.001)) < 1e-4


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: cs_lower(5, 4, 0.01), "successes"),
        (lambda: cs_lower(-1, 4, 0.01), "successes"),
        (lambda: cs_lower(1.5, 4, 0.01), "successes"),
        (lambda: cs_lower(1, float("nan"), 0.01), "trials"),
        (lambda: cs_lower(1, -2, 0.01), "trials"),
        (lambda: cs_lower(1, 4, 1.0), "alpha"),
        (lambda: cs_upper(1, 4, 0.0), "alpha"),
        (lambda: cs_lower(1, 4, 0.01, prior=(0.0, 1.0)), "prior a"),
        (lambda: cs_lower(1, 4, 0.01, prior=(1.0,)), "prior"),
        (lambda: log_mixture_martingale(1, 4, 1.0), "p0"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call()


# ----------------------------------------------------------------------------------------------------------
# coverage by simulation: the miss event is "the bound exceeded the true p at SOME look"


def _crossing_counts(bound: Bound, looks: NDArray[np.int64], p: float) -> NDArray[np.int64]:
    """kappa(n) = the smallest k with bound(k, n) > p at each look n (n + 1 when none), by bisection over k.
    Valid because the bounds are nondecreasing in k: for the CS each R_n(q; p0) with q > p0 grows with k, so
    M_n(p0) does (checked above at n = 300); for Clopper-Pearson the Beta quantile grows with k."""
    lo = np.zeros(looks.shape, dtype=np.int64)  # bound(0, n) = 0 <= p
    hi = looks + 1
    while (hi - lo > 1).any():
        mid = (lo + hi) // 2
        over = bound(np.minimum(mid, looks), looks) > p
        over &= mid <= looks
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    return hi


def _miss_rate(bound: Bound, p: float, runs: int, chunk: int, n_looks: int, seed: int) -> tuple[int, int]:
    """Misses over ``runs`` Bernoulli(p) streams, looking after every ``chunk`` draws, ``n_looks`` times."""
    looks = chunk * np.arange(1, n_looks + 1, dtype=np.int64)
    kappa = _crossing_counts(bound, looks, p)
    rng = np.random.default_rng(seed)
    k = np.cumsum(rng.binomial(chunk, p, size=(runs, n_looks)), axis=1)
    return int((k >= kappa).any(axis=1).sum()), runs


ALPHA_SIM = 0.05
RUNS = 6_000


def _too_many(misses: int, runs: int, alpha: float) -> int:
    """A miss count above this is evidence (p-value 1e-6) that the miss rate exceeds alpha."""
    return int(binom.isf(1e-6, runs, alpha))


def _cs(alpha: float) -> Bound:
    return lambda k, n: cs_lower(k, n, alpha)


def _cp(alpha: float) -> Bound:
    return lambda k, n: clopper_pearson_lower(k, n, alpha)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("p", "chunk", "n_looks"),
    [
        (0.5, 1, 1_000),  # a look after every single draw
        (0.5, 256, 40),  # the runner's chunking up to n_max = 10^4
        (0.9, 64, 150),
        (0.99, 256, 200),
        (0.999, 2_048, 100),  # p near 1: a long horizon, so that exceeding p is possible at all
        (0.02, 128, 100),  # small p
    ],
)
def test_confidence_sequence_misses_at_most_alpha_over_the_whole_path(p: float, chunk: int, n_looks: int) -> None:
    misses, runs = _miss_rate(_cs(ALPHA_SIM), p, RUNS, chunk, n_looks, seed=int(p * 1e4) + chunk)
    assert misses <= _too_many(misses, runs, ALPHA_SIM), (misses, runs)


@pytest.mark.slow
@pytest.mark.parametrize(("p", "chunk", "n_looks"), [(0.5, 256, 40), (0.9, 64, 150)])
def test_naive_clopper_pearson_with_optional_stopping_exceeds_alpha(p: float, chunk: int, n_looks: int) -> None:
    """The same simulation catches a bound that is not anytime-valid: fixed-n Clopper-Pearson re-evaluated
    after every chunk exceeds p on far more than alpha of the paths (why the CS is needed), while at one
    fixed n it stays within alpha (the simulation itself is sound)."""
    misses, runs = _miss_rate(_cp(ALPHA_SIM), p, RUNS, chunk, n_looks, seed=7)
    assert misses > _too_many(misses, runs, ALPHA_SIM), (misses, runs)
    assert misses > 2 * ALPHA_SIM * runs
    fixed, _ = _miss_rate(_cp(ALPHA_SIM), p, RUNS, chunk * n_looks, 1, seed=8)
    assert fixed <= _too_many(fixed, runs, ALPHA_SIM)
    cs_misses, _ = _miss_rate(_cs(ALPHA_SIM), p, RUNS, chunk, n_looks, seed=7)
    assert cs_misses < misses / 4


@pytest.mark.slow
def test_stopping_rule_stopping_when_it_looks_good_keeps_the_miss_rate() -> None:
    """Adversarial optional stopping through the real loop: inputs whose true p sits just below what the
    requested point needs, each stopped the moment its bound certifies. Certifying one of them means
    p_lower > p, a miss; the fraction must stay within alpha."""
    tau, alpha, p = 0.6, ALPHA_SIM, 0.585
    rule = SequentialRule(NOISE, points=((0, 0.0),), threshold=tau, alpha=alpha, n_max=4_096, chunk=256)
    inputs = 400
    rng = np.random.default_rng(11)
    res = run_sequential(lambda idx, m: rng.binomial(m, p, size=idx.size), inputs, rule)
    misses = int((res.p_lower > p).sum())
    assert int(res.certified.any(axis=1).sum()) <= misses  # certified at (0, 0) needs p_lower >= tau > p
    assert misses <= _too_many(misses, inputs, alpha)
    assert set(np.unique(res.status)) <= {"certified", "refuted", "cap"}


# ----------------------------------------------------------------------------------------------------------
# the stopping rule


def _rule(**kw: object) -> SequentialRule:
    args: dict[str, object] = {"noise": NOISE, "points": POINTS, "threshold": 0.5, "alpha": 0.001}
    args.update(kw)
    return SequentialRule(**args)  # type: ignore[arg-type]


def _certified_by_radius(p: NDArray[np.float64], rule: SequentialRule) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Cross-check through another theory entry point: certified at (d, eps) iff min_{d' <= d} r*(d') >= eps.
    Returns the verdict and a mask of the cases far enough from the boundary to compare."""
    cols, clear = [], []
    for d, eps in rule.points:
        r = np.min([rule.noise.certified_radius(p, budget=dd, tau=rule.threshold) for dd in range(d + 1)], axis=0)
        cols.append(r >= eps)
        clear.append(np.abs(r - eps) > 1e-6)
    return np.stack(cols, axis=-1), np.stack(clear, axis=-1)


def test_certified_points_agree_with_certified_radius() -> None:
    rule = _rule()
    p = np.concatenate([np.linspace(0.5, 0.999, 300), 1 - np.logspace(-3, -6, 50)])
    ours = certified_points(p, rule)
    ref, clear = _certified_by_radius(p, rule)
    assert ours.shape == (p.size, len(POINTS))
    assert (ours[clear] == ref[clear]).all()
    assert ours.any() and not ours.all()


def test_decide_statuses_and_their_invariants() -> None:
    rule = _rule(n_max=2_000)
    rng = np.random.default_rng(5)
    n = rng.choice([0, 256, 512, 1_024, 2_000, 2_048], 600)
    p = rng.choice([1.0, 0.999, 0.995, 0.99, 0.97, 0.9, 0.6], 600)
    k = rng.binomial(n, p)
    dec = decide(k, n, rule)
    assert (dec.p_lower == cs_lower(k, n, rule.alpha)).all()
    assert (dec.p_upper == cs_upper(k, n, rule.alpha)).all()
    assert not (dec.certified & dec.refuted).any()
    decided = (dec.certified | dec.refuted).all(axis=1)
    st = dec.status
    assert ((st == "certified") == dec.certified.all(axis=1)).all()
    assert (decided[st == "refuted"]).all() and dec.refuted[st == "refuted"].any(axis=1).all()
    assert (n[st == "cap"] >= rule.n_max).all() and not decided[st == "cap"].any()
    assert (n[st == "continue"] < rule.n_max).all() and not decided[st == "continue"].any()
    assert (dec.stop == (st != "continue")).all()
    assert (st[n == 0] == "continue").all()
    assert set(np.unique(st)) == {"certified", "refuted", "cap", "continue"}
    # certified by the lower bound and refuted by the upper bound, checked through certified_radius
    ref_lo, clear_lo = _certified_by_radius(dec.p_lower, rule)
    assert (dec.certified[clear_lo] == ref_lo[clear_lo]).all()
    ref_up, clear_up = _certified_by_radius(dec.p_upper, rule)
    assert (dec.refuted[clear_up] == ~ref_up[clear_up]).all()


def test_decide_on_the_flag_and_no_flag_thresholds() -> None:
    """The no-flag side certifies 1 - p against the float just above 1 - tau (docs/results-format.md)."""
    tau = 0.5
    flag = _rule(threshold=tau)
    no_flag = _rule(threshold=float(np.nextafter(1 - tau, 2)))
    dec_f, dec_n = decide(10_000, 10_000, flag), decide(10_000, 10_000, no_flag)
    assert dec_f.status == "certified" and dec_n.status == "certified"
    assert float(decide(0, 10_000, flag).p_upper) < 0.01 and decide(0, 10_000, flag).status == "refuted"


def test_run_sequential_deterministic_draws() -> None:
    rule = _rule(n_max=3_000, chunk=256)
    frac = np.array([1.0, 0.0, 0.9, 0.84, 0.995])

    def draw(idx: NDArray[np.intp], m: int) -> NDArray[np.int64]:
        return np.floor(frac[idx] * m).astype(np.int64)

    res = run_sequential(draw, frac.size, rule)
    assert (res.trials <= rule.n_max).all()
    assert res.status[0] == "certified" and res.trials[0] < rule.n_max
    assert res.status[1] == "refuted" and res.trials[1] == rule.chunk
    assert (res.p_lower == cs_lower(res.successes, res.trials, rule.alpha)).all()
    assert (res.certified == certified_points(res.p_lower, rule)).all()
    final = decide(res.successes, res.trials, rule)
    assert (final.status == res.status).all()
    for i in range(frac.size):  # an input ran until decided, and not one chunk longer
        if res.trials[i] > rule.chunk:
            before = decide(res.successes[i] - draw(np.array([i]), rule.chunk)[0], res.trials[i] - rule.chunk, rule)
            assert before.status == "continue" or res.trials[i] == rule.n_max
    capped = res.status == "cap"
    assert (res.trials[capped] == rule.n_max).all()  # last chunk cut at n_max (3000 = 11 * 256 + 184)
    assert res.looks == math.ceil(res.trials.max() / rule.chunk)


@pytest.mark.parametrize(
    "bad",
    [
        lambda idx, m: np.full(idx.size + 1, 0),
        lambda idx, m: np.full(idx.size, m + 1),
        lambda idx, m: np.full(idx.size, -1),
        lambda idx, m: np.full(idx.size, 0.5),
    ],
)
def test_run_sequential_rejects_bad_draws(bad: Callable[[NDArray[np.intp], int], object]) -> None:
    with pytest.raises(ValueError, match="draw"):
        run_sequential(bad, 3, _rule())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"points": ()}, "points"),
        ({"points": ((1,),)}, "points"),
        ({"points": ((-1, 0.1),)}, "budget"),
        ({"points": ((1, -0.1),)}, "radius"),
        ({"points": ((1, float("inf")),)}, "radius"),
        ({"threshold": 1.0}, "threshold"),
        ({"alpha": 0.0}, "alpha"),
        ({"n_max": 0}, "n_max"),
        ({"chunk": 2.5}, "chunk"),
        ({"prior": (1.0, -1.0)}, "prior b"),
        ({"noise": "uniform-other"}, "noise"),
    ],
)
def test_rule_rejects_bad_fields(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _rule(**kw)


def test_rule_describes_the_method() -> None:
    desc = _rule().describe()
    assert desc["confidence_bound"] == "beta-mixture-cs"
    assert desc["prior"] == {"a": DEFAULT_PRIOR[0], "b": DEFAULT_PRIOR[1]}
    assert desc["points"][2] == {"budget": 1, "radius": 0.25}
