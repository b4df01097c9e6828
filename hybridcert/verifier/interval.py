"""Interval proofs that a reported certificate is sound (docs/theory.md §4 and §6).

The worst case at (d, e), e = eps / sigma, is G(u*) where F(u*) = p_A, and both F and G increase in the level
u (docs/theory.md §4). So exhibiting *any* level u with F(u) <= p_A (a proven upper bound) and G(u) >= tau (a proven
lower bound) proves p_adv(d, eps) >= tau. The witness level comes from an ordinary high-precision root
search; only the two inequalities are proven, in ``mpmath.iv`` interval arithmetic:

* atom masses and likelihood ratios are exact rationals from the docs/theory.md §3 table (``reference``), never
  ``hybridcert.theory``'s atoms, which are what is being checked; they enter as enclosing intervals;
* logs, divisions and sums are ``mpmath.iv`` operations (outward rounding);
* Phi has no interval version in ``mpmath.iv`` (``iv.ncdf`` / ``iv.erfc`` raise), so it is bounded through
  its monotonicity: Phi([a, b]) is inside [Phi(a), Phi(b)], each endpoint evaluated by ``mpmath.ncdf`` with
  64 guard bits and then widened by a relative 2^-(prec - 16). This trusts mpmath's erfc to be accurate to its
  working precision (it is designed to be; the tests compare it with a quadrature at the extremes).

e = 0 is the fractional knapsack, proven in exact rational arithmetic. p_A = 1 (an infinite radius) is
proven exactly too: the worst case is then 1 - A_inf for every eps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from mpmath import iv, mp
from scipy.special import ndtr

from hybridcert.verifier.reference import (
    ExactAtoms,
    NoiseParams,
    choice_atoms,
    exact_atoms,
    field_choices,
    knapsack,
)

DPS = 60  # decimal digits of the interval arithmetic
_WITNESS_DPS = 45


@dataclass(frozen=True)
class Proof:
    """The outcome of proving p_adv(budget, radius) >= tau for one noise configuration and p_A."""

    budget: int
    radius: float  # math.inf for an infinite radius
    tau: float
    proved: bool
    lower_bound: float  # a proven lower bound on the worst case (rounded down to a float); 0.0 if none
    method: str  # "interval", "exact-rational" or "exact-infinite"
    reason: str = ""  # why it is not proved

    def to_dict(self) -> dict[str, object]:
        return {
            "budget": self.budget,
            "radius": None if math.isinf(self.radius) else self.radius,
            "radius_infinite": math.isinf(self.radius),
            "tau": self.tau,
            "proved": self.proved,
            "lower_bound": self.lower_bound,
            "method": self.method,
            "reason": self.reason,
        }


@contextmanager
def _precision(dps: int) -> Iterator[None]:
    """Set mpmath's interval and real precision for the duration (both contexts are global)."""
    old_iv, old_mp = iv.prec, mp.prec
    iv.dps = dps
    mp.prec = iv.prec + 64
    try:
        yield
    finally:
        iv.prec, mp.prec = old_iv, old_mp


def _iv_fraction(x: Fraction) -> mpmath.ctx_iv.ivmpf:
    return iv.mpf(x.numerator) / iv.mpf(x.denominator)


def _iv_float(x: float) -> mpmath.ctx_iv.ivmpf:
    return iv.mpf(Fraction(x).numerator) / iv.mpf(Fraction(x).denominator)


def _ends(x: mpmath.ctx_iv.ivmpf) -> tuple[mpmath.mpf, mpmath.mpf]:
    lo, hi = x._mpi_
    return mp.make_mpf(lo), mp.make_mpf(hi)


def phi_interval(x: mpmath.ctx_iv.ivmpf) -> mpmath.ctx_iv.ivmpf:
    """An interval that contains Phi(y) for every y in the interval x (monotonicity, see module doc)."""
    with mp.workprec(iv.prec + 64):
        a, b = _ends(x)
        margin = mp.mpf(2) ** (16 - iv.prec)
        lo = mp.ncdf(a) * (1 - margin)
        hi = min(mp.mpf(1), mp.ncdf(b) * (1 + margin))
        return iv.mpf([lo, hi])


def _upper(x: mpmath.ctx_iv.ivmpf) -> mpmath.mpf:
    return _ends(x)[1]


def _lower(x: mpmath.ctx_iv.ivmpf) -> mpmath.mpf:
    return _ends(x)[0]


