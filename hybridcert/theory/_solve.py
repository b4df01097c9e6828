"""Vectorised, conservative solvers for the joint Neyman-Pearson certificate (THEORY 4 and 6).

Notation (THEORY 4): atoms k with levels l_k = log gamma1_k, clean masses c_k, attacked masses a_k; C0 the
clean mass with ratio 0, A_inf the attacked mass with ratio +infinity; e = eps / sigma. The worst-case set
at level u is {U <= (u - l_k)/e + e/2} inside atom k. Each input carries an anchor atom j and the level is
written t = (u - l_j)/e + e/2, so that atom k sits at s_k = t + (l_j - l_k)/e. Anchoring at the knapsack
boundary keeps s_k accurate when e is tiny and the (l_j - l_k)/e are huge.

  F(t) = C0 + sum_k c_k Phi(s_k)          clean mass of the set,    Q = 1 - F = sum_k c_k Phi(-s_k)
  G(t) = sum_k a_k Phi(s_k - e)           attacked mass of the set, 1 - G = A_inf + sum_k a_k Phi(e - s_k)

Soundness (THEORY 6): every float evaluation is widened by a relative margin ``ETA`` (covering the
rounding of the log-space masses, of ``ndtr`` and of the sums) before it decides a side, and the solvers
only ever return points that were *evaluated* on the safe side: the level t with F(t) <= p_A, the radius e
at which the worst case is >= tau. Probabilities near 1 are handled through their complements, which are
exact for inputs above 1/2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from hybridcert.theory.kernels import Atoms

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

ETA = 1e-11  # relative error budget of an evaluated probability (masses, ndtr, sums): see module doc
TINY = 1e-300  # absolute slack per atom for masses that underflow to 0
_INV_SQRT_2PI = 0.3989422804014327
_MAX_ITER = 400


def _pdf(x: FloatArray) -> FloatArray:
    out: FloatArray = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return out


@dataclass(frozen=True)
class Prepared:
    """Float views of one budget's atoms, with the cumulative sums the knapsack needs."""

    atoms: Atoms
    level: FloatArray  # l_k, ascending
    clean: FloatArray  # c_k
    attacked: FloatArray  # a_k
    c0: float
    a_inf: float
    cum_clean: FloatArray  # S_k = sum_{i <= k} c_i
    tail_clean: FloatArray  # T_k = sum_{i >= k} c_i, with T_K = 0 appended
    cum_attacked: FloatArray  # sum_{i <= k} a_i
    tail_attacked: FloatArray  # sum_{i >= k} a_i, with 0 appended
    slack: float  # absolute slack for underflowed masses

    @staticmethod
    def of(atoms: Atoms) -> Prepared:
        c, a = atoms.clean, atoms.attacked
        return Prepared(
            atoms=atoms,
            level=atoms.log_ratio,
            clean=c,
            attacked=a,
            c0=atoms.clean_zero_ratio,
            a_inf=atoms.attacked_infinite_ratio,
            cum_clean=np.cumsum(c),
            tail_clean=np.append(np.cumsum(c[::-1])[::-1], 0.0),
            cum_attacked=np.cumsum(a),
            tail_attacked=np.append(np.cumsum(a[::-1])[::-1], 0.0),
            slack=TINY * (atoms.size + 2),
        )


# ----------------------------------------------------------------------------------------------------------
# e = 0: the fractional knapsack (THEORY 4), a lower bound on the worst case
# ----------------------------------------------------------------------------------------------------------


def knapsack_lower(prep: Prepared, p: FloatArray) -> FloatArray:
    """Lower bound on the e = 0 worst case: fill clean mass p by ascending ratio (THEORY 4)."""
    out = np.zeros(p.shape)
    high = p > 0.5
    lo_idx, hi_idx = np.flatnonzero(~high), np.flatnonzero(high)
    if lo_idx.size:
        out[lo_idx] = _knapsack_from_below(prep, p[lo_idx])
    if hi_idx.size:
        out[hi_idx] = _knapsack_from_above(prep, 1.0 - p[hi_idx])
    return out


def _knapsack_from_below(prep: Prepared, p: FloatArray) -> FloatArray:
    budget = p * (1.0 - ETA) - prep.slack - prep.c0  # clean mass left after the ratio-0 atoms
    k = prep.clean.size
    j = np.minimum(np.searchsorted(prep.cum_clean, budget, side="left"), k - 1)
    before = np.where(j > 0, prep.cum_clean[np.maximum(j - 1, 0)], 0.0)
    adv_before = np.where(j > 0, prep.cum_attacked[np.maximum(j - 1, 0)], 0.0)
    rem = np.clip(budget - before, 0.0, None)
    rem = np.minimum(rem, prep.clean[j])
    with np.errstate(divide="ignore"):
        part = np.exp(np.log(rem) + prep.atoms.log_attacked[j] - prep.atoms.log_clean[j])
    adv = (adv_before + part) * (1.0 - ETA)
    result: FloatArray = np.where(budget > 0.0, np.clip(adv, 0.0, 1.0), 0.0)
    return result


