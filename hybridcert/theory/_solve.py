"""Vectorised, conservative solvers for the joint Neyman-Pearson certificate (docs/theory.md §4 and §6).

Notation (docs/theory.md §4): atoms k with levels l_k = log gamma1_k, clean masses c_k, attacked masses a_k; C0 the
clean mass with ratio 0, A_inf the attacked mass with ratio +infinity; e = eps / sigma. The worst-case set
at level u is {U <= (u - l_k)/e + e/2} inside atom k. Each input carries an anchor atom j and the level is
written t = (u - l_j)/e + e/2, so that atom k sits at s_k = t + (l_j - l_k)/e. Anchoring at the knapsack
boundary keeps s_k accurate when e is tiny and the (l_j - l_k)/e are huge.

  F(t) = C0 + sum_k c_k Phi(s_k)          clean mass of the set,    Q = 1 - F = sum_k c_k Phi(-s_k)
  G(t) = sum_k a_k Phi(s_k - e)           attacked mass of the set, 1 - G = A_inf + sum_k a_k Phi(e - s_k)

Soundness (docs/theory.md §6): every float evaluation carries a running bound on its rounding error (the atoms'
mass and level errors from ``Atoms``, the error of each argument s_k propagated through Phi with the
inverse Mills ratio, ndtr's own ulps, the sums), and a side is decided only on the widened value. The solvers
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

EPS = float(np.finfo(np.float64).eps)
TINY = 1e-300  # absolute slack per atom for masses that underflow to 0
_INV_SQRT_2PI = 0.3989422804014327
_MAX_ITER = 400


def _pdf(x: FloatArray) -> FloatArray:
    with np.errstate(over="ignore", under="ignore"):  # |x| beyond 1e154: x * x = inf and the density is 0
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
    clean_err: FloatArray  # relative error of each c_k
    attacked_err: FloatArray  # relative error of each a_k
    special_err: float  # relative error of C0 and A_inf
    sum_err: float  # relative error of a sum of K positive terms, and of cumulative sums

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
            clean_err=atoms.clean_error + 2 * EPS,
            attacked_err=atoms.attacked_error + 2 * EPS,
            special_err=atoms.special_error + 2 * EPS,
            sum_err=(atoms.size + 4) * EPS,
        )


# ----------------------------------------------------------------------------------------------------------
# e = 0: the fractional knapsack (docs/theory.md §4), a lower bound on the worst case
# ----------------------------------------------------------------------------------------------------------


def knapsack_lower(prep: Prepared, p: FloatArray) -> FloatArray:
    """Lower bound on the e = 0 worst case: fill clean mass p by ascending ratio (docs/theory.md §4)."""
    out = np.zeros(p.shape)
    high = p > 0.5
    lo_idx, hi_idx = np.flatnonzero(~high), np.flatnonzero(high)
    if lo_idx.size:
        out[lo_idx] = _knapsack_from_below(prep, p[lo_idx])
    if hi_idx.size:
        out[hi_idx] = _knapsack_from_above(prep, 1.0 - p[hi_idx])
    return out


def _ratio_part(prep: Prepared, rem: FloatArray, j: IntArray, upper: bool) -> FloatArray:
    """rem * a_j / c_j computed in log space, widened down (upper=False) or up by its rounding error."""
    la, lc = prep.atoms.log_attacked[j], prep.atoms.log_clean[j]
    with np.errstate(divide="ignore", under="ignore", over="ignore"):
        lr = np.where(rem > 0, np.log(np.where(rem > 0, rem, 1.0)), 0.0)
        part = np.exp(lr + la - lc)
        rel = prep.clean_err[j] + prep.attacked_err[j] + 4 * EPS * (np.abs(lr) + np.abs(la) + np.abs(lc) + 2.0)
    out: FloatArray = np.where(rem > 0, part * (1.0 + rel if upper else 1.0 - rel), 0.0)
    return out


def _knapsack_from_below(prep: Prepared, p: FloatArray) -> FloatArray:
    """Fill clean mass p: atoms below the boundary j whole, then rem of atom j (lower bound on the adv mass)."""
    c_rel = float(prep.clean_err.max()) + prep.sum_err
    a_rel = float(prep.attacked_err.max()) + prep.sum_err
    budget = p - prep.c0 * (1.0 + prep.special_err) - prep.slack - 2 * EPS * p
    k = prep.clean.size
    j = np.minimum(np.searchsorted(prep.cum_clean, budget, side="left"), k - 1)
    before = np.where(j > 0, prep.cum_clean[np.maximum(j - 1, 0)], 0.0)
    adv_before = np.where(j > 0, prep.cum_attacked[np.maximum(j - 1, 0)], 0.0)
    rem = budget - before * (1.0 + c_rel)  # clean mass certainly left for atom j (and above)
    # mass beyond atom j would go to higher ratios, so rem * ratio_j stays a lower bound; a (tiny) negative
    # rem takes mass back from atom j - 1, at a ratio no larger than ratio_j
    gain = _ratio_part(prep, np.maximum(rem, 0.0), j, upper=False)
    loss = _ratio_part(prep, np.maximum(-rem, 0.0), np.maximum(j - 1, 0), upper=True)
    adv = adv_before * (1.0 - a_rel) + gain - loss
    result: FloatArray = np.where(budget > 0.0, np.clip(adv * (1.0 - 2 * EPS), 0.0, 1.0), 0.0)
    return result


def _knapsack_from_above(prep: Prepared, q: FloatArray) -> FloatArray:
    """Leave out clean mass q from the top ratios (lower bound on the adv mass through its complement)."""
    c_rel = float(prep.clean_err.max()) + prep.sum_err
    a_rel = float(prep.attacked_err.max()) + prep.sum_err
    t = prep.tail_clean  # length K + 1, descending, t[K] = 0
    k = prep.clean.size
    excluded = q + prep.slack + 2 * EPS * q
    # boundary atom j: T_{j+1} < excluded <= T_j (atoms above j are fully out)
    j = np.clip(k - np.searchsorted(t[::-1], excluded, side="left"), 0, k - 1)
    all_out = excluded >= t[0] * (1.0 - c_rel)
    above = t[j + 1]
    rem = excluded - above * (1.0 - c_rel)  # clean mass of atom j (and below) certainly left out
    # excluded mass beyond atom j comes from lower ratios, so rem * ratio_j stays an upper bound
    part = _ratio_part(prep, np.maximum(rem, 0.0), j, upper=True)
    missing = prep.a_inf * (1.0 + prep.special_err) + prep.tail_attacked[j + 1] * (1.0 + a_rel) + part
    missing = missing * (1.0 + 2 * EPS) + prep.slack
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


def _arguments(prep: Prepared, t: FloatArray, e: FloatArray, j: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """s_k = t + (l_j - l_k)/e, a bound on its absolute rounding error, and the offsets (l_j - l_k)/e."""
    offs = _offsets(prep, j, e)
    s = t[:, None] + offs
    lerr = prep.atoms.level_error
    own = np.arange(prep.level.size)[None, :] == j[:, None]  # the anchor's offset is exactly 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lvl = (lerr[j][:, None] + lerr[None, :]) / e[:, None]
        s_err = EPS * (np.abs(s) + 2.0 * np.abs(offs)) + np.where(own, 0.0, lvl)
    return s, s_err, offs


def _mixture(
    weights: FloatArray, weight_err: FloatArray, x: FloatArray, x_err: FloatArray, sum_err: float
) -> tuple[FloatArray, FloatArray]:
    """sum_k w_k Phi(x_k) per row, and a bound on the distance from the exact value.

    log Phi is concave with slope h = phi/Phi (the inverse Mills ratio), and h grows by at most 1 per unit,
    so an argument error d moves Phi by a relative factor of at most exp((h + d) d).
    """
    cdf = ndtr(x)
    terms = weights * cdf
    total = terms.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        h = np.where(cdf > 0.0, _pdf(x) / cdf, 0.0)
        shift = np.where(h > 0.0, np.expm1((h + x_err) * x_err), 0.0)
        rel = weight_err + shift + 4 * EPS
        err = np.where(terms > 0.0, terms * rel, 0.0).sum(axis=1) + total * sum_err
    return total, err


def clean_side(
    prep: Prepared, p: FloatArray, upper: bool, t: FloatArray, e: FloatArray, j: IntArray
) -> tuple[BoolArray, FloatArray, FloatArray]:
    """Is F(t) <= p certainly (the safe side)? Also a probit residual increasing in t and its slope."""
    s, s_err, _ = _arguments(prep, t, e, j)
    slope_f = (prep.clean * _pdf(s)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # the residual vanishes where the widened test flips, so Newton aims at the safe edge itself
        if not upper:
            tot, err = _mixture(prep.clean, prep.clean_err, s, s_err, prep.sum_err)
            f = prep.c0 + tot
            err = err + prep.c0 * prep.special_err + 2 * EPS * f + prep.slack
            safe = f + err <= p
            z = ndtri(np.minimum(f, 1.0))
            res = z - ndtri(p - err)
        else:
            q = 1.0 - p
            qf, err = _mixture(prep.clean, prep.clean_err, -s, s_err, prep.sum_err)
            err = err + prep.slack
            safe = qf - err >= q
            z = -ndtri(np.minimum(qf, 1.0))
            res = ndtri(np.minimum(q + err, 1.0)) + z
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


def attacked_bound(
    prep: Prepared, t: FloatArray, e: FloatArray, j: IntArray, complement: bool
) -> tuple[FloatArray, FloatArray]:
    """G(t), or 1 - G(t) when ``complement``, as computed, with a bound on its error."""
    s, s_err, _ = _arguments(prep, t, e, j)
    sg = s - e[:, None]
    sg_err = s_err + EPS * (np.abs(sg) + e[:, None])
    if not complement:
        return _mixture(prep.attacked, prep.attacked_err, sg, sg_err, prep.sum_err)
    tot, err = _mixture(prep.attacked, prep.attacked_err, -sg, sg_err, prep.sum_err)
    gc = prep.a_inf + tot
    return gc, err + prep.a_inf * prep.special_err + 2 * EPS * gc + prep.slack


def attacked_lower(prep: Prepared, t: FloatArray, e: FloatArray, j: IntArray) -> FloatArray:
    """A lower bound on G(t): the computed value less its error bound (complement form above 1/2)."""
    g, err = attacked_bound(prep, t, e, j, complement=False)
    out = np.clip(g - err - prep.slack, 0.0, None)
    big = np.flatnonzero(g > 0.5)
    if big.size:
        gc, err_c = attacked_bound(prep, t[big], e[big], j[big], complement=True)
        out[big] = np.clip(np.nextafter(1.0 - (gc + err_c), -np.inf), 0.0, 1.0)
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
    s, _, offs = _arguments(prep, t_new, e, j)
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
        g, err = attacked_bound(prep, t_new, e, j, complement=False)
        safe = (g - err - prep.slack >= tau) & ok
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = ndtri(np.minimum(g, 1.0))
            res = ndtri(np.minimum(tau + err + prep.slack, 1.0)) - z
            dres = -dg_de / _pdf(z)
    else:
        gc, err = attacked_bound(prep, t_new, e, j, complement=True)
        safe = (gc + err <= 1.0 - tau) & ok
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = ndtri(np.minimum(gc, 1.0))
            res = z - ndtri((1.0 - tau) - err)
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
    e, _ = find_boundary(evaluate, e0, lo, e_hi.copy(), tol_abs=1e-13, tol_rel=1e-13, lo_verified=True)
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