def _float_down(x: mpmath.mpf) -> float:
    """The largest float <= x (mpmath's float conversion rounds to nearest)."""
    f = float(x)
    if mp.mpf(f) > x:
        f = math.nextafter(f, -math.inf)
    return max(f, 0.0)


def _anchor(atoms: ExactAtoms, p_a: Fraction) -> int:
    """The knapsack boundary atom: the first k with C0 + S_k >= p_A."""
    acc = atoms.c0
    for k, c in enumerate(atoms.clean):
        acc += c
        if acc >= p_a:
            return k
    return len(atoms.clean) - 1


def _witness(atoms: ExactAtoms, j: int, p_a: Fraction, e: mpmath.mpf) -> mpmath.mpf:
    """The level t (u = log gamma_j + e t) where F = p_A, by an ordinary root search: bisection at 20 digits
    to about 1e-12, then safeguarded Newton steps at 45 digits. Any error here only costs the proof, never
    its soundness (the witness is checked in interval arithmetic)."""

    def setup(dps: int) -> Callable[[mpmath.mpf], tuple[mpmath.mpf, mpmath.mpf]]:
        with mp.workdps(dps):
            levels = [mp.log(mp.mpf(r.numerator) / r.denominator) for r in atoms.ratio]
            clean = [mp.mpf(c.numerator) / c.denominator for c in atoms.clean]
            c0 = mp.mpf(atoms.c0.numerator) / atoms.c0.denominator
            target = mp.mpf(p_a.numerator) / p_a.denominator
            offs = [(levels[j] - lk) / e + e / 2 for lk in levels]

        def f(t: mpmath.mpf) -> tuple[mpmath.mpf, mpmath.mpf]:
            value = c0 + mp.fsum(c * mp.ncdf(t + o) for c, o in zip(clean, offs, strict=True)) - target
            slope = mp.fsum(c * mp.npdf(t + o) for c, o in zip(clean, offs, strict=True))
            return value, slope

        return f

    with mp.workdps(_WITNESS_DPS):
        fine = setup(_WITNESS_DPS)
        t, lo, hi = (mp.mpf(x) for x in _coarse_level(atoms, j, p_a, float(e)))
        # the float64 bracket can be off when F is flat: re-establish it at full precision
        delta = mp.mpf(10) ** -8 * (1 + abs(t))
        while fine(lo)[0] >= 0 and delta < mp.mpf(10) ** 300:
            lo, delta = lo - delta, delta * 4
        delta = mp.mpf(10) ** -8 * (1 + abs(t))
        while fine(hi)[0] <= 0 and delta < mp.mpf(10) ** 300:
            hi, delta = hi + delta, delta * 4
        t = t if lo < t < hi else (lo + hi) / 2
        for _ in range(60):
            value, slope = fine(t)
            if value == 0:
                return t
            if value < 0:
                lo = t
            else:
                hi = t
            step = value / slope if slope > 0 else mp.inf
            t_new = t - step
            if not lo < t_new < hi:
                t_new = (lo + hi) / 2
            if abs(t_new - t) <= mp.mpf(10) ** (8 - _WITNESS_DPS) * max(1, abs(t)):
                return t_new
            t = t_new
        return root_of_increasing(lambda x: fine(x)[0], mp.mpf(10) ** (5 - _WITNESS_DPS))


def _coarse_level(atoms: ExactAtoms, j: int, p_a: Fraction, e: float) -> tuple[float, float, float]:
    """Float64 bisection for the witness level t, to about 1e-13: (t, lo, hi) with F(lo) < p_A < F(hi) in
    float64 (only a starting point for the high-precision Newton steps)."""
    levels = np.array([math.log(r.numerator) - math.log(r.denominator) for r in atoms.ratio])
    clean = np.array([float(c) for c in atoms.clean])
    c0, target = float(atoms.c0), float(p_a)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        offs = (levels[j] - levels) / e + e / 2

    def f(t: float) -> float:
        return float(c0 + (clean * ndtr(t + offs)).sum() - target)

    lo, hi = -1.0, 1.0
    while f(lo) >= 0 and lo > -1e300:
        lo *= 2
    while f(hi) <= 0 and hi < 1e300:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if hi - lo <= 1e-13 * max(1.0, abs(mid)) or mid in (lo, hi):
            break
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi), lo, hi