def _knapsack_from_above(prep: Prepared, q: FloatArray) -> FloatArray:
    excluded = q * (1.0 + ETA) + prep.slack  # clean mass left out of the set, widened
    t = prep.tail_clean  # length K + 1, descending, t[K] = 0
    k = prep.clean.size
    # boundary atom j: T_{j+1} < excluded <= T_j (atoms above j are fully out)
    j = k - np.searchsorted(t[::-1], excluded, side="left")
    j = np.clip(j, 0, k - 1)
    all_out = excluded >= t[0]
    rem = np.clip(excluded - t[j + 1], 0.0, None)
    rem = np.minimum(rem, prep.clean[j])
    with np.errstate(divide="ignore"):
        part = np.exp(np.log(rem) + prep.atoms.log_attacked[j] - prep.atoms.log_clean[j])
    missing = (prep.a_inf + prep.tail_attacked[j + 1] + part) * (1.0 + ETA) + prep.slack
    adv = np.nextafter(1.0 - missing, -np.inf)
    result: FloatArray = np.where(all_out, 0.0, np.clip(adv, 0.0, 1.0))
    return result


# ----------------------------------------------------------------------------------------------------------
# e > 0: the level t that puts clean mass p in the set
# ----------------------------------------------------------------------------------------------------------


def anchors(prep: Prepared, p: FloatArray) -> IntArray:
    """The knapsack boundary atom for clean mass p: the first k with C0 + S_k >= p."""
    k = prep.clean.size
    j: IntArray = np.minimum(np.searchsorted(prep.cum_clean, p - prep.c0, side="left"), k - 1)
    return j


