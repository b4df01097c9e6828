"""Check 2: the joint Neyman-Pearson problem solved at >= 50 digits without the closed form (docs/theory.md §4).

For small V and d the raw token outcomes at the d differing positions are enumerated one by one (V^d
sequences, (V+1)^d with the mask; no grouping into atoms), each with its exact clean and attacked probability
from the raw per-token kernel (docs/theory.md §1). The worst-case region in (outcome z, U) is
{log(P_a(z)/P_c(z)) + e U - e^2/2 <= u}; its clean and attacked masses are sums over outcomes of the
outcome's probability times a Gaussian integral over a half-line, computed by ``mpmath.quad`` (not by erf /
erfc). The level u solves F(u) = p_A by Newton's method at 50+ digits, and the radius solves W(e) = tau the
same way. Outcomes with the same exact likelihood ratio share one integral (a cache keyed by the exact
rational ratio, which changes no value). The float64 theory is then compared: worst case and radius, max
absolute and relative error, and soundness (the theory may never be above the high-precision value).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np
from mpmath import mp
from scipy.optimize import brentq
from scipy.special import ndtr

from hybridcert.verifier.impl import THEORY, Implementation
from hybridcert.verifier.reference import NoiseParams, exact_atoms, knapsack, raw_field_outcomes, raw_outcomes
from hybridcert.verifier.result import CheckResult

DPS = 50
#: the float theory must be within this of the 50-digit value (it promises 1e-9) and never above it
ACCURACY = 1e-8
SOUNDNESS_SLACK = 1e-30  # numerical noise of the 50-digit solution itself


def gaussian_mass_below(x: mpmath.mpf) -> mpmath.mpf:
    """Integral of the standard normal density over (-inf, x], by ``mpmath.quad`` (relative accuracy).

    For x <= -1 the substitution y = x - w/|x| gives phi(x)/|x| * int_0^inf exp(-w - w^2/(2x^2)) dw, a
    well-scaled integrand at every |x|; for -1 < x <= 0 the piece [-1, x] is added; x > 0 uses the symmetry
    of the density, 1 - mass_below(-x).
    """
    if x == mp.inf:
        return mp.mpf(1)
    if x == -mp.inf:
        return mp.mpf(0)
    if x > 0:
        return 1 - gaussian_mass_below(-x)
    if x <= -1:
        a = -x
        inner = mp.quad(lambda w: mp.exp(-w - w * w / (2 * a * a)), [0, 1, 8, mp.inf])
        return _density(a) / a * inner
    return gaussian_mass_below(mp.mpf(-1)) + mp.quad(_density, [-1, x])


def _density(x: mpmath.mpf) -> mpmath.mpf:
    return mp.exp(-x * x / 2) / mp.sqrt(2 * mp.pi)


@dataclass(frozen=True)
class RawProblem:
    """The raw outcomes of one (kernel, V, beta, d): exact masses and log likelihood ratios."""

    clean: tuple[mpmath.mpf, ...]  # outcomes with both masses > 0
    attacked: tuple[mpmath.mpf, ...]
    ratio: tuple[Fraction, ...]  # exact likelihood ratio of each outcome (the integral cache key)
    log_ratio: tuple[mpmath.mpf, ...]
    c0: mpmath.mpf  # clean mass of outcomes with attacked mass 0 (their region is all of U)
    a_inf: mpmath.mpf  # attacked mass of outcomes with clean mass 0 (never in the region)
    n_outcomes: int

    @staticmethod
    def build(noise: NoiseParams, budget: int, fields: tuple[int, ...] | None = None) -> RawProblem:
        """Raw token sequences at ``budget`` positions, or raw category tuples at the changed ``fields``
        (their arities) for per-field arities."""
        clean, attacked, ratio, log_ratio = [], [], [], []
        c0, a_inf, n = Fraction(0), Fraction(0), 0
        if fields is not None:
            outcomes = raw_field_outcomes(noise.kernel, fields, noise.beta)
        else:
            assert isinstance(noise.vocab_size, int)
            outcomes = raw_outcomes(noise.kernel, noise.vocab_size, noise.beta, budget)
        for c, a in outcomes:
            n += 1
            if c == 0:
                a_inf += a
            elif a == 0:
                c0 += c
            else:
                clean.append(_mp(c))
                attacked.append(_mp(a))
                ratio.append(a / c)
                log_ratio.append(mp.log(_mp(a / c)))
        return RawProblem(tuple(clean), tuple(attacked), tuple(ratio), tuple(log_ratio), _mp(c0), _mp(a_inf), n)


def _mp(x: Fraction) -> mpmath.mpf:
    return mp.mpf(x.numerator) / x.denominator


class HighPrecisionSolver:
    """Worst case and radius of the joint NP problem by quadrature and Newton's method (see module doc)."""

    def __init__(self, noise: NoiseParams, budget: int, fields: tuple[int, ...] | None = None) -> None:
        self.noise = noise
        self.budget = budget
        with mp.workdps(DPS + 10):
            self.problem = RawProblem.build(noise, budget, fields)
        self._parts: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None

    # F, G and their partial derivatives at (u, e) -------------------------------------------------------

    def _masses(self, u: mpmath.mpf, e: mpmath.mpf, attacked: bool) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
        """(mass, d mass / du, d mass / de) of the region at level u, under the clean or attacked law."""
        pr = self.problem
        shift = -e / 2 if attacked else e / 2
        weights = pr.attacked if attacked else pr.clean
        cache: dict[Fraction, tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]] = {}
        total, d_u, d_e = mp.mpf(0), mp.mpf(0), mp.mpf(0)
        for w, key, lr in zip(weights, pr.ratio, pr.log_ratio, strict=True):
            if key not in cache:
                x = (u - lr) / e + shift
                dens = _density(x)
                cache[key] = (gaussian_mass_below(x), dens / e, dens * (-(u - lr) / (e * e) + shift / e))
            m, mu, me = cache[key]
            total += w * m
            d_u += w * mu
            d_e += w * me
        if not attacked:
            total += pr.c0
        return total, d_u, d_e

    def level(self, p_a: mpmath.mpf, e: mpmath.mpf, u0: mpmath.mpf) -> mpmath.mpf:
        """The level u with F(u) = p_A (Newton from u0, which must be close: the float64 start)."""
        u = u0
        for _ in range(12):
            f, fu, _fe = self._masses(u, e, attacked=False)
            if fu == 0:
                break
            step = (f - p_a) / fu
            u -= step
            if abs(step) <= mp.mpf(10) ** (-DPS + 5) * (1 + abs(u)):
                break
        residual = self._masses(u, e, attacked=False)[0] - p_a
        if abs(residual) > mp.mpf(10) ** (-DPS + 10):
            raise RuntimeError(f"the 50-digit level did not converge (F - p_A = {mpmath.nstr(residual, 5)})")
        return u

    def worst_case(self, p_a: float, radius: float) -> mpmath.mpf:
        """p_adv(d, eps) at 50 digits (docs/theory.md §4) for 0 < p_a < 1 and radius > 0."""
        with mp.workdps(DPS + 10):
            e = mp.mpf(radius) / mp.mpf(self.noise.sigma)
            p = mp.mpf(p_a)
            if p <= self.problem.c0:
                return mp.mpf(0)
            u = self.level(p, e, mp.mpf(self._float_level(p_a, float(e))))
            return +self._masses(u, e, attacked=True)[0]

    def radius(self, p_a: float, tau: float) -> mpmath.mpf:
        """The exact certified radius r*(d) at 50 digits: the eps where p_adv(d, eps) = tau (0 if none)."""
        e_float = self._float_radius(p_a, tau)
        if e_float <= 0.0:
            return mp.mpf(0)
        if not math.isfinite(e_float):
            raise RuntimeError("no finite radius found (the worst case stays above tau)")
        with mp.workdps(DPS + 10):
            p, t = mp.mpf(p_a), mp.mpf(tau)
            e = mp.mpf(e_float)
            u = mp.mpf(self._float_level(p_a, e_float))
            for _ in range(12):
                u = self.level(p, e, u)
                _f, fu, fe = self._masses(u, e, attacked=False)
                g, gu, ge = self._masses(u, e, attacked=True)
                slope = ge - gu * fe / fu  # dW/de along F(u, e) = p_A
                step = (g - t) / slope
                e_new = e - step
                u = u + (-fe / fu) * (e_new - e)  # follow the level's tangent to the new e
                e = e_new
                if abs(step) <= mp.mpf(10) ** (-DPS + 5) * (1 + abs(e)):
                    break
            u = self.level(p, e, u)
            residual = self._masses(u, e, attacked=True)[0] - t
            if abs(residual) > mp.mpf(10) ** (-DPS + 10) * max(1, abs(t)):
                raise RuntimeError(f"the 50-digit radius did not converge (W - tau = {mpmath.nstr(residual, 5)})")
            return e * mp.mpf(self.noise.sigma)

    # float64 starting points (plain scipy, grouped by exact ratio; never the theory under test) ----------

    def _float_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        if self._parts is None:
            self._parts = self._group_float()
        return self._parts

    def _group_float(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        pr = self.problem
        groups: dict[Fraction, list[float]] = {}
        for c, a, key, lr in zip(pr.clean, pr.attacked, pr.ratio, pr.log_ratio, strict=True):
            slot = groups.setdefault(key, [float(lr), 0.0, 0.0])
            slot[1] += float(c)
            slot[2] += float(a)
        arr = np.array(list(groups.values()))
        return arr[:, 0], arr[:, 1], arr[:, 2], float(pr.c0)

    def _float_level(self, p_a: float, e: float) -> float:
        lr, c, _a, c0 = self._float_parts()

        def f(u: float) -> float:
            return float(c0 + (c * ndtr((u - lr) / e + e / 2)).sum() - p_a)

        lo, hi = lr.min() - 40 * e - 40, lr.max() + 40 * e + 40
        return float(brentq(f, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500))

    def _float_worst(self, p_a: float, e: float) -> float:
        lr, _c, a, _c0 = self._float_parts()
        u = self._float_level(p_a, e)
        return float((a * ndtr((u - lr) / e - e / 2)).sum())

    def _float_radius(self, p_a: float, tau: float) -> float:
        """A float64 estimate of r*(d) (0.0 when the e -> 0 worst case is below tau)."""
        lo = 1e-9
        if self._float_worst(p_a, lo) < tau:
            return 0.0
        hi = 1.0
        while self._float_worst(p_a, hi) >= tau:
            hi *= 2.0
            if hi > 1e3:
                return math.inf
        return float(brentq(lambda x: self._float_worst(p_a, x) - tau, lo, hi, xtol=1e-14, rtol=1e-14))


class FieldSubsetSolver:
    """Per-field arities (docs/theory.md §9): one raw-outcome solver per subset S of at most ``budget`` fields
    (every subset, by field index: no grouping by arity, no pruning, no reliance on "exactly d suffices");
    the worst case and the radius are the minimum over S."""

    def __init__(self, noise: NoiseParams, budget: int) -> None:
        assert isinstance(noise.vocab_size, tuple)
        arities = noise.vocab_size
        self.solvers = [
            HighPrecisionSolver(noise, size, tuple(arities[i] for i in subset))
            for size in range(min(budget, len(arities)) + 1)
            for subset in itertools.combinations(range(len(arities)), size)
        ]
        self.n_outcomes = sum(s.problem.n_outcomes for s in self.solvers)

    def worst_case(self, p_a: float, radius: float) -> mpmath.mpf:
        return min(s.worst_case(p_a, radius) for s in self.solvers)

    def radius(self, p_a: float, tau: float) -> mpmath.mpf:
        return min(s.radius(p_a, tau) for s in self.solvers)


def make_solver(noise: NoiseParams, budget: int) -> HighPrecisionSolver | FieldSubsetSolver:
    if isinstance(noise.vocab_size, tuple):
        return FieldSubsetSolver(noise, budget)
    return HighPrecisionSolver(noise, budget)


# ------------------------------------------------------------------------------------------------------------
# The check
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One high-precision comparison: worst case at (budget, radius), or r*(budget) at tau when radius is None."""

    noise: NoiseParams
    p_a: float
    budget: int
    radius: float | None
    tau: float

    def describe(self) -> str:
        n = self.noise
        what = f"worst_case(d={self.budget}, eps={self.radius:.6g})" if self.radius is not None else (
            f"certified_radius(d={self.budget}, tau={self.tau:.6g})")
        return f"{n.kernel} V={n.vocab_size} beta={n.beta:.6g} sigma={n.sigma:.6g} p_a={self.p_a:.10g}: {what}"


def random_cases(rng: np.random.Generator, n_worst: int, n_radius: int, max_budget: int = 3) -> list[Case]:
    """Random small configurations (V in 2..5, d in 1..max_budget) on which the radius is positive."""
    kernels = ("uniform-other", "uniform-all", "absorb")
    cases: list[Case] = []
    i = 0
    while len(cases) < n_worst + n_radius:
        kernel = kernels[i % 3]
        i += 1
        v = int(rng.integers(2, 6))
        d = int(rng.integers(1, max_budget + 1))
        if (v + (kernel == "absorb")) ** d > 130:  # keep the enumeration small
            d = 1 + (d > 1)
        beta = float(np.round(rng.uniform(0.1, 0.9), 6))
        if kernel == "uniform-other" and abs(beta - (v - 1) / v) < 0.05:
            beta = float(np.round(beta / 2, 6))  # keep the kernel informative
        sigma = float(np.round(rng.uniform(0.25, 1.5), 6))
        atoms = exact_atoms(kernel, v, beta, d)
        c0 = float(atoms.c0)
        p = float(np.round(c0 + (1 - c0) * rng.uniform(0.8, 0.9995), 8))  # above the ratio-0 mass
        tau = 0.5 if rng.random() < 0.5 else float(np.round(10 ** rng.uniform(-4, -1), 8))
        if len(cases) >= n_worst and float(knapsack(atoms, Fraction(p))) <= tau * 1.01:
            continue  # a radius case must be certified at eps = 0 (else its radius is 0)
        if len(cases) < n_worst:
            eps = float(np.round(rng.uniform(0.05, 1.2) * sigma, 6))
            cases.append(Case(NoiseParams(kernel, v, beta, sigma), p, d, eps, tau))
        else:
            cases.append(Case(NoiseParams(kernel, v, beta, sigma), p, d, None, tau))
    return cases


def check_highprec(
    cases: list[Case],
    impl: Implementation = THEORY,
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    """Compare the float64 theory with the 50-digit raw-outcome NP solution on ``cases``."""
    result = CheckResult(
        "highprec",
        "Joint Neyman-Pearson problem at 50 digits from raw token outcomes and mpmath.quad (no closed form)",
        tolerance=f"theory <= exact and exact - theory <= {ACCURACY:g} (relative for radii)",
    )
    start = time.perf_counter()
    for case in cases:
        if progress:
            progress(f"highprec: {case.describe()}")
        n = case.noise
        solver = make_solver(n, case.budget)
        try:
            theory = impl.make_noise(n.kernel, n.vocab_size, n.beta, n.sigma)
            if case.radius is not None:
                exact = solver.worst_case(case.p_a, case.radius)
                got = float(theory.worst_case(case.p_a, budget=case.budget, radius=case.radius))
                scale = mp.mpf(1)
            else:
                exact = solver.radius(case.p_a, case.tau)
                got = float(theory.certified_radius(case.p_a, budget=case.budget, tau=case.tau))
                scale = max(mp.mpf(1), abs(exact))
        except Exception as exc:  # noqa: BLE001 - one failing case, the others still run
            result.record()
            result.fail(f"{case.describe()}: {type(exc).__name__}: {exc}")
            continue
        with mp.workdps(DPS):
            diff = mp.mpf(got) - exact  # > 0: the theory over-states
            rel = diff / exact if exact != 0 else (mp.mpf(0) if diff == 0 else mp.inf)
        result.record(float(diff), float(rel))
        result.details.append({"case": case.describe(), "exact": mpmath.nstr(exact, 30), "theory": got,
                               "error": float(diff), "outcomes": _outcomes(solver)})
        if diff > SOUNDNESS_SLACK * scale:
            result.fail(f"{case.describe()}: theory {got!r} is ABOVE the exact {mpmath.nstr(exact, 20)} (unsound)")
        elif -diff > ACCURACY * scale:
            result.fail(f"{case.describe()}: theory {got!r} is {float(-diff):.3g} below the exact "
                        f"{mpmath.nstr(exact, 20)} (more than {ACCURACY:g})")
    result.seconds = time.perf_counter() - start
    return result


def _outcomes(solver: HighPrecisionSolver | FieldSubsetSolver) -> int:
    return solver.n_outcomes if isinstance(solver, FieldSubsetSolver) else solver.problem.n_outcomes


def random_field_cases(rng: np.random.Generator, n_worst: int, n_radius: int) -> list[Case]:
    """Small tabular configurations: 2-3 fields of arities 2..3, budgets 1..2, all kernels (docs/theory.md §9)."""
    kernels = ("uniform-other", "absorb", "uniform-all")
    cases: list[Case] = []
    i = 0
    while len(cases) < n_worst + n_radius:
        kernel = kernels[i % 3]
        i += 1
        arities = tuple(int(v) for v in rng.integers(2, 4, int(rng.integers(2, 4))))
        d = int(rng.integers(1, 3))
        beta = float(np.round(rng.uniform(0.1, 0.9), 6))
        sigma = float(np.round(rng.uniform(0.25, 1.5), 6))
        p = float(np.round(rng.uniform(0.9, 0.9995), 8))
        tau = 0.5 if rng.random() < 0.5 else float(np.round(10 ** rng.uniform(-3, -1), 8))
        noise = NoiseParams(kernel, arities, beta, sigma)
        if len(cases) < n_worst:
            cases.append(Case(noise, p, d, float(np.round(rng.uniform(0.05, 1.0) * sigma, 6)), tau))
        else:
            cases.append(Case(noise, p, d, None, tau))
    return cases
