"""The joint Neyman-Pearson certificate for hybrid randomized smoothing (docs/theory.md §4).

Every function here is vectorised over ``p_a`` (a float or an array; results take its shape) and sound:
worst-case probabilities are lower bounds and radii and budgets are never above the exact value
(docs/theory.md §6); see ``hybridcert.theory._solve`` for how the float64 rounding is kept on the safe side.

"Not certified" is represented by absence from ``frontier``, by -1 from ``certified_budget``, and by 0.0 from
``certified_radius`` (which a radius-0 certificate shares: see its docstring before treating 0.0 as certified).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

from hybridcert.theory import _solve
from hybridcert.theory._checks import (
    MAX_BUDGET,
    MAX_SIGMA,
    check_nonnegative_array,
    check_probability,
    check_sigma,
    check_threshold,
    check_token_budget,
)
from hybridcert.theory.fields import FieldKernels
from hybridcert.theory.kernels import KernelName, TokenKernel

FloatArray = NDArray[np.float64]

__all__ = [
    "MAX_AUTO_BUDGET", "MAX_BUDGET", "MAX_SIGMA", "HybridNoise", "cohen_radius", "cohen_worst_case",
    "knapsack_worst_case",
]

#: Without ``max_budget``, frontiers and budgets stop here even if still certified (a sound truncation).
MAX_AUTO_BUDGET = 1024

#: float64 entries (inputs x atoms) per solver call on the fields path (bounds the solver's memory)
_CHUNK_ENTRIES = 1_000_000

_PROBIT_REL_ERR = 1e-13  # relative error allowed for ndtri in the closed forms (scipy is ~1e-15)


def _probit(p: FloatArray) -> FloatArray:
    """Phi^-1(p), through the exact complement 1 - p above 1/2 (accurate within 1e-12 of 1)."""
    with np.errstate(divide="ignore"):
        out: FloatArray = np.where(p > 0.5, -ndtri(1.0 - p), ndtri(p))
    return out


def _shape_out(value: FloatArray, shape: tuple[int, ...]) -> Any:
    """Return a Python float for scalar input, else an array of the input's shape."""
    if shape == ():
        return float(value.reshape(()))
    return value.reshape(shape)


def _round_down(x: FloatArray) -> FloatArray:
    out: FloatArray = np.maximum(np.nextafter(np.nextafter(x, -np.inf), -np.inf), 0.0)
    return np.where(np.isinf(x), x, out)


def cohen_radius(p_a: ArrayLike, sigma: float, tau: float = 0.5) -> Any:
    """Cohen et al.'s certified l2 radius, sigma (Phi^-1(p_a) - Phi^-1(tau)); 0 below tau (docs/theory.md §4, d = 0).

    This is the d = 0 special case of the hybrid certificate; it is rounded down by more than the error of
    ``ndtri``, so it never exceeds the exact value. ``p_a`` = 1 gives +inf.
    """
    p = check_probability("p_a", p_a)
    s = check_sigma("sigma", sigma)
    t = check_threshold("tau", tau)
    zp, zt = _probit(p.ravel()), float(_probit(np.array([t]))[0])
    with np.errstate(invalid="ignore"):
        gap = zp - zt - _PROBIT_REL_ERR * (np.abs(zp) + abs(zt)) - 1e-300
        r = np.where(p.ravel() >= t, np.maximum(s * gap, 0.0), 0.0)
    r = np.where(p.ravel() == 1.0, np.inf, r)
    return _shape_out(_round_down(r), p.shape)


def cohen_worst_case(p_a: ArrayLike, radius: ArrayLike, sigma: float) -> Any:
    """Lower bound on Phi(Phi^-1(p_a) - eps/sigma), the Gaussian worst case (docs/theory.md §4, d = 0)."""
    p = check_probability("p_a", p_a)
    eps = check_nonnegative_array("radius", radius)
    s = check_sigma("sigma", sigma)
    p, eps = np.broadcast_arrays(p, eps)
    z = _probit(p.ravel()) - eps.ravel() / s
    with np.errstate(invalid="ignore"):
        z = z - _PROBIT_REL_ERR * np.abs(z) - 1e-300
        v = np.where(z > 0, 1.0 - ndtr(-z), ndtr(z)) * (1.0 - 8 * _solve.EPS)
    v = np.where(p.ravel() == 0.0, 0.0, np.where(p.ravel() == 1.0, 1.0, v))
    return _shape_out(np.clip(v, 0.0, 1.0), p.shape)


