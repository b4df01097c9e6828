"""Input validation shared by the theory functions: every bad value is a ValueError naming it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def as_float_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """Return ``value`` as a float64 array, refusing NaN and non-numeric input."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from exc
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not be NaN, got {_show(value)}")
    return arr


def check_probability(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """A probability (or array of them) in the closed interval [0, 1]."""
    arr = as_float_array(name, value)
    bad = (arr < 0.0) | (arr > 1.0)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, 1], got {_show(arr[bad].flat[0])}")
    return arr


def check_threshold(name: str, value: float) -> float:
    """A decision threshold in the open interval (0, 1)."""
    v = check_scalar(name, value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {_show(value)}")
    return v


def check_scalar(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN, got {value!r}")
    return v


def check_positive(name: str, value: Any) -> float:
    v = check_scalar(name, value)
    if not (v > 0.0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number > 0, got {_show(value)}")
    return v


def check_nonnegative_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    arr = as_float_array(name, value)
    bad = ~(arr >= 0.0) | ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite and >= 0, got {_show(arr[bad].flat[0])}")
    return arr


def check_budget(name: str, value: Any) -> int:
    """A token budget: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


#: The largest token budget d the engine accepts anywhere (certify, radius, frontier, results files). The
#: exact worst case at budget d costs O(d^2) time and memory in the atom merge (docs/theory.md §3): measured on
#: a 2-core CPU, d = 1024 takes 0.6 s and 190 MB, d = 4096 takes 15 s and 1.5 GB, d = 12000 runs out of memory
#: (docs/benchmarks.md). Budgets above it are refused with a ValueError naming the limit.
MAX_BUDGET = 1024


#: The largest ``sigma`` the engine accepts. A radius is sigma times a probit gap of at most about 40, so a
#: sigma near the float maximum (1e308) overflowed to an infinite radius for p_a < 1, a claim only p_a = 1
#: allows; 1e6 is far above any pixel or standardised scale (audits stop at 100) and keeps every radius finite.
MAX_SIGMA = 1e6


def check_sigma(name: str, value: Any) -> float:
    """The Gaussian's standard deviation: a finite number in (0, MAX_SIGMA]."""
    v = check_positive(name, value)
    if v > MAX_SIGMA:
        raise ValueError(f"{name} must be at most {MAX_SIGMA:g} (hybridcert.theory.MAX_SIGMA), got {_show(value)}")
    return v


def check_token_budget(name: str, value: Any) -> int:
    """A token budget d: an integer in [0, MAX_BUDGET] (bounded work, docs/theory.md §2)."""
    d = check_budget(name, value)
    if d > MAX_BUDGET:
        raise ValueError(f"{name} must be at most {MAX_BUDGET} (hybridcert.theory.MAX_BUDGET), got {d}")
    return d


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)
