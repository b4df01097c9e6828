"""An independent high-precision oracle for docs/theory.md §3 and §4, written with mpmath only.

It shares no code with ``hybridcert.theory``: atoms are enumerated from the docs/theory.md §3 table with exact binomial
coefficients at ``DPS`` digits (no merging by level, no log-space tricks), the worst case solves F(u) = p_A by
bracketed root finding, and the radius solves the two equations F(u, e) = p_A, G(u, e) = tau together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import mpmath as mp

P = ParamSpec("P")
T = TypeVar("T")

DPS = 40


def _at_dps(fun: Callable[P, T]) -> Callable[P, T]:
    """Run at DPS digits whatever the global mpmath precision is (other tests may change it)."""

    @functools.wraps(fun)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with mp.workdps(DPS):
            return fun(*args, **kwargs)

    return wrapper


@dataclass
class MpAtoms:
    levels: list[mp.mpf]  # finite log-ratios (not merged)
    clean: list[mp.mpf]
    attacked: list[mp.mpf]
    c0: mp.mpf  # clean mass with attacked mass 0
    a_inf: mp.mpf  # attacked mass with clean mass 0


@_at_dps
def position_masses(kernel: str, vocab: int, beta: float) -> tuple[mp.mpf, mp.mpf, mp.mpf]:
    v, b = mp.mpf(vocab), mp.mpf(beta)
    if kernel == "uniform-other":
        return (1 - b, b / (v - 1), b * (v - 2) / (v - 1))
    if kernel == "uniform-all":
        return (1 - b + b / v, b / v, b * (v - 2) / v)
    if kernel == "absorb":
        return (1 - b, mp.mpf(0), b)
    raise ValueError(kernel)


@_at_dps
def atoms(kernel: str, vocab: int, beta: float, d: int) -> MpAtoms:
    pa, pb, pc = position_masses(kernel, vocab, beta)
    merged: dict[int, list[mp.mpf]] = {}  # atoms with equal nb - na have equal ratio (pa/pb)^(nb - na)
    c0 = mp.mpf(0)
    a_inf = mp.mpf(0)
    for na in range(d + 1):
        for nb in range(d + 1 - na):
            nc = d - na - nb
            mult = mp.factorial(d) / (mp.factorial(na) * mp.factorial(nb) * mp.factorial(nc))
            pcl = mult * pa**na * pb**nb * pc**nc
            pat = mult * pb**na * pa**nb * pc**nc
            if pcl == 0 and pat == 0:
                continue
            if pat == 0:
                c0 += pcl
            elif pcl == 0:
                a_inf += pat
            else:
                key = 0 if pa == pb else nb - na
                acc = merged.setdefault(key, [mp.mpf(0), mp.mpf(0)])
                acc[0] += pcl
                acc[1] += pat
    clean = [v[0] for v in merged.values()]
    attacked = [v[1] for v in merged.values()]
    levels = [mp.log(w) - mp.log(c) for c, w in zip(clean, attacked, strict=True)]
    return MpAtoms(levels, clean, attacked, c0, a_inf)


@_at_dps
def _f(a: MpAtoms, u: mp.mpf, e: mp.mpf) -> mp.mpf:
    return a.c0 + mp.fsum(c * mp.ncdf((u - lv) / e + e / 2) for lv, c in zip(a.levels, a.clean, strict=True))


@_at_dps
def _g(a: MpAtoms, u: mp.mpf, e: mp.mpf) -> mp.mpf:
    return mp.fsum(w * mp.ncdf((u - lv) / e - e / 2) for lv, w in zip(a.levels, a.attacked, strict=True))


def _bisect(fun, lo: mp.mpf, hi: mp.mpf, target: mp.mpf, iters: int = 400) -> mp.mpf:
    """Root of the increasing function fun - target in [lo, hi]: Illinois (regula falsi) with bisection steps,
    to ~DPS - 8 digits."""
    flo, fhi = fun(lo) - target, fun(hi) - target
    side = 0
    tol = mp.mpf(10) ** (-DPS + 8)
    for it in range(iters):
        if hi - lo <= tol * (1 + abs(lo) + abs(hi)):
            break
        if it % 4 == 3 or fhi == flo:
            x = (lo + hi) / 2
        else:
            x = (lo * fhi - hi * flo) / (fhi - flo)
            if not lo < x < hi:
                x = (lo + hi) / 2
        fx = fun(x) - target
        if fx < 0:
            lo, flo = x, fx
            if side == -1:
                fhi /= 2
            side = -1
        else:
            hi, fhi = x, fx
            if side == 1:
                flo /= 2
            side = 1
    return (lo + hi) / 2


@_at_dps
def _level(a: MpAtoms, p: mp.mpf, e: mp.mpf) -> mp.mpf:
    """The level u with F(u) = p, for C0 < p < 1 and e > 0."""
    lo_l = min(a.levels) if a.levels else mp.mpf(0)
    hi_l = max(a.levels) if a.levels else mp.mpf(0)
    span = 60 * e + 60 / e + 10
    lo, hi = lo_l - span * e, hi_l + span * e
    while _f(a, lo, e) > p:
        lo -= (hi - lo)
    while _f(a, hi, e) < p:
        hi += (hi - lo)
    return _bisect(lambda u: _f(a, u, e), lo, hi, p)


@_at_dps
def knapsack(a: MpAtoms, p: mp.mpf) -> mp.mpf:
    """e = 0: fill clean mass p by ascending ratio (ratio-0 atoms first)."""
    if p <= a.c0:
        return mp.mpf(0)
    left = p - a.c0
    adv = mp.mpf(0)
    for _lv, c, w in sorted(zip(a.levels, a.clean, a.attacked, strict=True), key=lambda t: t[0]):
        if left <= c:
            return adv + w * left / c
        adv += w
        left -= c
    return adv


@_at_dps
def worst_case(kernel: str, vocab: int, beta: float, sigma: float, p: float, d: int, eps: float) -> mp.mpf:
    a = atoms(kernel, vocab, beta, d)
    pm, e = mp.mpf(p), mp.mpf(eps) / mp.mpf(sigma)
    if e == 0:
        return knapsack(a, pm)
    if pm <= a.c0:
        return mp.mpf(0)
    if pm == 1:
        return 1 - a.a_inf
    return _g(a, _level(a, pm, e), e)


@_at_dps
def radius(
    kernel: str, vocab: int, beta: float, sigma: float, p: float, d: int, tau: float, start: float
) -> mp.mpf:
    """Exact r*(d) (no min over d' < d): solves F(u, e) = p, G(u, e) = tau near the float radius ``start``.

    Returns 0 when not certified at eps = 0. The solution is checked: p_adv just below is >= tau and just
    above is < tau, so a wrong start cannot silently give a wrong root.
    """
    a = atoms(kernel, vocab, beta, d)
    pm, tm, s = mp.mpf(p), mp.mpf(tau), mp.mpf(sigma)
    if knapsack(a, pm) < tm:
        return mp.mpf(0)

    def p_adv(e: mp.mpf) -> mp.mpf:
        return _g(a, _level(a, pm, e), e)

    # bracket the radius in e, then bisect p_adv(e) - tau (decreasing in e)
    e0 = mp.mpf(start) / s
    step = max(abs(e0) * mp.mpf("1e-6"), mp.mpf("1e-12"))
    lo, hi = max(e0 - step, mp.mpf(0)), e0 + step
    while lo > 0 and p_adv(lo) < tm:
        lo = max(lo - 4 * (hi - lo), mp.mpf(0))
    while p_adv(hi) >= tm:
        hi = hi + 4 * (hi - lo)
    if lo == 0 and p_adv(mp.mpf("1e-30")) < tm:
        return mp.mpf(0)
    # p_adv decreases in e: bisect on -p_adv; the root is where p_adv = tau
    e_star = _bisect(lambda e: -p_adv(e), lo, hi, -tm, iters=200)
    return e_star * s


@_at_dps
def cohen(p: float, sigma: float, tau: float) -> mp.mpf:
    pm = mp.mpf(p)
    if pm < tau:
        return mp.mpf(0)
    return mp.mpf(sigma) * (mp.sqrt(2) * mp.erfinv(2 * pm - 1) - mp.sqrt(2) * mp.erfinv(2 * mp.mpf(tau) - 1))
