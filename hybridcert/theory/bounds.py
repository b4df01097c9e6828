"""Confidence bounds for the smoothed probability from Monte-Carlo counts (docs/theory.md §5)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta as beta_dist

from hybridcert.theory._checks import as_float_array, check_threshold

# Relative shave that keeps the bound on the safe side of scipy's quantile rounding (a few ulps).
_SHAVE = 1e-12


def clopper_pearson_lower(successes: ArrayLike, trials: ArrayLike, alpha: float) -> NDArray[np.float64]:
    """One-sided Clopper-Pearson lower bound: P[p >= bound] >= 1 - alpha for every p (docs/theory.md §5).

    The Beta(alpha; k, n - k + 1) quantile, 0 when k = 0 and alpha^(1/n) when k = n, rounded down.
    Vectorised over ``successes`` and ``trials``; returns an array of their broadcast shape.
    """
    k, n = _check_counts(successes, trials)
    a = check_threshold("alpha", alpha)
    with np.errstate(all="ignore"):
        q = beta_dist.ppf(a, np.maximum(k, 1), n - k + 1)
        q = np.where(k == n, np.exp(np.log(a) / np.maximum(n, 1)), q)
    q = np.where(k == 0, 0.0, q)
    out: NDArray[np.float64] = np.maximum(q * (1.0 - _SHAVE), 0.0)
    return np.nextafter(out, 0.0)


def clopper_pearson_upper(successes: ArrayLike, trials: ArrayLike, alpha: float) -> NDArray[np.float64]:
    """One-sided Clopper-Pearson upper bound: P[p <= bound] >= 1 - alpha; 1 when k = n, rounded up."""
    k, n = _check_counts(successes, trials)
    upper: NDArray[np.float64] = np.minimum(np.nextafter(1.0 - clopper_pearson_lower(n - k, n, alpha), 2.0), 1.0)
    return upper


def _check_counts(successes: ArrayLike, trials: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    k = as_float_array("successes", successes)
    n = as_float_array("trials", trials)
    if (k != np.floor(k)).any() or (k < 0).any() or not np.isfinite(k).all():
        raise ValueError(f"successes must be integers >= 0, got {successes!r}")
    if (n != np.floor(n)).any() or (n < 1).any() or not np.isfinite(n).all():
        raise ValueError(f"trials must be integers >= 1, got {trials!r}")
    if (k > n).any():
        raise ValueError(f"successes must not exceed trials, got successes={successes!r}, trials={trials!r}")
    k, n = np.broadcast_arrays(k, n)
    return k, n
