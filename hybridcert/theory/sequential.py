"""Sequential certification: an anytime-valid confidence sequence for a Bernoulli mean and a stopping rule
(docs/theory.md §5; issue 7).

Fixed-n Clopper-Pearson (``bounds.clopper_pearson_lower``) is valid only at one sample size fixed in advance:
re-evaluated after every chunk and stopped when it looks good, its miss rate exceeds alpha. A *confidence
sequence* holds at every sample size at once, so an audit may look after every chunk, stop each input as soon
as its certificate is decided, and report the bound at the stopping time.

The confidence sequence (one-sided Beta mixture)
------------------------------------------------
X_1, X_2, ... i.i.d. Bernoulli(p); after n draws, k successes. For p0, q in (0, 1) the likelihood ratio

    R_n(q; p0) = (q / p0)^k ((1 - q) / (1 - p0))^(n - k)

is a nonnegative martingale under P_{p0} with R_0 = 1 (one draw multiplies it by a factor of mean
p0 q/p0 + (1 - p0)(1 - q)/(1 - p0) = 1). Mix it over a prior pi = Beta(a, b), counting the constant martingale 1
for every q <= p0:

    M_n(p0) = pi([0, p0]) + int_{(p0, 1]} R_n(q; p0) pi(dq)
            = I_{p0}(a, b) + B(a + k, b + n - k) / B(a, b) * (1 - I_{p0}(a + k, b + n - k)) / (p0^k (1 - p0)^(n - k))

(I the regularised incomplete Beta function). A mixture of martingales with weights summing to 1 is again a
nonnegative martingale with M_0 = 1, so Ville's inequality gives, for the true p,

    P_p[ there is an n with M_n(p) >= 1/alpha ] <= alpha.                                           (Ville)

Shape in p0: for p0 >= k/n every q > p0 has R_n(q; p0) <= 1 (the Binomial log-likelihood is concave with its
maximum at k/n), so M_n(p0) <= 1 < 1/alpha. For p0 < k/n, dM_n/dp0 = int_{q > p0} dR_n(q; p0)/dp0 pi(dq) < 0
(moving p0 moves mass pi(dp0) from the integral, where R_n(p0; p0) = 1, to the constant term, where it is also
1, so the boundary terms cancel). Hence the rejected set {p0 : M_n(p0) >= 1/alpha} is an interval [0, L_n],
and any p0 shown to lie in it is a lower bound: if p < p0 <= L_n then M_n(p) >= M_n(p0) >= 1/alpha, which by
(Ville) happens at *some* n with probability <= alpha. Therefore

    P_p[ p < L_T ] <= P_p[ there is an n with p < L_n ] <= alpha   for every random time T,

including a time chosen by looking at the data (optional stopping, optional continuation). The restriction to
q > p0 makes the bound one-sided: the whole alpha is spent below. The upper sequence is the mirror image,
U_n(k) = 1 - L_n(n - k) with the prior Beta(b, a); lower and upper together miss with probability <= 2 alpha.
Only the lower bound enters a certificate; the upper bound only stops inputs that cannot be certified.

The prior is the price of time-uniformity: against Clopper-Pearson at a fixed n the width 1 - L grows by about
(log(1/alpha) + b log n) / log(1/alpha) when every draw succeeds. The default Beta(0.1, 0.1) puts mass near 0
and 1, where filters' smoothed probabilities live; with it, at alpha = 0.001 and k = n = 10^4, 1 - L is 1.24x
the Clopper-Pearson 1 - p_lower (Beta(1, 1) would give 2.3x), and 1.16x at k/n = 0.99.

Numerics (docs/theory.md §6): L_n is found by a bracketing search (false position with bisection steps) on
t = logit(p0), which resolves p0 near 0 and near 1 alike (log p0 and log(1 - p0) are both computed from t
without cancellation); I_{p0}(a, b) is evaluated as
1 - I_{1-p0}(b, a) through ``betaincc`` and 1 - I_{p0}(a + k, ...) as I_{1-p0}(b + n - k, a + k), so nothing
is taken as 1 - (something close to 1). A point counts as rejected only when log M_n(p0) clears log(1/alpha)
by a margin larger than the float error of the evaluation (the terms reach 10^7 at n = 10^6), and the bound
reported is a rejected point, rounded down: it never exceeds the exact L_n.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betainc, betaincc, betaln, expit

from hybridcert.theory._checks import (
    as_float_array,
    check_budget,
    check_positive,
    check_threshold,
    check_token_budget,
)
from hybridcert.theory.bounds import clopper_pearson_lower
from hybridcert.theory.certificate import HybridNoise

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: The default Beta(a, b) prior of the mixture (see the module docstring for the choice).
DEFAULT_PRIOR: tuple[float, float] = (0.1, 0.1)

METHOD = "beta-mixture-cs"

_T_MIN = -745.0  # logit of the smallest subnormal: p0 = 5e-324
_T_MAX = 745.0  # 1 - p0 = 5e-324
_T_TOL = 1e-10  # the search stops when the logit bracket is this narrow (relative 1e-10 in p0 or 1 - p0)
_F_TOL = 1e-9  # ... or when log M_n - log(1/alpha) at the rejected end is this small
_REL_MARGIN = 1e-12  # relative float error allowed per term of log M_n
_ABS_MARGIN = 1e-10  # absolute float error allowed in log M_n (betainc, logaddexp)
_P_SHAVE = 1e-14  # relative shave on expit's rounding when the bound is reported
_MAX_ITER = 200  # Illinois iterations; lo stays a rejected point regardless


# ----------------------------------------------------------------------------------------------------------
# validation


def _check_counts(successes: ArrayLike, trials: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Counts k <= n, integers, n >= 0 (n = 0 is the start of a sequence: no information yet)."""
    k = as_float_array("successes", successes)
    n = as_float_array("trials", trials)
    if not np.isfinite(k).all() or (k != np.floor(k)).any() or (k < 0).any():
        raise ValueError(f"successes must be integers >= 0, got {successes!r}")
    if not np.isfinite(n).all() or (n != np.floor(n)).any() or (n < 0).any():
        raise ValueError(f"trials must be integers >= 0, got {trials!r}")
    if (k > n).any():
        raise ValueError(f"successes must not exceed trials, got successes={successes!r}, trials={trials!r}")
    if (n > 2.0**52).any():
        raise ValueError(f"trials must be at most 2^52, got {trials!r}")
    k, n = np.broadcast_arrays(k, n)
    return k, n


