"""Check 3: properties of the certificate (docs/theory.md §4), run with Hypothesis at run time and under pytest.

Each property is a plain sentence tested on random configurations of the implementation under test:

* d = 0 equals Cohen (Phi(Phi^-1(p) - e), radius sigma (Phi^-1(p) - Phi^-1(tau))) for every kernel;
* eps = 0 (and eps -> 0) equals the exact fractional knapsack of the docs/theory.md §3 atoms;
* the worst case is monotone: up in p_a, down in eps, down in d;
* results lie in range: probabilities in [0, 1], radii >= 0, budgets in [-1, max_budget], frontiers
  non-increasing;
* the radius and the budget are boundaries: certified at the reported value, not certified just above;
* Neyman-Pearson optimality: no region of the same clean mass, drawn from random staircases and
  half-spaces in (log-ratio, U), has a smaller attacked mass than the reported worst case;
* a Monte-Carlo draw of raw token sequences and U from both laws agrees with F and G (the issue's V) at a
  random level, within Clopper-Pearson intervals at level 1e-6.

References (Cohen, knapsack, atoms, regions) come from mpmath and ``reference``, never from the theory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st
from mpmath import mp
from scipy.special import ndtr
from scipy.stats import beta as beta_dist

from hybridcert.verifier.impl import THEORY, Implementation
from hybridcert.verifier.reference import (
    ATTACKED_TOKEN,
    CLEAN_TOKEN,
    MASK,
    exact_atoms,
    knapsack,
    noisy_alphabet,
    token_density,
)
from hybridcert.verifier.result import CheckResult

TOL = 1e-9  # the theory's stated accuracy
KERNELS = ("uniform-other", "uniform-all", "absorb")


@dataclass(frozen=True)
class Config:
    kernel: str
    vocab_size: int
    beta: float
    sigma: float


@st.composite
def configs(draw: Any, max_vocab: int = 60) -> Config:
    kernel = draw(st.sampled_from(KERNELS))
    v = draw(st.integers(2, max_vocab))
    b = draw(st.floats(0.05, 0.95))
    # uniform-other with beta = (V-1)/V hides every token change: the certificate is then trivial in d
    assume(not (kernel == "uniform-other" and abs(b - (v - 1) / v) < 0.02))
    s = draw(st.floats(0.1, 3.0))
    return Config(kernel, v, b, s)


probabilities = st.floats(0.01, 0.99999)
thresholds = st.one_of(st.just(0.5), st.floats(1e-5, 0.9))
budgets = st.integers(0, 4)


def _noise(impl: Implementation, c: Config) -> Any:
    return impl.make_noise(c.kernel, c.vocab_size, c.beta, c.sigma)


def _probit(x: Any) -> Any:
    return mp.sqrt(2) * mp.erfinv(2 * mp.mpf(x) - 1)


# ------------------------------------------------------------------------------------------------------------
# The properties: each returns the size of the largest error it saw (or None) and raises AssertionError
# ------------------------------------------------------------------------------------------------------------


def prop_d0_is_cohen(impl: Implementation, c: Config, p: float, eps: float, tau: float) -> float:
    noise = _noise(impl, c)
    with mp.workdps(40):
        exact_w = mp.ncdf(_probit(p) - mp.mpf(eps) / mp.mpf(c.sigma))
        w = float(noise.worst_case(p, budget=0, radius=eps))
        assert w <= exact_w, f"worst_case(d=0) = {w!r} above Cohen's {mp.nstr(exact_w, 17)}"
        assert exact_w - w <= TOL, f"worst_case(d=0) = {w!r}, Cohen's {mp.nstr(exact_w, 17)}"
        exact_r = max(mp.mpf(0), mp.mpf(c.sigma) * (_probit(p) - _probit(tau)))
        for name, r in (("certified_radius(d=0)", float(noise.certified_radius(p, budget=0, tau=tau))),
                        ("cohen_radius", float(impl.cohen_radius(p, c.sigma, tau)))):
            assert r <= exact_r, f"{name} = {r!r} above Cohen's {mp.nstr(exact_r, 17)}"
            assert exact_r - r <= TOL * max(1, exact_r), f"{name} = {r!r}, Cohen's {mp.nstr(exact_r, 17)}"
        return float(max(exact_w - w, 0))


def prop_eps0_is_knapsack(impl: Implementation, c: Config, p: float, d: int) -> float:
    noise = _noise(impl, c)
    atoms = exact_atoms(c.kernel, c.vocab_size, c.beta, d)
    exact = knapsack(atoms, Fraction(p))
    w0 = float(noise.worst_case(p, budget=d, radius=0.0))
    assert Fraction(w0) <= exact, f"worst_case(eps=0) = {w0!r} above the exact knapsack {float(exact)!r}"
    assert float(exact - Fraction(w0)) <= TOL, f"worst_case(eps=0) = {w0!r}, knapsack {float(exact)!r}"
    w_small = float(noise.worst_case(p, budget=d, radius=1e-9 * c.sigma))
    assert Fraction(w_small) <= exact, f"worst_case(eps -> 0) = {w_small!r} above the knapsack {float(exact)!r}"
    assert float(exact - Fraction(w_small)) <= 1e-6, f"worst_case(eps=1e-9 sigma) = {w_small!r} does not tend " \
        f"to the knapsack {float(exact)!r}"
    return float(exact - Fraction(w0))


def prop_monotone(impl: Implementation, c: Config, p1: float, p2: float, e1: float, e2: float, d: int) -> None:
    noise = _noise(impl, c)
    p_lo, p_hi = sorted((p1, p2))
    e_lo, e_hi = sorted((e1, e2))
    a = float(noise.worst_case(p_lo, budget=d, radius=e_lo))
    assert a <= float(noise.worst_case(p_hi, budget=d, radius=e_lo)) + TOL, "not non-decreasing in p_a"
    assert float(noise.worst_case(p_lo, budget=d, radius=e_hi)) <= a + TOL, "not non-increasing in eps"
    assert float(noise.worst_case(p_lo, budget=d + 1, radius=e_lo)) <= a + TOL, "not non-increasing in d"


def prop_in_range(impl: Implementation, c: Config, p: float, eps: float, d: int, tau: float) -> None:
    noise = _noise(impl, c)
    w = float(noise.worst_case(p, budget=d, radius=eps))
    assert 0.0 <= w <= 1.0, f"worst case {w!r} outside [0, 1]"
    r = float(noise.certified_radius(p, budget=d, tau=tau))
    assert r >= 0.0 and not math.isnan(r), f"radius {r!r} negative or NaN"
    b = int(noise.certified_budget(p, radius=eps, tau=tau, max_budget=5))
    assert -1 <= b <= 5, f"budget {b} outside [-1, 5]"
    radii = [rad for _, rad in noise.frontier(p, tau=tau, max_budget=5)]
    assert all(x >= 0 for x in radii), f"negative radius in the frontier {radii}"
    assert all(x >= y for x, y in zip(radii, radii[1:], strict=False)), f"frontier not non-increasing: {radii}"


def prop_boundary(impl: Implementation, c: Config, p: float, d: int, tau: float, eps: float) -> None:
    noise = _noise(impl, c)
    r = float(noise.certified_radius(p, budget=d, tau=tau))
    if 0.0 < r < math.inf:
        # just below and just above: 1e-7 relative is far above both the radius's and the worst case's
        # conservative rounding (~1e-10), so the exact worst case decides
        below = max(0.0, r * (1 - 1e-7) - 1e-9 * c.sigma)
        w = float(noise.worst_case(p, budget=d, radius=below))
        assert w >= tau, f"not certified just below the radius {r!r} (at {below!r}: worst case {w!r} < tau)"
        above = r * (1 + 1e-7) + 1e-9 * c.sigma
        w_above = float(noise.worst_case(p, budget=d, radius=above))
        assert w_above < tau, f"still certified just above the radius {r!r} (at {above!r}: {w_above!r})"
    elif r == 0.0:
        w = float(noise.worst_case(p, budget=d, radius=1e-6 * c.sigma))
        assert w < tau, f"radius 0 but certified at eps = 1e-6 sigma (worst case {w!r})"
    b = int(noise.certified_budget(p, radius=eps, tau=tau, max_budget=5))
    for dd in range(b + 1):
        w = float(noise.worst_case(p, budget=dd, radius=eps))
        assert w >= tau, f"budget {b} reported but worst case at d={dd} is {w!r} < tau"
    if b < 5:
        w = float(noise.worst_case(p, budget=b + 1, radius=eps))
        assert w < tau, f"budget {b} reported but d={b + 1} is certified too ({w!r})"


def prop_np_optimal(impl: Implementation, c: Config, d: int, eps: float, shape: str, data: Any) -> float:
    atoms = exact_atoms(c.kernel, c.vocab_size, c.beta, d)
    if not atoms.clean:
        return 0.0
    levels = np.array([math.log(r) for r in atoms.ratio])
    clean = np.array([float(x) for x in atoms.clean])
    attacked = np.array([float(x) for x in atoms.attacked])
    e = eps / c.sigma
    if shape == "staircase":
        thr = np.array(data.draw(st.lists(st.floats(-6, 6), min_size=levels.size, max_size=levels.size)))
        below = True
    else:  # a half-space w1 * log ratio + w2 * U <= c0 (w2 of either sign)
        w1 = data.draw(st.floats(-3, 3))
        w2 = data.draw(st.sampled_from([-1.0, 1.0])) * data.draw(st.floats(0.05, 3))
        off = data.draw(st.floats(-6, 6))
        thr = (off - w1 * levels) / w2
        below = w2 > 0
    clean_in = ndtr(thr) if below else ndtr(-thr)
    att_in = ndtr(thr - e) if below else ndtr(e - thr)
    take_zero = data.draw(st.booleans())
    take_inf = data.draw(st.booleans())
    p_region = float((clean * clean_in).sum()) + (float(atoms.c0) if take_zero else 0.0)
    a_region = float((attacked * att_in).sum()) + (float(atoms.a_inf) if take_inf else 0.0)
    p_region = min(max(p_region * (1 - 1e-12), 0.0), 1.0)  # round the clean mass down: never favour the theory
    w = float(_noise(impl, c).worst_case(p_region, budget=d, radius=eps))
    assert w <= a_region + TOL, (f"a {shape} region with clean mass {p_region!r} has attacked mass {a_region!r} "
                                 f"< the reported worst case {w!r}")
    return max(0.0, w - a_region)


def prop_monte_carlo(impl: Implementation, c: Config, d: int, eps: float, t_level: float, pick: int,
                     rng_seed: int, n: int) -> None:
    rng = np.random.default_rng(rng_seed)
    e = eps / c.sigma
    alphabet = noisy_alphabet(c.kernel, c.vocab_size)
    log_ratio = {}
    for z in alphabet:
        pc = token_density(c.kernel, c.vocab_size, c.beta, CLEAN_TOKEN, z)
        pa = token_density(c.kernel, c.vocab_size, c.beta, ATTACKED_TOKEN, z)
        log_ratio[z] = math.inf if pc == 0 else (-math.inf if pa == 0 else math.log(pa / pc))
    atoms = exact_atoms(c.kernel, c.vocab_size, c.beta, d)
    if not atoms.ratio:
        return
    u = math.log(atoms.ratio[pick % len(atoms.ratio)]) + e * t_level

    table = np.array([log_ratio.get(z, 0.0) for z in range(-1, c.vocab_size)])  # index z + 1 (MASK = -1)

    def in_region(source: int, shift: float) -> float:
        llr = np.zeros(n)
        for _ in range(d):
            llr += table[_sample_tokens(rng, c, source, n) + 1]
        with np.errstate(invalid="ignore"):
            stat = llr + e * (rng.standard_normal(n) + shift) - e * e / 2
        return float(np.count_nonzero(stat <= u))

    k_clean = in_region(CLEAN_TOKEN, 0.0)
    k_att = in_region(ATTACKED_TOKEN, e)
    alpha = 1e-6
    f_lo, f_hi = _cp(k_clean, n, alpha)
    g_lo, g_hi = _cp(k_att, n, alpha)
    noise = _noise(impl, c)
    w_lo = float(noise.worst_case(f_lo, budget=d, radius=eps))
    w_hi = float(noise.worst_case(f_hi, budget=d, radius=eps))
    assert w_lo <= g_hi + TOL and w_hi >= g_lo - TOL, (
        f"Monte-Carlo: clean mass in [{f_lo:.4f}, {f_hi:.4f}], attacked mass in [{g_lo:.4f}, {g_hi:.4f}], "
        f"but the worst case maps the clean interval to [{w_lo:.4f}, {w_hi:.4f}]")


def _cp(k: float, n: int, alpha: float) -> tuple[float, float]:
    lo = 0.0 if k == 0 else float(beta_dist.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta_dist.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def _sample_tokens(rng: np.random.Generator, c: Config, source: int, n: int) -> np.ndarray:
    """n draws of the raw kernel (docs/theory.md §1) applied to token ``source``."""
    noised = rng.random(n) < c.beta
    if c.kernel == "uniform-other":
        other = (source + rng.integers(1, c.vocab_size, n)) % c.vocab_size
        return np.where(noised, other, source)
    if c.kernel == "uniform-all":
        return np.where(noised, rng.integers(0, c.vocab_size, n), source)
    return np.where(noised, MASK, source)


# ------------------------------------------------------------------------------------------------------------
# Running them with Hypothesis and collecting the outcome
# ------------------------------------------------------------------------------------------------------------


def _specs(impl: Implementation, mc_samples: int) -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
    eps = st.floats(0.0, 3.0)
    return [
        ("d = 0 equals Cohen for every kernel", lambda **k: prop_d0_is_cohen(impl, **k),
         {"c": configs(), "p": probabilities, "eps": eps, "tau": thresholds}),
        ("eps = 0 and eps -> 0 equal the exact knapsack", lambda **k: prop_eps0_is_knapsack(impl, **k),
         {"c": configs(), "p": probabilities, "d": budgets}),
        ("monotone: up in p_a, down in eps, down in d", lambda **k: prop_monotone(impl, **k),
         {"c": configs(), "p1": probabilities, "p2": probabilities, "e1": eps, "e2": eps, "d": budgets}),
        ("results in range", lambda **k: prop_in_range(impl, **k),
         {"c": configs(), "p": probabilities, "eps": eps, "d": budgets, "tau": thresholds}),
        ("radius and budget are boundaries", lambda **k: prop_boundary(impl, **k),
         {"c": configs(), "p": st.floats(0.5, 0.99999), "d": budgets, "tau": thresholds, "eps": eps}),
        ("Neyman-Pearson optimality against staircases and half-spaces", lambda **k: prop_np_optimal(impl, **k),
         {"c": configs(), "d": st.integers(1, 4), "eps": eps, "shape": st.sampled_from(["staircase", "half-space"]),
          "data": st.data()}),
        ("Monte-Carlo agrees with F and G", lambda **k: prop_monte_carlo(impl, n=mc_samples, **k),
         {"c": configs(max_vocab=6), "d": st.integers(1, 3), "eps": st.floats(0.1, 3.0),
          "t_level": st.floats(-2, 2), "pick": st.integers(0, 50), "rng_seed": st.integers(0, 2**32 - 1)}),
    ]


def run_property(name: str, body: Callable[..., Any], strategies: dict[str, Any], max_examples: int,
                 rng_seed: int, shrink: bool = False) -> tuple[int, float, str | None]:
    """Run one property with Hypothesis; return (examples run, largest error, the falsifying example or None).

    Without ``shrink`` the first falsifying example is reported as found (shrinking can take minutes)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    calls = 0
    worst = 0.0
    failure: list[str] = []

    @seed(rng_seed)
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=False, print_blob=False,
              suppress_health_check=list(HealthCheck), phases=phases)
    @given(**strategies)
    def test(**kwargs: Any) -> None:
        nonlocal calls, worst
        calls += 1
        try:
            err = body(**kwargs)
        except Exception as exc:  # the shrunk example is the last one to fail
            shown = {k: v for k, v in kwargs.items() if k != "data"}
            failure.append(f"{name}: {shown}: {type(exc).__name__}: {exc}")
            raise
        if isinstance(err, float):
            worst = max(worst, err)

    try:
        test()
    except Exception as exc:  # noqa: BLE001 - reported as the check's failure
        return calls, worst, failure[-1] if failure else f"{name}: {type(exc).__name__}: {exc}"
    return calls, worst, None


def check_properties(max_examples: int, seed_value: int, mc_samples: int = 20000, impl: Implementation = THEORY,
                     progress: Callable[[str], None] | None = None) -> CheckResult:
    """Run every property with ``max_examples`` Hypothesis examples each."""
    result = CheckResult("properties", "Hypothesis properties: Cohen at d = 0, knapsack at eps = 0, monotonicity, "
                         "range, boundary, Neyman-Pearson optimality, Monte-Carlo agreement",
                         tolerance=f"{TOL:g} (Monte-Carlo: Clopper-Pearson intervals at 1e-6)")
    start = time.perf_counter()
    for i, (name, body, strategies) in enumerate(_specs(impl, mc_samples)):
        if progress:
            progress(f"properties: {name}")
        calls, worst, failure = run_property(name, body, strategies, max_examples, seed_value + i)
        result.cases += calls
        result.max_abs_error = max(result.max_abs_error or 0.0, worst)
        result.details.append({"property": name, "examples": calls, "passed": failure is None,
                               "falsifying": failure or ""})
        if failure:
            result.fail(failure)
    result.seconds = time.perf_counter() - start
    return result
