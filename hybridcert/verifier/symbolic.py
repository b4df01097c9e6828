"""Check 1: SymPy derivations of the certificate's pieces, each checked against the numeric theory.

Derived, not restated (docs/theory.md §3 and §4):

* the Gaussian log likelihood ratio of a shift e (log N(e,1)/N(0,1) at U) and its law under both hypotheses;
* the d = 0 worst case Phi(Phi^-1(p) - e) by solving the Neyman-Pearson level equation, and from it Cohen's
  radius sigma (Phi^-1(p) - Phi^-1(tau));
* the kernel atoms for d = 1, 2 from the raw per-token densities (masses summing to 1 under both laws);
* F and G (the clean and attacked masses of the worst-case set, G is the issue's "V") for d = 1 as
  expressions, from the region {l + e U - e^2/2 <= u};
* the limit e -> 0 of F and G for d = 1, which is the fractional knapsack;
* the absorb kernel's closed-form radius.

Each derived expression is evaluated at random points with mpmath (50 digits) and compared with the theory
under test: soundness (the theory never above the derived value) and accuracy (within ``ACCURACY``).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from mpmath import mp
from sympy.stats import E, Normal, cdf, variance

from hybridcert.verifier.impl import THEORY, Implementation
from hybridcert.verifier.interval import root_of_increasing
from hybridcert.verifier.result import CheckResult

ACCURACY = 1e-8  # the theory promises 1e-9
DPS = 50
KERNELS = ("uniform-other", "uniform-all", "absorb")

U, u, lvl, t = sp.symbols("U u l t", real=True)
e, p, tau, sigma, eps, beta = sp.symbols("e p tau sigma epsilon beta", positive=True)
V = sp.Symbol("V", integer=True, positive=True)
gap = sp.Symbol("g", positive=True)


@dataclass(frozen=True)
class Derivations:
    """The derived expressions (SymPy), kept for the report and evaluated by the checks."""

    llr: sp.Expr  # log-likelihood ratio of the Gaussian shift at U
    law_clean: tuple[sp.Expr, sp.Expr]  # mean and variance of the llr under N(0, 1)
    law_attacked: tuple[sp.Expr, sp.Expr]  # ... under N(e, 1)
    cdf_clean: sp.Lambda  # x -> P_clean[U <= x]
    cdf_attacked: sp.Lambda  # x -> P_attacked[U <= x]
    region_threshold: sp.Expr  # the U-threshold of an atom with log ratio l at level u
    worst_d0: sp.Expr  # p_adv at d = 0, in p and e
    cohen_radius: sp.Expr  # in p, tau, sigma
    atoms: dict[tuple[str, int], list[tuple[sp.Expr, sp.Expr]]]  # (kernel, d) -> [(clean, attacked)]
    sums_to_one: dict[tuple[str, int], bool]
    limits: tuple[sp.Expr, sp.Expr, sp.Expr]  # lim e->0 of Phi-terms below, above and at the boundary
    absorb_radius: sp.Expr  # in p, tau, sigma, beta, d
    budget_symbol: sp.Symbol
    fg_d1: dict[str, tuple[sp.Expr, sp.Expr]]  # kernel -> (F(u), G(u)) for d = 1, in u, e, V, beta

    def describe(self) -> list[dict[str, str]]:
        return [
            {"what": "Gaussian log likelihood ratio", "expression": str(self.llr)},
            {"what": "its law under N(0,1): mean, variance", "expression": str(self.law_clean)},
            {"what": "its law under N(e,1): mean, variance", "expression": str(self.law_attacked)},
            {"what": "worst-case region in atom with log ratio l", "expression": f"U <= {self.region_threshold}"},
            {"what": "d = 0 worst case", "expression": str(self.worst_d0)},
            {"what": "Cohen radius", "expression": str(self.cohen_radius)},
            {"what": "limits e -> 0 (below, above, at the boundary)", "expression": str(self.limits)},
            {"what": "absorb radius", "expression": str(self.absorb_radius)},
        ] + [
            {"what": f"{k}, d = 1: F(u) ; G(u)", "expression": f"{f} ; {g}"} for k, (f, g) in self.fg_d1.items()
        ] + [
            {"what": f"{k} atoms d={d}: sums to 1 under both laws", "expression": str(ok)}
            for (k, d), ok in self.sums_to_one.items()
        ]


def _density(x: sp.Expr, mean: sp.Expr) -> sp.Expr:
    return sp.exp(-((x - mean) ** 2) / 2) / sp.sqrt(2 * sp.pi)


def _raw_categories(kernel: str) -> list[tuple[sp.Expr, sp.Expr, sp.Expr]]:
    """Per-position outcome categories (multiplicity, clean density, attacked density) from docs/theory.md §1's raw
    kernels: the clean token a, the attacked token b, each of the V - 2 other tokens, and the mask."""

    def dens(same: bool) -> sp.Expr:
        if kernel == "uniform-other":
            return 1 - beta if same else beta / (V - 1)
        if kernel == "uniform-all":
            return (1 - beta if same else 0) + beta / V
        return 1 - beta if same else sp.Integer(0)  # absorb: a real token is kept or masked

    cats = [(sp.Integer(1), dens(True), dens(False)), (sp.Integer(1), dens(False), dens(True)),
            (V - 2, dens(False), dens(False))]
    if kernel == "absorb":
        cats.append((sp.Integer(1), beta, beta))
    return cats


def _derive_atoms(kernel: str, d: int) -> list[tuple[sp.Expr, sp.Expr]]:
    """Outcomes of d positions grouped by their (symbolic) category counts: [(clean mass, attacked mass)]."""
    cats = _raw_categories(kernel)
    groups: dict[tuple[int, ...], list[sp.Expr]] = {}
    for seq in itertools.product(range(len(cats)), repeat=d):
        counts = tuple(seq.count(i) for i in range(len(cats)))
        mult, c, a = sp.Integer(1), sp.Integer(1), sp.Integer(1)
        for i in seq:
            mult, c, a = mult * cats[i][0], c * cats[i][1], a * cats[i][2]
        slot = groups.setdefault(counts, [sp.Integer(0), sp.Integer(0)])
        slot[0] += mult * c
        slot[1] += mult * a
    return [(sp.factor(c), sp.factor(a)) for c, a in groups.values()]


@lru_cache(maxsize=1)
def derive() -> Derivations:
    """Run every derivation once per process (a few seconds of SymPy)."""
    llr = sp.simplify(sp.expand_log(sp.log(_density(U, e) / _density(U, 0)), force=True))
    u0, u1 = Normal("U0", 0, 1), Normal("U1", e, 1)
    law_clean = (sp.simplify(E(llr.subs(U, u0))), sp.simplify(variance(llr.subs(U, u0))))
    law_attacked = (sp.simplify(E(llr.subs(U, u1))), sp.simplify(variance(llr.subs(U, u1))))
    x = sp.Symbol("x", real=True)
    cdf0 = sp.Lambda(x, sp.simplify(cdf(u0)(x)))
    cdf1 = sp.Lambda(x, sp.simplify(cdf(u1)(x)))
    # the worst-case region of an atom with log ratio l at level u: l + llr(U) <= u, solved for U
    region = sp.solve(sp.Lt(lvl + llr, u), U)
    threshold = sp.simplify(_rhs_of(region))
    # d = 0: the llr is the only coordinate: P_clean[llr <= u] = p fixes u; p_adv = P_attacked[llr <= u]
    thr0 = threshold.subs(lvl, 0)
    level = sp.solve(sp.Eq(cdf0(thr0), p), u)[0]
    worst_d0 = sp.simplify(cdf1(thr0).subs(u, level))
    radius = sp.solve(sp.Eq(worst_d0.subs(e, eps / sigma), tau), eps)[0]
    atoms, sums = {}, {}
    for kernel in KERNELS:
        for d in (1, 2):
            groups = _derive_atoms(kernel, d)
            atoms[(kernel, d)] = groups
            sums[(kernel, d)] = bool(sp.simplify(sum(c for c, _ in groups) - 1) == 0
                                     and sp.simplify(sum(a for _, a in groups) - 1) == 0)
    # e -> 0 at the level u = l_j + e t: an atom at gap g below l_j, above it, or the boundary atom itself
    below = _limit_of_cdf(cdf0, x, threshold.subs({u: lvl + gap + e * t}))
    above = _limit_of_cdf(cdf0, x, threshold.subs({u: lvl - gap + e * t}))
    at = _limit_of_cdf(cdf0, x, threshold.subs({u: lvl + e * t}))
    # absorb, d positions: the all-masked atom (mass beta^d under both laws, ratio 1) is the only finite one;
    # every other clean outcome keeps an a (attacked mass 0, always in the set): C0 = 1 - beta^d
    dd = sp.Symbol("d", integer=True, positive=True)
    m = beta**dd
    f_abs = (1 - m) + m * cdf0(threshold.subs(lvl, 0))
    g_abs = m * cdf1(threshold.subs(lvl, 0))
    u_abs = sp.solve(sp.Eq(f_abs, p), u)[0]
    e_abs = sp.solve(sp.Eq(sp.simplify(g_abs.subs(u, u_abs)), tau), e)
    absorb_radius = sp.simplify(sigma * e_abs[0])
    # F and G for d = 1: each atom's region {U <= threshold(l = log(attacked / clean))}; an atom with attacked
    # mass 0 is wholly in the set (l -> -oo), one with clean mass 0 never (l -> +oo)
    fg_d1: dict[str, tuple[sp.Expr, sp.Expr]] = {}
    for kernel in KERNELS:
        f_expr, g_expr = sp.Integer(0), sp.Integer(0)
        for c, a in atoms[(kernel, 1)]:
            if c == 0:
                continue
            if a == 0:
                f_expr += c
                continue
            thr_k = threshold.subs(lvl, sp.log(a / c))
            f_expr += c * cdf0(thr_k)
            g_expr += a * cdf1(thr_k)
        fg_d1[kernel] = (f_expr, g_expr)
    return Derivations(llr, law_clean, law_attacked, cdf0, cdf1, threshold, worst_d0, radius, atoms, sums,
                       (below, above, at), absorb_radius, dd, fg_d1)


def _limit_of_cdf(cdf0: sp.Lambda, x: sp.Symbol, argument: sp.Expr) -> sp.Expr:
    """lim e -> 0+ of cdf0(argument(e)): the limit of the argument, then the cdf's limit there (the cdf is
    continuous and monotone). SymPy 1.14's direct limit of the composed erf is wrong here (it returns 1 for
    erf(sqrt(2)(e^2 + 2et - 2g)/(4e)) / 2 + 1/2, whose limit is 0), so the composition is split."""
    arg_limit = sp.limit(argument, e, 0, "+")
    if arg_limit.is_infinite:
        return sp.limit(cdf0(x), x, arg_limit)
    return sp.simplify(cdf0(arg_limit))


def _rhs_of(solution: Any) -> sp.Expr:
    """The bound b of a solved inequality 'U < b' (SymPy returns a relational, possibly inside an And)."""
    rels = solution.args if isinstance(solution, sp.And) else (solution,)
    for rel in rels:
        if isinstance(rel, sp.StrictLessThan | sp.LessThan) and rel.lhs == U and rel.rhs.is_finite is not False:
            return rel.rhs
        if isinstance(rel, sp.StrictGreaterThan | sp.GreaterThan) and rel.rhs == U:
            return rel.lhs
    raise RuntimeError(f"unexpected form of the solved region: {solution}")


# ------------------------------------------------------------------------------------------------------------
# Numeric evaluation of the derived expressions (mpmath, 50 digits)
# ------------------------------------------------------------------------------------------------------------


def _mpfun(expr: sp.Expr, args: tuple[sp.Symbol, ...]) -> Callable[..., Any]:
    fn: Callable[..., Any] = sp.lambdify(args, expr, modules="mpmath")
    return fn


def numeric_atoms(der: Derivations, kernel: str, d: int, v: int, b: float) -> dict[str, Any]:
    """The derived atoms at (V, beta): finite levels ascending with masses, c0 and a_inf (mpmath)."""
    levels: dict[str, list[Any]] = {}
    c0, a_inf = mp.mpf(0), mp.mpf(0)
    for c_expr, a_expr in der.atoms[(kernel, d)]:
        c = mp.mpf(sp.N(c_expr.subs({V: v, beta: sp.Rational(b)}), DPS))
        a = mp.mpf(sp.N(a_expr.subs({V: v, beta: sp.Rational(b)}), DPS))
        if c == 0 and a == 0:
            continue
        if c == 0:
            a_inf += a
        elif a == 0:
            c0 += c
        else:
            level = mp.log(a / c)
            key = mpmath.nstr(level, 30)
            slot = levels.setdefault(key, [level, mp.mpf(0), mp.mpf(0)])
            slot[1] += c
            slot[2] += a
    rows = sorted(levels.values(), key=lambda r: r[0])
    return {"level": [r[0] for r in rows], "clean": [r[1] for r in rows], "attacked": [r[2] for r in rows],
            "c0": c0, "a_inf": a_inf}


def derived_worst_d1(der: Derivations, kernel: str, v: int, b: float, p_a: float, e_val: Any) -> Any:
    """p_adv for d = 1 from the derived expressions F(u) and G(u): solve F(u) = p_A, return G(u) (50 digits)."""
    f_expr, g_expr = der.fg_d1[kernel]
    args = (u, e, V, beta)
    f_fn, g_fn = _mpfun(f_expr, args), _mpfun(g_expr, args)
    b_exact = mp.mpf(sp.Rational(b).p) / sp.Rational(b).q
    uu = root_of_increasing(lambda x: f_fn(x, e_val, v, b_exact) - mp.mpf(p_a), mp.mpf(10) ** (5 - DPS))
    return g_fn(uu, e_val, v, b_exact)


def derived_knapsack_d1(der: Derivations, atoms: dict[str, Any], p_a: float) -> Any:
    """The e -> 0 limit for d = 1: terms below the boundary atom -> 1, above -> 0, the boundary -> Phi(t),
    with Phi(t) fixed by F = p_A (50 digits)."""
    below, above, at = (float(sp.N(x)) if x.is_number else None for x in der.limits)
    if below != 1.0 or above != 0.0:
        raise RuntimeError(f"unexpected limits {der.limits}")
    p_mp = mp.mpf(p_a)
    acc_c, acc_a = atoms["c0"], mp.mpf(0)
    if p_mp <= acc_c:
        return mp.mpf(0)
    for c, a in zip(atoms["clean"], atoms["attacked"], strict=True):
        if acc_c + c >= p_mp:
            frac = (p_mp - acc_c) / c  # = Phi(t) at the boundary atom
            return acc_a + a * frac
        acc_c += c
        acc_a += a
    return acc_a


# ------------------------------------------------------------------------------------------------------------
# The check
# ------------------------------------------------------------------------------------------------------------


def _compare(result: CheckResult, label: str, got: float, exact: Any, scale: Any = 1) -> None:
    """Record got vs exact; fail when got is above exact (unsound) or further than ACCURACY * scale below."""
    with mp.workdps(DPS):
        exact = mp.mpf(exact)
        diff = mp.mpf(got) - exact
        rel = diff / exact if exact != 0 else (mp.mpf(0) if diff == 0 else mp.inf)
        result.record(float(diff), float(rel))
        tol = ACCURACY * max(mp.mpf(1), abs(mp.mpf(scale)))
        if diff > mp.mpf(10) ** -30 * max(mp.mpf(1), abs(exact)):
            result.fail(f"{label}: theory {got!r} is ABOVE the derived value {mpmath.nstr(exact, 20)} (unsound)")
        elif -diff > tol:
            result.fail(f"{label}: theory {got!r} differs from the derived {mpmath.nstr(exact, 20)} by "
                        f"{float(diff):.3g}")


def check_symbolic(points: int, seed: int, impl: Implementation = THEORY,
                   progress: Callable[[str], None] | None = None) -> CheckResult:
    """Evaluate every derivation at ``points`` random points per item and compare with ``impl``."""
    result = CheckResult("symbolic", "SymPy derivations (Gaussian likelihood ratio, d = 0 / Cohen, atoms for "
                         "d = 1, 2, F and G for d = 1, e -> 0 knapsack, absorb closed form) vs the theory",
                         tolerance=f"theory <= derived; derived - theory <= {ACCURACY:g} absolute (x radius for radii)")
    start = time.perf_counter()
    if progress:
        progress("symbolic: deriving with SymPy")
    der = derive()
    result.details = der.describe()
    for (kernel, d), ok in der.sums_to_one.items():
        result.record()
        if not ok:
            result.fail(f"derived {kernel} atoms for d={d} do not sum to 1")
    expected_llr = e * U - e**2 / 2  # the only restated formula: a sanity check of the derivation itself
    result.record()
    if sp.simplify(der.llr - expected_llr) != 0 or der.law_clean != (-(e**2) / 2, e**2):
        result.fail(f"unexpected derived likelihood ratio {der.llr} / law {der.law_clean}")
    rng = np.random.default_rng(seed)
    worst0 = _mpfun(der.worst_d0, (p, e))
    cohen = _mpfun(der.cohen_radius, (p, tau, sigma))
    absorb_r = _mpfun(der.absorb_radius, (p, tau, sigma, beta, der.budget_symbol))
    with mp.workdps(DPS):
        for _ in range(points):
            kernel = KERNELS[int(rng.integers(0, 3))]
            v = int(rng.integers(3, 60))
            b = float(np.round(rng.uniform(0.05, 0.95), 6))
            if kernel == "uniform-other" and abs(b - (v - 1) / v) < 0.02:
                b = b / 2
            s = float(np.round(rng.uniform(0.2, 2.0), 6))
            p_a = float(np.round(rng.uniform(0.55, 0.9999), 8))
            tv = 0.5 if rng.random() < 0.5 else float(np.round(10 ** rng.uniform(-4, -1), 8))
            e_val = float(np.round(rng.uniform(0.05, 2.0), 6))
            noise = impl.make_noise(kernel, v, b, s)
            where = f"{kernel} V={v} beta={b} sigma={s} p_a={p_a} tau={tv}"
            # d = 0: Phi(Phi^-1(p) - e) and Cohen's radius, for every kernel
            eps_val = e_val * s
            e_exact = mp.mpf(eps_val) / mp.mpf(s)
            _compare(result, f"{where}: worst_case(d=0, eps={eps_val:.6g})",
                     float(noise.worst_case(p_a, budget=0, radius=eps_val)), worst0(p_a, e_exact))
            exact_r = cohen(p_a, tv, s)
            _compare(result, f"{where}: certified_radius(d=0)", float(noise.certified_radius(p_a, budget=0, tau=tv)),
                     exact_r, exact_r)
            _compare(result, f"{where}: cohen_radius", float(impl.cohen_radius(p_a, s, tv)), exact_r, exact_r)
            # atoms for d = 1, 2 against the kernel under test
            for d in (1, 2):
                _check_atoms(result, der, impl, kernel, d, v, b, where)
            # F and G for d = 1, and their e -> 0 limit (the knapsack)
            atoms1 = numeric_atoms(der, kernel, 1, v, b)
            if p_a > atoms1["c0"]:
                _compare(result, f"{where}: worst_case(d=1, eps={eps_val:.6g}) vs derived F, G",
                         float(noise.worst_case(p_a, budget=1, radius=eps_val)),
                         derived_worst_d1(der, kernel, v, b, p_a, e_exact))
            knap = derived_knapsack_d1(der, atoms1, p_a)
            _compare(result, f"{where}: worst_case(d=1, eps=0) vs derived e -> 0 limit",
                     float(noise.worst_case(p_a, budget=1, radius=0.0)), knap)
            kern = impl.make_kernel(kernel, v, b)
            _compare(result, f"{where}: knapsack_worst_case(d=1)", float(impl.knapsack_worst_case(p_a, kern, 1)), knap)
            # the absorb closed form
            if kernel == "absorb":
                for d in (1, 2, 3):
                    m = mp.mpf(b) ** d
                    if not (0 < 1 - (1 - mp.mpf(p_a)) / m < 1 and 0 < mp.mpf(tv) / m < 1):
                        continue
                    exact_abs = absorb_r(p_a, tv, s, b, d)
                    if exact_abs <= 0:
                        continue
                    _compare(result, f"{where}: absorb certified_radius(d={d})",
                             float(noise.certified_radius(p_a, budget=d, tau=tv)), exact_abs, exact_abs)
    result.seconds = time.perf_counter() - start
    return result


def _check_atoms(result: CheckResult, der: Derivations, impl: Implementation, kernel: str, d: int, v: int,
                 b: float, where: str) -> None:
    """The kernel's atoms for d against the derived ones: same levels, masses, C0 and A_inf; sums of 1."""
    ref = numeric_atoms(der, kernel, d, v, b)
    got = impl.make_kernel(kernel, v, b).atoms(d)
    label = f"{where}: atoms(d={d})"
    levels = [float(x) for x in np.asarray(got.log_ratio)]
    clean = [float(x) for x in np.asarray(got.clean)]
    attacked = [float(x) for x in np.asarray(got.attacked)]
    total_c = math.fsum(clean) + float(got.clean_zero_ratio)
    total_a = math.fsum(attacked) + float(got.attacked_infinite_ratio)
    result.record(abs(total_c - 1.0))
    if abs(total_c - 1.0) > 1e-12 or abs(total_a - 1.0) > 1e-12:
        result.fail(f"{label}: masses sum to {total_c!r} (clean) and {total_a!r} (attacked), not 1")
    if len(levels) != len(ref["level"]):
        result.fail(f"{label}: {len(levels)} atoms with finite ratio, derived {len(ref['level'])}")
        return
    with mp.workdps(DPS):
        for name, mine, theirs, relative in (("level", ref["level"], levels, False),
                                             ("clean mass", ref["clean"], clean, True),
                                             ("attacked mass", ref["attacked"], attacked, True),
                                             ("C0", [ref["c0"]], [float(got.clean_zero_ratio)], True),
                                             ("A_inf", [ref["a_inf"]], [float(got.attacked_infinite_ratio)], True)):
            for k, (x, y) in enumerate(zip(mine, theirs, strict=True)):
                diff = mp.mpf(y) - x
                scale = abs(x) if relative and x != 0 else max(mp.mpf(1), abs(x))
                result.record(float(diff), float(diff / scale) if scale else 0.0)
                if abs(diff) > 1e-12 * scale:
                    result.fail(f"{label}: {name} {k} is {y!r}, derived {mpmath.nstr(x, 17)}")