def _check_prior(prior: Sequence[float]) -> tuple[float, float]:
    try:
        a_raw, b_raw = prior
    except (TypeError, ValueError) as exc:
        raise ValueError(f"prior must be a pair (a, b) of Beta parameters, got {prior!r}") from exc
    return check_positive("prior a", a_raw), check_positive("prior b", b_raw)


# ----------------------------------------------------------------------------------------------------------
# the mixture martingale and the confidence sequence


def _log_mixture_terms(
    k: FloatArray, n: FloatArray, t: FloatArray, a: float, b: float
) -> tuple[FloatArray, FloatArray]:
    """log M_n(p0) at p0 = expit(t), and the float error bound of that value (module docstring)."""
    log_p = -np.logaddexp(0.0, -t)
    log_q = -np.logaddexp(0.0, t)  # log(1 - p0)
    q = expit(-t)  # 1 - p0, exact to a few ulps even when p0 rounds to 1
    ln_post = betaln(a + k, b + n - k)
    ln_prior = betaln(a, b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        below = np.log(betaincc(b, a, q))  # log pi([0, p0]) = log I_{p0}(a, b)
        tail = np.log(betainc(b + n - k, a + k, q))  # log(1 - I_{p0}(a + k, b + n - k))
        lik = k * log_p + (n - k) * log_q
        mix = ln_post - ln_prior - lik + tail
        log_m = np.logaddexp(below, mix)
    err = _REL_MARGIN * (np.abs(ln_post) + abs(ln_prior) + np.abs(k * log_p) + np.abs((n - k) * log_q)) + _ABS_MARGIN
    return log_m, err


def log_mixture_martingale(
    successes: ArrayLike, trials: ArrayLike, p0: ArrayLike, prior: Sequence[float] = DEFAULT_PRIOR
) -> FloatArray:
    """log M_n(p0), the one-sided Beta-mixture martingale of the module docstring, for p0 in (0, 1).

    Under P_{p0} it is a nonnegative martingale started at 1; ``cs_lower`` is the largest p0 where it is
    >= 1/alpha. Exposed for tests and for checking Ville's inequality directly; float error about 1e-12
    relative to the largest term (k log p0 up to 10^7 at n = 10^6).
    """
    k, n = _check_counts(successes, trials)
    p = as_float_array("p0", p0)
    if ((p <= 0.0) | (p >= 1.0)).any():
        raise ValueError(f"p0 must lie in the open interval (0, 1), got {p0!r}")
    a, b = _check_prior(prior)
    k, n, p = np.broadcast_arrays(k, n, p)
    t = np.log(p) - np.log1p(-p)
    out, _ = _log_mixture_terms(k.astype(np.float64), n.astype(np.float64), t, a, b)
    return out


def _lower(k: FloatArray, n: FloatArray, log_level: float, a: float, b: float) -> FloatArray:
    """The largest p0 robustly in the rejected set [0, L_n], found in t = logit(p0) (vectorised).

    Invariant: ``lo`` is a point evaluated as rejected (log M_n - error >= log(1/alpha)), ``hi`` one that is not.
    The bracket starts at [logit(5e-324), logit(k/n)] (M_n <= 1 at k/n), is narrowed around the Clopper-Pearson
    bound (close to L_n) by doubling steps, then closed by Illinois false position with a bisection step every
    fourth iteration. Soundness does not depend on convergence: ``lo`` is always a rejected point.
    """
    out = np.zeros(k.shape)
    live = k > 0  # k = 0: nothing but p0 = 0 is rejected, the bound is 0
    if not live.any():
        return out
    kk, nn = k[live], n[live]

    def excess(t: FloatArray, sel: NDArray[np.intp]) -> FloatArray:
        """log M_n - error bound - log(1/alpha) at p0 = expit(t): >= 0 means robustly rejected."""
        log_m, err = _log_mixture_terms(kk[sel], nn[sel], t, a, b)
        val: FloatArray = np.where(np.isfinite(err) & ~np.isnan(log_m), log_m - err - log_level, -np.inf)
        return val

    with np.errstate(divide="ignore"):
        hi = np.where(kk == nn, _T_MAX, np.log(kk) - np.log(np.maximum(nn - kk, 1.0)))
    f_hi = np.full(kk.shape, -log_level)  # M_n <= 1 at k/n: not rejected (the value only steers the search)
    lo = np.full(kk.shape, _T_MIN)
    f_lo = np.full(kk.shape, np.nan)  # not evaluated yet

    def take(sel: NDArray[np.intp], t: FloatArray, f: FloatArray) -> BoolArray:
        rej: BoolArray = f >= 0.0
        lo[sel] = np.where(rej, t, lo[sel])
        f_lo[sel] = np.where(rej, f, f_lo[sel])
        hi[sel] = np.where(rej, hi[sel], t)
        f_hi[sel] = np.where(rej, f_hi[sel], f)
        return rej

    level = math.exp(-log_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        cp = clopper_pearson_lower(kk, nn, level)
        guess = np.nan_to_num(np.log(cp) - np.log1p(-cp), nan=0.0, posinf=_T_MAX, neginf=_T_MIN)
    every = np.arange(kk.size, dtype=np.intp)
    guess = np.clip(guess, lo, hi)
    up = take(every, guess, excess(guess, every))
    idx, step = every, 0.5
    while idx.size:
        cand = np.where(up[idx], guess[idx] + step, guess[idx] - step)
        inside = np.where(up[idx], cand < hi[idx], cand > lo[idx])
        idx, cand = idx[inside], cand[inside]
        rej = take(idx, cand, excess(cand, idx))
        idx = idx[rej == up[idx]]  # still on the guess's side: double the step
        step *= 2.0
    low_end = np.flatnonzero(np.isnan(f_lo))  # nothing above logit(5e-324) was rejected: try it
    take(low_end, lo[low_end], excess(lo[low_end], low_end))
    found = f_lo >= 0.0  # p0 = 5e-324 not rejected either: the bound is 0

    side = np.zeros(kk.shape)
    idx = np.flatnonzero(found)
    for it in range(_MAX_ITER):
        # done when the bracket is narrow, or lo is rejected by less than the float noise of log M_n
        idx = idx[((hi[idx] - lo[idx]) > _T_TOL * np.maximum(1.0, np.abs(lo[idx]))) & (f_lo[idx] > _F_TOL)]
        if idx.size == 0:
            break
        l_i, h_i, fl, fh = lo[idx], hi[idx], f_lo[idx], f_hi[idx]
        width = h_i - l_i
        mid = l_i + 0.5 * width
        if it % 4 != 3:
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                fp = h_i - fh * (width / (fh - fl))
            # at least half the stopping tolerance from either end, so a step next to an end closes the bracket
            gap = np.minimum(0.5 * _T_TOL * np.maximum(1.0, np.abs(l_i)), 0.25 * width)
            fp = np.clip(fp, l_i + gap, h_i - gap)
            mid = np.where(np.isfinite(fp), fp, mid)
        s = side[idx]
        rej = take(idx, mid, excess(mid, idx))
        # Illinois: halve the value kept at the end that did not move twice in a row
        f_hi[idx] = np.where(rej & (s == 1.0), 0.5 * f_hi[idx], f_hi[idx])
        f_lo[idx] = np.where(~rej & (s == -1.0), 0.5 * f_lo[idx], f_lo[idx])
        side[idx] = np.where(rej, 1.0, -1.0)
    p_lo = np.where(found, expit(lo) * (1.0 - _P_SHAVE), 0.0)
    out[live] = np.maximum(np.nextafter(p_lo, 0.0), 0.0)
    return out


def cs_lower(
    successes: ArrayLike, trials: ArrayLike, alpha: float, prior: Sequence[float] = DEFAULT_PRIOR
) -> FloatArray:
    """Anytime-valid lower confidence sequence for a Bernoulli mean (module docstring; docs/theory.md §5).

    For i.i.d. draws with mean p, P[ p < cs_lower(k_n, n, alpha) for some n >= 0 ] <= alpha: the bound may be
    evaluated after every draw or chunk and the sampling stopped (or continued) on what was seen. Vectorised
    over ``successes`` and ``trials`` (integers, 0 <= successes <= trials; trials = 0 gives 0); rounded down,
    never above the exact L_n. ``prior`` is the Beta(a, b) mixing prior (a, b > 0).
    """
    k, n = _check_counts(successes, trials)
    level = check_threshold("alpha", alpha)
    a, b = _check_prior(prior)
    kf, nf = k.ravel().astype(np.float64), n.ravel().astype(np.float64)
    return _lower(kf, nf, -math.log(level), a, b).reshape(k.shape)


def cs_upper(
    successes: ArrayLike, trials: ArrayLike, alpha: float, prior: Sequence[float] = DEFAULT_PRIOR
) -> FloatArray:
    """Anytime-valid upper confidence sequence: 1 - cs_lower(n - k, n) with the mirrored prior Beta(b, a),
    rounded up. P[ p > cs_upper(k_n, n, alpha) for some n ] <= alpha; trials = 0 gives 1."""
    k, n = _check_counts(successes, trials)
    level = check_threshold("alpha", alpha)
    a, b = _check_prior(prior)
    kf, nf = k.ravel().astype(np.float64), n.ravel().astype(np.float64)
    mirrored = _lower(nf - kf, nf, -math.log(level), b, a)
    up = np.minimum(np.nextafter(1.0 - mirrored, 2.0), 1.0)
    out: FloatArray = up.reshape(k.shape)
    return out


# ----------------------------------------------------------------------------------------------------------
# the stopping rule


@dataclass(frozen=True)
class SequentialRule:
    """What a sequential audit of one certified side needs (issue 7).

    ``noise``: the smoothing noise; ``points``: the requested (budget d, radius eps) pairs; ``threshold``: what
    the worst case must reach (tau on the flag side, ``nextafter(1 - tau, 2)`` on the no-flag side, as in
    docs/results-format.md); ``alpha``: the level of the lower (and, for stopping only, the upper) confidence
    sequence; ``n_max``: the sample cap per input; ``chunk``: samples drawn per input between two looks (the
    sequence is valid for any chunking, this only sets how often one looks); ``prior``: the Beta mixing prior.
    """

    noise: HybridNoise
    points: tuple[tuple[int, float], ...]
    threshold: float
    alpha: float
    n_max: int = 10_000
    chunk: int = 256
    prior: tuple[float, float] = field(default=DEFAULT_PRIOR)

    def __post_init__(self) -> None:
        if not isinstance(self.noise, HybridNoise):
            raise ValueError(f"noise must be a HybridNoise, got {self.noise!r}")
        pts: list[tuple[int, float]] = []
        try:
            raw = list(self.points)
        except TypeError as exc:
            raise ValueError(f"points must be a sequence of (budget, radius) pairs, got {self.points!r}") from exc
        if not raw:
            raise ValueError("points must name at least one (budget, radius) pair")
        for i, pt in enumerate(raw):
            try:
                d_raw, e_raw = pt
            except (TypeError, ValueError) as exc:
                raise ValueError(f"points[{i}] must be a (budget, radius) pair, got {pt!r}") from exc
            d = check_token_budget(f"points[{i}] budget", d_raw)
            e = float(as_float_array(f"points[{i}] radius", e_raw))
            if not (math.isfinite(e) and e >= 0.0):
                raise ValueError(f"points[{i}] radius must be finite and >= 0, got {e_raw!r}")
            pts.append((d, e))
        object.__setattr__(self, "points", tuple(pts))
        object.__setattr__(self, "threshold", check_threshold("threshold", self.threshold))
        object.__setattr__(self, "alpha", check_threshold("alpha", self.alpha))
        n_max = check_budget("n_max", self.n_max)
        chunk = check_budget("chunk", self.chunk)
        if n_max < 1 or chunk < 1:
            raise ValueError(f"n_max and chunk must be >= 1, got n_max={self.n_max!r}, chunk={self.chunk!r}")
        object.__setattr__(self, "n_max", n_max)
        object.__setattr__(self, "chunk", chunk)
        object.__setattr__(self, "prior", _check_prior(self.prior))

    def describe(self) -> dict[str, Any]:
        """The method as the report states it (issue 7: method and samples used per input)."""
        return {
            "confidence_bound": METHOD,
            "method": (
                "one-sided Beta-mixture confidence sequence (anytime-valid by Ville's inequality); each input "
                "stops once every requested (d, eps) point is certified by the lower bound or refuted by the "
                "upper bound, or at n_max; p_a_lower is the lower bound at the stopping time"
            ),
            "prior": {"a": self.prior[0], "b": self.prior[1]},
            "alpha": self.alpha,
            "n_max": self.n_max,
            "chunk": self.chunk,
            "points": [{"budget": d, "radius": e} for d, e in self.points],
        }


def certified_points(p_lower: ArrayLike, rule: SequentialRule) -> BoolArray:
    """Shape ``p_lower.shape + (len(points),)``: certified at (d, eps) means
    ``noise.worst_case(p_lower, d', eps) >= threshold`` for every d' <= d (docs/theory.md §4)."""
    p = as_float_array("p_lower", p_lower)
    flat = p.ravel()
    cache: dict[tuple[int, float], BoolArray] = {}
    cols: list[BoolArray] = []
    for d, eps in rule.points:
        ok = np.ones(flat.shape, dtype=bool)
        for dd in range(d + 1):
            key = (dd, eps)
            if key not in cache:
                cache[key] = np.asarray(rule.noise.worst_case(flat, budget=dd, radius=eps)) >= rule.threshold
            ok &= cache[key]
        cols.append(ok)
    out: BoolArray = np.stack(cols, axis=-1).reshape(p.shape + (len(rule.points),))
    return out


@dataclass(frozen=True)
class SequentialDecision:
    """Per input (arrays of the counts' shape; ``certified``/``refuted`` add a last axis over the points):
    the confidence-sequence bounds, which points are certified by ``p_lower`` and which are refuted by
    ``p_upper`` (not certified even at the upper bound), and the status: ``certified`` (every point certified),
    ``refuted`` (every point decided, some refuted), ``cap`` (n >= n_max, undecided) or ``continue``."""

    p_lower: FloatArray
    p_upper: FloatArray
    certified: BoolArray
    refuted: BoolArray
    status: NDArray[np.str_]

    @property
    def stop(self) -> BoolArray:
        out: BoolArray = self.status != "continue"
        return out


def decide(successes: ArrayLike, trials: ArrayLike, rule: SequentialRule) -> SequentialDecision:
    """The stopping rule of issue 7 for cumulative counts of the certified side's event.

    An input stops once every requested point is decided: certified (the lower confidence sequence already
    certifies it, docs/theory.md §4) or refuted (even the upper confidence sequence does not certify it, so with
    probability >= 1 - alpha no number of samples would), or once ``trials >= n_max``. Because the sequence is
    time-uniform, the certificate of a stopped input, from ``p_lower`` at the stopping time, holds with
    probability >= 1 - alpha (docs/theory.md §5) however the stopping time was chosen. Refutation only saves samples:
    it never makes a certificate larger.
    """
    k, n = _check_counts(successes, trials)
    lower = cs_lower(k, n, rule.alpha, rule.prior)
    upper = cs_upper(k, n, rule.alpha, rule.prior)
    cert = certified_points(lower, rule)
    refuted = ~certified_points(upper, rule)
    decided = (cert | refuted).all(axis=-1)
    status = np.full(k.shape, "continue", dtype="<U9")
    status[n >= rule.n_max] = "cap"
    status[decided & refuted.any(axis=-1)] = "refuted"
    status[cert.all(axis=-1)] = "certified"
    return SequentialDecision(p_lower=lower, p_upper=upper, certified=cert, refuted=refuted, status=status)


# ----------------------------------------------------------------------------------------------------------
# the loop


@dataclass(frozen=True)
class SequentialResult:
    """Outcome of ``run_sequential`` per input: final counts (``trials`` = samples used), the lower bound at
    the stopping time, the points it certifies, the status at stopping, and the number of looks taken."""

    successes: IntArray
    trials: IntArray
    p_lower: FloatArray
    certified: BoolArray
    status: NDArray[np.str_]
    looks: int


DrawFn = Callable[[NDArray[np.intp], int], ArrayLike]


def run_sequential(draw: DrawFn, n_inputs: int, rule: SequentialRule) -> SequentialResult:
    """Sample every input in chunks of ``rule.chunk`` until ``decide`` stops it (issue 7).

    ``draw(indices, m)`` returns, for each input index in ``indices``, the number of successes of the certified
    side's event in ``m`` new samples of that input (a model run in an audit, a Binomial draw in a simulation).
    All live inputs advance together, so every call has one ``m`` (the last chunk is cut at ``n_max``).
    """
    count = check_budget("n_inputs", n_inputs)
    k = np.zeros(count, dtype=np.int64)
    n = np.zeros(count, dtype=np.int64)
    status = np.full(count, "continue", dtype="<U9")
    p_lower = np.zeros(count)
    cert = np.zeros((count, len(rule.points)), dtype=bool)
    live = np.arange(count, dtype=np.intp)
    looks = 0
    while live.size:
        m = int(min(rule.chunk, rule.n_max - n[live[0]]))
        got = as_float_array("draw result", draw(live, m))
        if got.shape != live.shape or (got != np.floor(got)).any() or (got < 0).any() or (got > m).any():
            raise ValueError(f"draw must return {live.size} integer counts in [0, {m}], got {got!r}")
        k[live] += got.astype(np.int64)
        n[live] += m
        looks += 1
        dec = decide(k[live], n[live], rule)
        stop = dec.stop
        done = live[stop]
        status[done] = dec.status[stop]
        p_lower[done] = dec.p_lower[stop]
        cert[done] = dec.certified[stop]
        live = live[~stop]
    return SequentialResult(successes=k, trials=n, p_lower=p_lower, certified=cert, status=status, looks=looks)