def knapsack_worst_case(p_a: ArrayLike, kernel: TokenKernel, budget: int) -> Any:
    """The discrete (eps = 0) worst case: Lee et al. 2019 / Chen et al. 2025's fractional knapsack.

    Sort atoms by likelihood ratio, fill clean mass p_a, sum the matching attacked mass (docs/theory.md §4).
    Returns a lower bound within 1e-10 of the exact value.
    """
    p = check_probability("p_a", p_a)
    d = check_token_budget("budget", budget)
    prep = _solve.Prepared.of(kernel.atoms(d))
    return _shape_out(_solve.knapsack_lower(prep, p.ravel()), p.shape)


@dataclass(frozen=True)
class HybridNoise:
    """Hybrid smoothing noise (docs/theory.md §1): a token kernel on the noised positions and N(0, sigma^2 I) on
    the image.

    ``kernel`` is ``uniform-other``, ``uniform-all`` or ``absorb``; ``vocab_size`` the alphabet size V;
    ``beta`` the per-position noise level in (0, 1]; ``sigma`` > 0 the image noise in the certificate's pixel
    space. The methods compute the joint Neyman-Pearson certificate of docs/theory.md §4.

    Tabular data (docs/theory.md §9): ``vocab_size`` may be a sequence, one arity per categorical field (the
    absorb kernel's mask is the "missing" category). ``budget`` then counts changed fields, at most d, the
    attacker choosing which: every result is the minimum over the choices of fields (§9.1), with the same
    guarantees (never above the exact value, within 1e-9 of it). Budgets above the number of fields m are
    the same as m; open-ended frontiers and budgets stop at m. ``sigma`` is the Gaussian on the standardised
    numeric features. A single integer ``vocab_size`` is the token case, computed exactly as before.
    """

    kernel: KernelName
    vocab_size: int | Sequence[int]
    beta: float
    sigma: float

    def __post_init__(self) -> None:
        if isinstance(self.vocab_size, Sequence | np.ndarray) and not isinstance(self.vocab_size, str | bytes):
            fields = FieldKernels(self.kernel, tuple(self.vocab_size), self.beta)
            object.__setattr__(self, "vocab_size", fields.arities)
            object.__setattr__(self, "beta", fields.beta)
        else:
            token = TokenKernel(self.kernel, self.vocab_size, self.beta)  # type: ignore[arg-type]
            object.__setattr__(self, "vocab_size", token.vocab_size)
            object.__setattr__(self, "beta", token.beta)
        object.__setattr__(self, "sigma", check_sigma("sigma", self.sigma))

    @property
    def field_kernels(self) -> FieldKernels | None:
        """The per-field kernels when ``vocab_size`` lists one arity per field, else None."""
        if isinstance(self.vocab_size, tuple):
            return FieldKernels(self.kernel, self.vocab_size, self.beta)
        return None

    @property
    def token_kernel(self) -> TokenKernel:
        """The token kernel (one alphabet size); a ValueError for per-field arities (see ``field_kernels``)."""
        if isinstance(self.vocab_size, tuple):
            raise ValueError("this noise has one arity per field: use field_kernels, not token_kernel")
        assert isinstance(self.vocab_size, int)
        return TokenKernel(self.kernel, self.vocab_size, self.beta)

    @property
    def informative(self) -> bool:
        """False when the noise hides every token (field) change completely."""
        fields = self.field_kernels
        return fields.informative if fields is not None else self.token_kernel.informative

    def _prepared(self, budget: int) -> _solve.Prepared:
        return _solve.Prepared.of(self.token_kernel.atoms(budget))

    def _choices(self, budget: int) -> list[_solve.Prepared]:
        """One Prepared per choice of fields to search at ``budget`` (docs/theory.md §9.1); the token case is
        the single Prepared of today's atoms."""
        fields = self.field_kernels
        if fields is None:
            return [self._prepared(budget)]
        d = min(budget, fields.size)
        if fields.homogeneous:
            return [_solve.Prepared.of(TokenKernel(self.kernel, fields.arities[0], self.beta).atoms(d))]
        return [_prepared_choice(fields, c) for c in fields.choices(d)]

    def _worst_case_at(self, budget: int, p: FloatArray, e: FloatArray) -> FloatArray:
        """Lower bound on the worst case at ``budget``: the minimum of the choices' lower bounds."""
        preps = self._choices(budget)
        if self.field_kernels is None:
            return self._worst_case(preps[0], p, e)
        out = np.ones(p.shape)
        for prep in preps:
            out = np.minimum(out, _chunked(self._worst_case, prep, p, e))
        return out

    def _knapsack_at(self, budget: int, p: FloatArray) -> FloatArray:
        preps = self._choices(budget)
        out = _solve.knapsack_lower(preps[0], p)
        for prep in preps[1:]:
            out = np.minimum(out, _solve.knapsack_lower(prep, p))
        return out

    def _radius_at(self, budget: int, p: FloatArray, tau: float) -> FloatArray:
        """Radius at ``budget``: the minimum over the choices. A choice already certified at the running
        minimum r cannot lower it (p_adv is non-increasing in eps, docs/theory.md §4), so it is only checked at r."""
        preps = self._choices(budget)
        if self.field_kernels is None:
            return self._radius(preps[0], p, tau)
        taus = np.full(p.shape, tau)
        r = _chunked(self._radius_vec, preps[0], p, taus)
        for prep in preps[1:]:
            finite = np.flatnonzero(np.isfinite(r) & (r > 0.0))
            wc = np.full(p.shape, -1.0)
            if finite.size:
                wc[finite] = _chunked(self._worst_case, prep, p[finite], r[finite] / self.sigma)
            redo = np.flatnonzero((r > 0.0) & (wc < tau))
            if redo.size:
                r[redo] = np.minimum(r[redo], _chunked(self._radius_vec, prep, p[redo], taus[redo]))
        return r

    def _radius_vec(self, prep: _solve.Prepared, p: FloatArray, tau: FloatArray) -> FloatArray:
        return self._radius(prep, p, float(tau[0])) if p.size else np.zeros(0)

    # -- worst case ------------------------------------------------------------------------------------

    def worst_case(self, p_a: ArrayLike, budget: int, radius: ArrayLike) -> Any:
        """Lower bound on min P_attacked[f = 1] over attacks with <= ``budget`` tokens and <= ``radius`` in l2.

        ``p_a`` is a lower bound on the clean smoothed probability (docs/theory.md §4, ``p_adv``); ``radius`` may be an
        array broadcast against ``p_a``. Within 1e-9 of the exact value and never above it.
        """
        p = check_probability("p_a", p_a)
        d = check_token_budget("budget", budget)
        eps = check_nonnegative_array("radius", radius)
        p, eps = np.broadcast_arrays(p, eps)
        e = eps.ravel() / self.sigma
        return _shape_out(self._worst_case_at(d, p.ravel().copy(), e), p.shape)

    def _worst_case(self, prep: _solve.Prepared, p: FloatArray, e: FloatArray) -> FloatArray:
        out = np.zeros(p.shape)
        zero_e = e == 0.0
        idx0 = np.flatnonzero(zero_e)
        if idx0.size:
            out[idx0] = _solve.knapsack_lower(prep, p[idx0])
        one = p == 1.0
        out[one & ~zero_e] = max(0.0, np.nextafter(1.0 - prep.a_inf * (1.0 + prep.special_err), -np.inf))
        live = ~zero_e & ~one & (p - prep.slack > prep.c0 * (1.0 + prep.special_err))
        for upper in (False, True):
            idx = np.flatnonzero(live & ((p > 0.5) == upper))
            if idx.size == 0:
                continue
            j = _solve.anchors(prep, p[idx])
            t, ok = _solve.solve_level(prep, p[idx], upper, e[idx], j)
            val = _solve.attacked_lower(prep, t, e[idx], j)
            out[idx] = np.where(ok, val, 0.0)
        return out

    # -- radius ------------------------------------------------------------------------------------------

    def certified_radius(self, p_a: ArrayLike, budget: int, tau: float = 0.5) -> Any:
        """r*(d) of docs/theory.md §4: the largest l2 radius certified against ``budget`` changed tokens at ``tau``.

        +inf when p_a = 1 and no token change is visible with certainty. Never above the exact radius, and
        within 1e-9 of it.

        Not certified: when ``budget`` is not certified even at eps = 0 there is no radius, and this returns 0.0,
        the same value as a certified budget whose radius is 0. So 0.0 alone is not a certificate: decide
        "certified at (budget, 0)" with ``certified_budget(p_a, 0.0, tau, max_budget=budget) >= budget`` or by
        membership of ``budget`` in ``frontier`` (which lists certified budgets only); ``hybridcert certify``
        prints "not certified" and its JSON holds ``"certified": false`` with ``"certified_radius": null``.
        """
        p = check_probability("p_a", p_a)
        d = check_token_budget("budget", budget)
        t = check_threshold("tau", tau)
        r = self._radius_at(d, p.ravel(), t)
        return _shape_out(r, p.shape)

    def _radius(self, prep: _solve.Prepared, p: FloatArray, tau: float) -> FloatArray:
        out = np.zeros(p.shape)
        certified0 = (p >= tau) & (_solve.knapsack_lower(prep, p) >= tau)
        one = certified0 & (p == 1.0)
        out[one] = np.inf
        live = certified0 & ~one
        idx = np.flatnonzero(live)
        if idx.size == 0:
            return out
        pl = p[idx]
        # r*(d) <= r*(0), Cohen's radius: an upper end for the search (widened past float error)
        e_cohen = _probit(pl) - float(_probit(np.array([tau]))[0])
        e_hi = e_cohen * (1.0 + 1e-9) + 1e-9
        e = _solve.solve_radius(prep, pl, tau, e_hi, e_hi * 0.999)
        out[idx] = _round_down(e * self.sigma)
        return out

    # -- budget -----------------------------------------------------------------------------------------

    def certified_budget(
        self, p_a: ArrayLike, radius: ArrayLike, tau: float = 0.5, max_budget: int | None = None
    ) -> Any:
        """The largest d certified at image radius ``radius`` (every d' <= d); -1 (never a valid budget) when not
        even d = 0 is certified, which is how "not certified" is represented here.

        Stops at ``max_budget`` (default: at the first uncertified d, or at MAX_AUTO_BUDGET). A kernel that
        hides token changes completely needs an explicit ``max_budget``.
        """
        p = check_probability("p_a", p_a)
        eps = check_nonnegative_array("radius", radius)
        t = check_threshold("tau", tau)
        cap = self._budget_cap(max_budget)
        p, eps = np.broadcast_arrays(p, eps)
        pf, e = p.ravel(), eps.ravel() / self.sigma
        best = np.full(pf.shape, -1, dtype=np.int64)
        active = np.ones(pf.shape, dtype=bool)
        for d in range(cap + 1):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            wc = self._worst_case_at(d, pf[idx].copy(), e[idx])
            ok = wc >= t
            best[idx[ok]] = d
            active[idx[~ok]] = False
        if p.ndim == 0:
            return int(best[0])
        return best.reshape(p.shape)

    def _budget_cap(self, max_budget: int | None) -> int:
        if max_budget is not None:
            return check_token_budget("max_budget", max_budget)
        fields = self.field_kernels
        if fields is not None:
            return fields.size  # d > m changes no more than all m fields
        if not self.token_kernel.informative:
            raise ValueError(
                f"the {self.kernel} kernel with beta={self.beta} and vocab_size={self.vocab_size} hides token "
                "changes completely, so every budget is certified: pass max_budget"
            )
        return MAX_AUTO_BUDGET

    # -- frontier ---------------------------------------------------------------------------------------

    def frontier_radii(
        self, p_a: ArrayLike, tau: float = 0.5, max_budget: int | None = None
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Radii r*(d) for d = 0..D as an array of shape ``p_a.shape + (D + 1,)``, with a mask of the budgets
        certified at eps = 0. D is ``max_budget``, or the last budget certified for some input.
        r*(d) is the minimum over d' <= d (docs/theory.md §4: certified at (d, eps) needs every d' <= d).
        """
        p = check_probability("p_a", p_a)
        t = check_threshold("tau", tau)
        cap = self._budget_cap(max_budget)
        pf = p.ravel()
        radii: list[FloatArray] = []
        masks: list[NDArray[np.bool_]] = []
        active = pf >= t
        prev = np.full(pf.shape, np.inf)
        for d in range(cap + 1):
            if not active.any() and max_budget is None:
                break
            r = np.zeros(pf.shape)
            cert = np.zeros(pf.shape, dtype=bool)
            idx = np.flatnonzero(active)
            if idx.size:
                cert_i = (self._knapsack_at(d, pf[idx]) >= t)
                sub = idx[cert_i]
                if sub.size:
                    r_sub = self._radius_at(d, pf[sub], t)
                    r[sub] = np.minimum(r_sub, prev[sub])
                    cert[sub] = True
                active[idx[~cert_i]] = False
            radii.append(r)
            masks.append(cert)
            prev = np.where(cert, r, 0.0)
        if not radii:
            radii, masks = [np.zeros(pf.shape)], [np.zeros(pf.shape, dtype=bool)]
        r_arr = np.stack(radii, axis=-1).reshape(p.shape + (len(radii),))
        m_arr = np.stack(masks, axis=-1).reshape(p.shape + (len(masks),))
        return r_arr, m_arr

    def frontier(self, p_a: ArrayLike, tau: float = 0.5, max_budget: int | None = None) -> Any:
        """The (d, eps) frontier: [(d, r*(d)) for d = 0, 1, ... while d is certified] (docs/theory.md §4).

        Only certified budgets appear, so an empty list means "not certified even at (0, 0)".

        For an array ``p_a`` returns an object array of the same shape holding one such list per input.
        """
        p = check_probability("p_a", p_a)
        radii, mask = self.frontier_radii(p, tau=tau, max_budget=max_budget)
        flat_r = radii.reshape(-1, radii.shape[-1])
        flat_m = mask.reshape(-1, mask.shape[-1])
        lists = [
            [(d, float(flat_r[i, d])) for d in range(flat_r.shape[1]) if flat_m[i, d]]
            for i in range(flat_r.shape[0])
        ]
        if p.shape == ():
            return lists[0]
        out = np.empty(len(lists), dtype=object)
        for i, item in enumerate(lists):
            out[i] = item
        return out.reshape(p.shape)

    def describe(self) -> dict[str, Any]:
        """The parameters a certificate is meaningless without (docs/theory.md §6)."""
        vocab = list(self.vocab_size) if isinstance(self.vocab_size, tuple) else self.vocab_size
        return {"kernel": self.kernel, "vocab_size": vocab, "beta": self.beta, "sigma": self.sigma}


@lru_cache(maxsize=512)
def _prepared_choice(fields: FieldKernels, choice: tuple[int, ...]) -> _solve.Prepared:
    return _solve.Prepared.of(fields.atoms(choice))


def _chunked(
    fun: Callable[[_solve.Prepared, FloatArray, FloatArray], FloatArray],
    prep: _solve.Prepared,
    p: FloatArray,
    x: FloatArray,
) -> FloatArray:
    """fun(prep, p, x) over consecutive slices of the inputs, so that inputs x atoms stays below
    _CHUNK_ENTRIES (every input is solved on its own, so chunking changes no value)."""
    step = max(1, _CHUNK_ENTRIES // max(1, prep.clean.size))
    n = p.size
    if n <= step:
        return fun(prep, p.copy(), x.copy())
    return np.concatenate([fun(prep, p[i:i + step].copy(), x[i:i + step].copy()) for i in range(0, n, step)])