def root_of_increasing(f: Callable[[mpmath.mpf], mpmath.mpf], tol: mpmath.mpf, bracket: bool = False) -> Any:
    """A root of an increasing function by bracket expansion from [-1, 1] and bisection to ``tol``
    (relative to the bracket's size, absolute below 1). Slow but never leaves its bracket. With ``bracket``
    returns (root, lo, hi)."""
    lo, hi = mp.mpf(-1), mp.mpf(1)
    for _ in range(1100):
        if f(lo) < 0:
            break
        lo *= 2
    for _ in range(1100):
        if f(hi) > 0:
            break
        hi *= 2
    while hi - lo > tol * max(1, abs(lo), abs(hi)):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    root = (lo + hi) / 2
    return (root, lo, hi) if bracket else root


def _bounds_at(
    atoms: ExactAtoms, j: int, t: mpmath.mpf, e_iv: mpmath.ctx_iv.ivmpf
) -> tuple[mpmath.ctx_iv.ivmpf, mpmath.ctx_iv.ivmpf]:
    """Interval enclosures of F and G at the level u = log gamma_j + e t (docs/theory.md §4)."""
    t_iv = iv.mpf([t, t])
    f = _iv_fraction(atoms.c0)
    g = iv.mpf(0)
    ratio_j = atoms.ratio[j]
    for r, c, a in zip(atoms.ratio, atoms.clean, atoms.attacked, strict=True):
        gap = iv.log(_iv_fraction(ratio_j / r)) if r != ratio_j else iv.mpf(0)
        s = t_iv + gap / e_iv + e_iv / 2
        f = f + _iv_fraction(c) * phi_interval(s)
        g = g + _iv_fraction(a) * phi_interval(s - e_iv)
    return f, g


def prove_worst_case(
    noise: NoiseParams, p_a: float, budget: int, radius: float, tau: float, dps: int = DPS
) -> Proof:
    """Prove p_adv(budget, radius) >= tau for clean lower bound ``p_a`` (docs/theory.md §4), or say why not.

    ``radius`` = inf claims every radius (only provable when p_a = 1). The proof never uses
    ``hybridcert.theory``.
    """
    if not (isinstance(p_a, int | float) and 0.0 <= p_a <= 1.0):
        raise ValueError(f"p_a must lie in [0, 1], got {p_a!r}")
    if not (isinstance(tau, int | float) and 0.0 < tau < 1.0):
        raise ValueError(f"tau must lie in (0, 1), got {tau!r}")
    if not (isinstance(radius, int | float) and radius >= 0.0):
        raise ValueError(f"radius must be >= 0 (or inf), got {radius!r}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be an integer >= 0, got {budget!r}")
    if isinstance(noise.vocab_size, tuple):
        # one arity per field (docs/theory.md §9): the claim holds only if it holds for EVERY choice of fields;
        # choices that a swap checked by an exact garbling kernel cannot make worse are implied (field_choices)
        worst: Proof | None = None
        for parts in field_choices(noise.vocab_size, budget, noise.kernel, noise.beta):
            atoms = choice_atoms(noise.kernel, noise.beta, parts)
            proof = _prove_atoms(atoms, noise, p_a, budget, radius, tau, dps)
            if not proof.proved:
                fields = ", ".join(f"{k} of arity {v}" for v, k in parts) or "none"
                return Proof(budget, radius, tau, False, 0.0, proof.method,
                             f"fields changed ({fields}): {proof.reason}")
            if worst is None or proof.lower_bound < worst.lower_bound:
                worst = proof
        assert worst is not None
        return worst
    atoms = exact_atoms(noise.kernel, noise.vocab_size, noise.beta, budget)
    return _prove_atoms(atoms, noise, p_a, budget, radius, tau, dps)