def _offsets(prep: Prepared, j: IntArray, e: FloatArray) -> FloatArray:
    """(l_j - l_k) / e for every input and atom."""
    diff = prep.level[j][:, None] - prep.level[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        d: FloatArray = diff / e[:, None]
    d[diff == 0.0] = 0.0
    return d


def level_bracket(prep: Prepared, p: FloatArray, j: IntArray, e: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Bounds t_lo <= t* <= t_hi on the level from the knapsack structure (1 probit unit of slack)."""
    level_j = prep.level[j]
    q = 1.0 - p
    total = 1.0 - prep.c0
    with np.errstate(divide="ignore", invalid="ignore"):
        # all atoms: F >= C0 + (1 - C0) Phi(t + (l_j - l_max)/e) and <= C0 + (1 - C0) Phi(t + (l_j - l_min)/e)
        base = ndtri(np.clip((p - prep.c0) / total, 0.0, 1.0))
        hi_all = (prep.level[-1] - level_j) / e + base
        lo_all = (prep.level[0] - level_j) / e + base
        # atoms up to j: F >= C0 + S_j Phi(t) ; atoms from j: F <= C0 + S_{j-1} + T_j Phi(t)
        s_j = prep.cum_clean[j]
        hi_j = ndtri(np.clip((p - prep.c0) / s_j, 0.0, 1.0))
        t_j = prep.tail_clean[j]
        lo_j = ndtri(np.clip((t_j - q) / t_j, 0.0, 1.0))
    hi = np.fmin(np.where(np.isnan(hi_all), np.inf, hi_all), np.where(np.isnan(hi_j), np.inf, hi_j))
    lo = np.fmax(np.where(np.isnan(lo_all), -np.inf, lo_all), np.where(np.isnan(lo_j), -np.inf, lo_j))
    # a last resort that always holds: every s_k beyond +-40 makes F = 1 or F = C0 in float64
    span_hi = (prep.level[-1] - level_j) / e + 40.0
    span_lo = (prep.level[0] - level_j) / e - 40.0
    hi = np.where(np.isfinite(hi), hi + 1.0, span_hi)
    lo = np.where(np.isfinite(lo), lo - 1.0, span_lo)
    hi = np.minimum(hi, span_hi)
    lo = np.maximum(lo, span_lo)
    lo = np.minimum(lo, hi - 1.0)
    return lo, hi


def clean_side(
    prep: Prepared, p: FloatArray, upper: bool, t: FloatArray, e: FloatArray, j: IntArray
) -> tuple[BoolArray, FloatArray, FloatArray]:
    """Is F(t) <= p certainly (the safe side)? Also a probit residual increasing in t and its slope."""
    s = t[:, None] + _offsets(prep, j, e)
    slope_f = (prep.clean * _pdf(s)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # the residual vanishes where the widened test flips, so Newton aims at the safe edge itself
        if not upper:
            f = prep.c0 + (prep.clean * ndtr(s)).sum(axis=1)
            safe = f * (1.0 + ETA) + prep.slack <= p
            z = ndtri(np.minimum(f, 1.0))
            res = z - ndtri((p - prep.slack) / (1.0 + ETA))
        else:
            q = 1.0 - p
            qf = (prep.clean * ndtr(-s)).sum(axis=1)
            safe = qf * (1.0 - ETA) - prep.slack >= q
            z = -ndtri(np.minimum(qf, 1.0))
            res = ndtri(np.minimum((q + prep.slack) / (1.0 - ETA), 1.0)) + z
        dres = slope_f / _pdf(z)
    return safe, res, dres


def solve_level(
    prep: Prepared,
    p: FloatArray,
    upper: bool,
    e: FloatArray,
    j: IntArray,
    t0: FloatArray | None = None,
) -> tuple[FloatArray, BoolArray]:
    """The largest evaluated t with F(t) <= p (certainly), to within ~1e-12: returns (t, ok)."""
    lo, hi = level_bracket(prep, p, j, e)
    x0 = 0.5 * (lo + hi) if t0 is None else t0

    def evaluate(x: FloatArray, idx: IntArray) -> tuple[BoolArray, FloatArray, FloatArray]:
        return clean_side(prep, p[idx], upper, x, e[idx], j[idx])

    return find_boundary(evaluate, x0, lo, hi, tol_abs=1e-12, tol_rel=4e-15)


def attacked_mass(
    prep: Prepared, t: FloatArray, e: FloatArray, j: IntArray, complement: bool
) -> FloatArray:
    """G(t) (or 1 - G(t) when ``complement``) as computed, without margins."""
    s = t[:, None] + _offsets(prep, j, e) - e[:, None]
    if complement:
        out: FloatArray = prep.a_inf + (prep.attacked * ndtr(-s)).sum(axis=1)
    else:
        out = (prep.attacked * ndtr(s)).sum(axis=1)
    return out


def attacked_lower(prep: Prepared, t: FloatArray, e: FloatArray, j: IntArray) -> FloatArray:
    """A lower bound on G(t): the computed value less its error budget (complement form above 1/2)."""
    g = attacked_mass(prep, t, e, j, complement=False)
    out = np.clip(g * (1.0 - ETA) - prep.slack, 0.0, None)
    big = np.flatnonzero(g > 0.5)
    if big.size:
        gc = attacked_mass(prep, t[big], e[big], j[big], complement=True)
        out[big] = np.clip(np.nextafter(1.0 - (gc * (1.0 + ETA) + prep.slack), -np.inf), 0.0, 1.0)
    return out


# ----------------------------------------------------------------------------------------------------------
# The radius: the largest e whose worst case is still >= tau
# ----------------------------------------------------------------------------------------------------------


def radius_side(
    prep: Prepared,
    p: FloatArray,
    upper: BoolArray,
    tau: float,
    e: FloatArray,
    j: IntArray,
    t: FloatArray,
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray]:
    """At image shift e: (certified for sure, residual increasing in e, its slope, the level t used)."""
    t_new = np.empty_like(t)
    ok = np.ones(t.shape, dtype=bool)
    for flag in (False, True):
        idx = np.flatnonzero(upper == flag)
        if idx.size:
            t_new[idx], ok[idx] = solve_level(prep, p[idx], flag, e[idx], j[idx], t[idx])
    offs = _offsets(prep, j, e)
    s = t_new[:, None] + offs
    sg = s - e[:, None]
    pdf_f = prep.clean * _pdf(s)
    pdf_g = prep.attacked * _pdf(sg)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ds = np.where(offs != 0.0, -offs / e[:, None], 0.0)  # d s_k / d e at fixed t
        f_t = pdf_f.sum(axis=1)
        f_e = (pdf_f * ds).sum(axis=1)
        g_t = pdf_g.sum(axis=1)
        g_e = (pdf_g * (ds - 1.0)).sum(axis=1)
        dg_de = g_e - g_t * f_e / f_t  # total derivative along F(t, e) = p
    if tau <= 0.5:
        g = (prep.attacked * ndtr(sg)).sum(axis=1)
        safe = (g * (1.0 - ETA) - prep.slack >= tau) & ok
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = ndtri(np.minimum(g, 1.0))
            res = ndtri(min((tau + prep.slack) / (1.0 - ETA), 1.0)) - z
            dres = -dg_de / _pdf(z)
    else:
        gc = prep.a_inf + (prep.attacked * ndtr(-sg)).sum(axis=1)
        safe = (gc * (1.0 + ETA) + prep.slack <= 1.0 - tau) & ok
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = ndtri(np.minimum(gc, 1.0))
            res = z - ndtri(((1.0 - tau) - prep.slack) / (1.0 + ETA))
            dres = -dg_de / _pdf(z)
    return safe, res, dres, t_new


def solve_radius(
    prep: Prepared, p: FloatArray, tau: float, e_hi: FloatArray, e0: FloatArray
) -> FloatArray:
    """Largest evaluated e in [0, e_hi) certified at ``tau``; inputs must be certified at e = 0."""
    upper = p > 0.5
    j = anchors(prep, p)
    t_state = np.full(p.shape, np.nan)
    first = np.ones(p.shape, dtype=bool)

    def evaluate(x: FloatArray, idx: IntArray) -> tuple[BoolArray, FloatArray, FloatArray]:
        start = t_state[idx]
        cold = first[idx]
        if cold.any():
            lo, hi = level_bracket(prep, p[idx], j[idx], x)
            start = np.where(cold, 0.5 * (lo + hi), start)
        safe, res, dres, t_new = radius_side(prep, p[idx], upper[idx], tau, x, j[idx], start)
        t_state[idx] = t_new
        first[idx] = False
        return safe, res, dres

    lo = np.zeros(p.shape)
    e, ok = find_boundary(evaluate, e0, lo, e_hi.copy(), tol_abs=1e-13, tol_rel=1e-13, lo_verified=True)
    return e


# ----------------------------------------------------------------------------------------------------------
# A vectorised safeguarded Newton search for the edge of a monotone "safe" region
# ----------------------------------------------------------------------------------------------------------

Evaluator = Callable[[FloatArray, IntArray], tuple[BoolArray, FloatArray, FloatArray]]


def find_boundary(
    evaluate: Evaluator,
    x0: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    tol_abs: float,
    tol_rel: float,
    lo_verified: bool = False,
) -> tuple[FloatArray, BoolArray]:
    """Largest point evaluated as safe, to within tol, for a safe region {x <= x*} (per element).

    ``evaluate(x, idx)`` says which x are safe and gives a residual increasing through x* with its slope.
    Newton steps are taken when they stay inside the bracket and shrink it, bisection otherwise; near the
    edge a step is pushed past x* by tol so that the bracket closes from both sides. A safe point from which
    Newton puts the edge less than tol away also ends the search (accuracy; soundness needs only "safe").
    Only points evaluated as safe are returned (``lo_verified`` declares the initial ``lo`` safe). ``ok`` is
    False where no safe point was found even after widening the bracket downwards.
    """
    lo, hi = lo.astype(np.float64).copy(), hi.astype(np.float64).copy()
    width0 = np.maximum(hi - lo, 1.0)
    verified = np.full(lo.shape, lo_verified, dtype=bool)
    x = np.where((x0 > lo) & (x0 < hi), x0, lo + 0.5 * (hi - lo))
    last_step = hi - lo  # rtsafe: a Newton step must at least halve the step before the last one
    prev_step = hi - lo
    converged = np.zeros(lo.shape, dtype=bool)  # safe, and Newton puts the edge within tol above it
    for _ in range(_MAX_ITER):
        tol = tol_abs + tol_rel * np.maximum(np.abs(lo), np.abs(hi))
        done = verified & ((hi - lo <= tol) | converged)
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        xi = x[idx]
        safe, res, dres = evaluate(xi, idx)
        lo_i = np.where(safe, xi, lo[idx])
        hi_i = np.where(safe, hi[idx], xi)
        ver_i = verified[idx] | safe
        t_i = tol[idx]
        # nothing safe yet and the bracket collapsed: widen downwards
        lost = ~ver_i & (hi_i - lo_i <= t_i)
        width0[idx] = np.where(lost, 2.0 * width0[idx], width0[idx])
        lo_i = np.where(lost, lo_i - width0[idx], lo_i)
        lo[idx], hi[idx], verified[idx] = lo_i, hi_i, ver_i
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            xn = xi - res / dres
        converged[idx] = safe & np.isfinite(xn) & (xn - xi <= t_i)
        # push past the edge by tol so that the bracket closes from both sides
        xn = np.where(safe, np.maximum(xn, xi + t_i), np.minimum(xn, xi - t_i))
        step = np.abs(xn - xi)
        good = np.isfinite(xn) & (xn > lo_i) & (xn < hi_i) & (step <= 0.5 * prev_step[idx])
        mid = lo_i + 0.5 * (hi_i - lo_i)
        xn = np.where(good, xn, mid)
        xn = np.where(~ver_i & (hi_i - lo_i <= t_i), lo_i, xn)  # confirm the low end before stopping
        prev_step[idx] = last_step[idx]
        last_step[idx] = np.abs(xn - xi)
        x[idx] = xn
    return lo, verified
