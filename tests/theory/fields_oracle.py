"""Brute force for heterogeneous arities (docs/theory.md §9), independent of ``hybridcert.theory``.

Every subset S of the fields with |S| <= d is enumerated, and for each every outcome (a, b or c at each field
of S, 3^|S| outcomes) with its exact rational clean and attacked mass from the §3 table at that field's own
arity. The worst case of S solves the joint Neyman-Pearson problem of §4 at ``DPS`` digits (outcomes of equal
exact ratio share one Gaussian evaluation, which changes no value); the certificate is the minimum over S.
No grouping by arity, no pruning, no shared code with the engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from fractions import Fraction

import mpmath as mp
from scipy.optimize import brentq
from scipy.special import ndtr

DPS = 30


def masses(kernel: str, v: int, beta: float) -> tuple[Fraction, Fraction, Fraction]:
    b = Fraction(beta)
    if kernel == "uniform-other":
        return (1 - b, b / (v - 1), b * (v - 2) / (v - 1))
    if kernel == "uniform-all":
        return (1 - b + b / v, b / v, b * (v - 2) / v)
    return (1 - b, Fraction(0), b)


class Subset:
    """The outcomes of one subset of changed fields, grouped by exact ratio."""

    def __init__(self, kernel: str, arities: Sequence[int], beta: float) -> None:
        tables = [masses(kernel, v, beta) for v in arities]
        groups: dict[Fraction, list[Fraction]] = {}
        c0 = a_inf = Fraction(0)
        for outcome in itertools.product(range(3), repeat=len(arities)):
            c = a = Fraction(1)
            for (pa, pb, pc), z in zip(tables, outcome, strict=True):
                c *= (pa, pb, pc)[z]
                a *= (pb, pa, pc)[z]  # the attacked law swaps a and b
            if c == 0 and a == 0:
                continue
            if a == 0:
                c0 += c
            elif c == 0:
                a_inf += a
            else:
                slot = groups.setdefault(a / c, [Fraction(0), Fraction(0)])
                slot[0] += c
                slot[1] += a
        self.ratios = sorted(groups)
        self.clean = [groups[r][0] for r in self.ratios]
        self.attacked = [groups[r][1] for r in self.ratios]
        self.c0, self.a_inf = c0, a_inf

    def knapsack(self, p: Fraction) -> Fraction:
        if p >= 1:
            return 1 - self.a_inf
        room = p - self.c0
        if room <= 0:
            return Fraction(0)
        value = Fraction(0)
        for c, a in zip(self.clean, self.attacked, strict=True):
            if room >= c:
                room, value = room - c, value + a
            else:
                return value + a * room / c
        return value

    def worst_case(self, p: float, e: float) -> mp.mpf:
        """p_adv of this subset at clean lower bound p and e = eps / sigma, at DPS digits."""
        pf = Fraction(p)
        if e == 0 or pf == 1 or pf <= self.c0 or not self.ratios:
            return _mpf(self.knapsack(pf)) if e == 0 or pf <= self.c0 else _mpf(1 - self.a_inf)
        with mp.workdps(DPS + 10):
            lv = [mp.log(_mpf(r)) for r in self.ratios]
            cl = [_mpf(c) for c in self.clean]
            at = [_mpf(a) for a in self.attacked]
            em, pm, c0 = mp.mpf(e), _mpf(pf), _mpf(self.c0)

            def f(u: mp.mpf) -> mp.mpf:
                return c0 + mp.fsum(c * mp.ncdf((u - x) / em + em / 2) for x, c in zip(lv, cl, strict=True))

            def df(u: mp.mpf) -> mp.mpf:
                return mp.fsum(c * mp.npdf((u - x) / em + em / 2) for x, c in zip(lv, cl, strict=True)) / em

            u = mp.mpf(_float_level(lv, cl, float(c0), p, e))
            for _ in range(30):
                slope = df(u)
                if slope == 0:
                    break
                step = (f(u) - pm) / slope
                u -= step
                if abs(step) < mp.mpf(10) ** (-DPS - 5) * (1 + abs(u)):
                    break
            assert abs(f(u) - pm) < mp.mpf(10) ** (-DPS), "level did not converge"
            return +mp.fsum(a * mp.ncdf((u - x) / em - em / 2) for x, a in zip(lv, at, strict=True))


def _float_level(lv: list[mp.mpf], cl: list[mp.mpf], c0: float, p: float, e: float) -> float:
    x = [float(v) for v in lv]
    c = [float(v) for v in cl]

    def f(u: float) -> float:
        return c0 + sum(ci * float(ndtr((u - xi) / e + e / 2)) for xi, ci in zip(x, c, strict=True)) - p

    lo, hi = min(x) - 40 * e - 40, max(x) + 40 * e + 40
    return float(brentq(f, lo, hi, xtol=1e-15, rtol=1e-15))


def _mpf(x: Fraction) -> mp.mpf:
    return mp.mpf(x.numerator) / x.denominator


class BruteForce:
    """min over every subset S of at most d fields of the subset's worst case."""

    def __init__(self, kernel: str, arities: Sequence[int], beta: float, sigma: float) -> None:
        self.kernel, self.arities, self.beta, self.sigma = kernel, list(arities), beta, sigma
        self._cache: dict[tuple[int, ...], Subset] = {}

    def subsets(self, d: int) -> list[Subset]:
        out = []
        for size in range(min(d, len(self.arities)) + 1):
            for s in itertools.combinations(range(len(self.arities)), size):
                if s not in self._cache:
                    self._cache[s] = Subset(self.kernel, [self.arities[i] for i in s], self.beta)
                out.append(self._cache[s])
        return out

    def worst_case(self, p: float, d: int, eps: float) -> mp.mpf:
        with mp.workdps(DPS):
            return min(s.worst_case(p, eps / self.sigma) for s in self.subsets(d))

    def knapsack(self, p: float, d: int) -> Fraction:
        return min(s.knapsack(Fraction(p)) for s in self.subsets(d))