def _prove_atoms(
    atoms: ExactAtoms, noise: NoiseParams, p_a: float, budget: int, radius: float, tau: float, dps: int
) -> Proof:
    """The proof of ``prove_worst_case`` for one set of exact atoms."""
    p = Fraction(p_a)
    t_exact = Fraction(tau)
    if math.isinf(radius) or p == 1:
        worst = 1 - atoms.a_inf if p == 1 else Fraction(0)
        ok = p == 1 and worst >= t_exact
        reason = "" if ok else (
            "an infinite radius needs p_a_lower = 1" if p != 1 else
            f"even with p_a = 1 the worst case is 1 - A_inf = {float(worst):.6g} < tau"
        )
        return Proof(budget, radius, tau, ok, float(worst) if ok else 0.0, "exact-infinite", reason)
    if radius == 0.0:
        worst = knapsack(atoms, p)
        ok = worst >= t_exact
        lower = _float_down(mp.mpf(worst.numerator) / worst.denominator) if worst else 0.0
        reason = "" if ok else f"the exact knapsack worst case {float(worst):.17g} is below tau"
        return Proof(budget, radius, tau, ok, lower if ok else 0.0, "exact-rational", reason)
    if p <= atoms.c0 or not atoms.clean:
        return Proof(budget, radius, tau, False, 0.0, "interval", "p_a is not above the ratio-0 clean mass")
    try:
        return _prove_interval(atoms, noise, p, budget, radius, tau, t_exact, dps)
    except (OverflowError, ZeroDivisionError) as exc:  # mpmath's erfc converts huge arguments to float
        # a proof that cannot be evaluated is not a proof: never an internal error, never "proved"
        return Proof(budget, radius, tau, False, 0.0, "interval",
                     f"radius {radius:.6g} at sigma {noise.sigma:.6g} is beyond what the proof can evaluate "
                     f"({type(exc).__name__})")


def _prove_interval(
    atoms: ExactAtoms, noise: NoiseParams, p: Fraction, budget: int, radius: float, tau: float,
    t_exact: Fraction, dps: int,
) -> Proof:
    """The interval-arithmetic part of :func:`_prove_atoms` (radius > 0, p_a < 1)."""
    with _precision(dps):
        e_iv = _iv_float(radius) / _iv_float(noise.sigma)
        e_mid = (_lower(e_iv) + _upper(e_iv)) / 2
        j = _anchor(atoms, p)
        t_star = _witness(atoms, j, p, e_mid)
        p_iv_low = _lower(_iv_fraction(p))
        delta = mp.mpf(10) ** (-(_WITNESS_DPS - 15)) * (1 + abs(t_star))
        for _ in range(6):
            t_w = t_star - delta
            f, g = _bounds_at(atoms, j, t_w, e_iv)
            if _upper(f) <= p_iv_low:
                break
            delta *= 1000
        else:
            return Proof(budget, radius, tau, False, 0.0, "interval", "no witness level with F <= p_a was found")
        g_low = _lower(g)
        tau_high = _upper(_iv_fraction(t_exact))
        ok = g_low >= tau_high
        lower = _float_down(g_low)
        reason = "" if ok else f"the worst case is at most about {mpmath.nstr(_upper(g), 17)} < tau at the witness"
        return Proof(budget, radius, tau, ok, lower if ok else 0.0, "interval", reason)


def prove_frontier(
    noise: NoiseParams, p_a: float, tau: float, frontier: Sequence[tuple[int, float]], dps: int = DPS
) -> list[Proof]:
    """Prove every frontier entry (d, r): certified at (d, r) needs p_adv(d', r) >= tau for all d' <= d.

    Each entry is proven at its own budget; a smaller budget d' is also proven at r unless an entry
    (d', r') with r' >= r was proven (p_adv is non-increasing in eps, docs/theory.md §4). Returns one Proof per
    entry, the first failing sub-proof when there is one.
    """
    proven: dict[int, float] = {}
    out: list[Proof] = []
    for d, r in sorted(frontier, key=lambda dr: dr[0]):
        proof = prove_worst_case(noise, p_a, d, r, tau, dps)
        if proof.proved:
            for d_low in range(d):
                if proven.get(d_low, -1.0) >= r:
                    continue
                sub = prove_worst_case(noise, p_a, d_low, r, tau, dps)
                if not sub.proved:
                    proof = Proof(d, r, tau, False, 0.0, sub.method, f"not certified at budget {d_low}: {sub.reason}")
                    break
        if proof.proved:
            proven[d] = max(proven.get(d, -1.0), r)
        out.append(proof)
    return out


def prove_budget(
    noise: NoiseParams, p_a: float, radius: float, budget: int, tau: float, dps: int = DPS
) -> Proof:
    """Prove a reported certified budget at image radius ``radius``: p_adv(d', radius) >= tau for d' <= budget."""
    last = Proof(budget, radius, tau, True, 1.0, "interval")
    for d in range(budget + 1):
        proof = prove_worst_case(noise, p_a, d, radius, tau, dps)
        if not proof.proved:
            return Proof(budget, radius, tau, False, 0.0, proof.method, f"budget {d}: {proof.reason}")
        last = proof
    return Proof(budget, radius, tau, True, last.lower_bound, last.method)
