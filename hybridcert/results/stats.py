"""Dataset-level statistics of a results file: the one place for "certified at (d, eps)", the radius matrix,
rate grids and their Clopper-Pearson intervals (used by the runner's aggregates, the reports and the
regression gate).

Certified at (d, eps) (docs/results-format.md, docs/theory.md §4): the decision is correct and not abstain,
budget d is in the frontier, and that entry's radius is >= eps. Frontier radii are already the minimum over
d' <= d. :func:`radius_matrix` encodes this with ONE sentinel: ``R[i, d]`` is the certified radius, ``+inf``
for an infinite radius and ``-inf`` when input i is not certified at (d, 0), so certified at (d, eps) is
``R[i, d] >= eps`` for every eps >= 0.

Rate intervals are two-sided Clopper-Pearson at a confidence level (docs/theory.md §5): each side is the
one-sided bound at (1 - level) / 2, computed from the decimal the level was written as and rounded down, so
the interval never narrows (``(1 - 0.95) / 2`` in floats is 0.025000000000000022, above 0.025).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from hybridcert.results.schema import Aggregates, AuditResults, CertifiedRate, InputResult
from hybridcert.theory import clopper_pearson_lower, clopper_pearson_upper

__all__ = ["RateCell", "aggregate", "certified", "radius_matrix", "rate_cell", "rate_interval", "side_alpha"]


def radius_matrix(inputs: Sequence[InputResult] | AuditResults, budgets: int | None = None) -> NDArray[np.float64]:
    """R[i, d] for d < ``budgets`` (default: config.max_budget + 1, or the longest frontier): module docstring."""
    if isinstance(inputs, AuditResults):
        if budgets is None:
            budgets = inputs.config.max_budget + 1
        inputs = inputs.inputs
    if budgets is None:
        budgets = max((len(r.frontier) for r in inputs), default=0)
    width = max(budgets, 1)
    out = np.full((len(inputs), width), -np.inf)
    for i, rec in enumerate(inputs):
        if rec.correct and rec.decision != "abstain":
            k = min(len(rec.frontier), width)
            out[i, :k] = [p.value for p in rec.frontier[:k]]
    return out


def certified(radii: NDArray[np.float64], budget: int, radius: float) -> NDArray[np.bool_]:
    """Boolean per input: certified at (budget, radius) (False for a budget beyond the matrix)."""
    if budget >= radii.shape[1]:
        return np.zeros(radii.shape[0], dtype=bool)
    out: NDArray[np.bool_] = radii[:, budget] >= radius
    return out


def side_alpha(level: float) -> float:
    """(1 - level) / 2 from the decimal ``level`` was written as, rounded down (the interval never narrows)."""
    if isinstance(level, bool) or not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level!r}")
    return float(np.nextafter(float((1 - Decimal(repr(float(level)))) / 2), 0.0))


def rate_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for a rate k / n at confidence ``level`` (module docstring); (0, 1)
    when n = 0."""
    a = side_alpha(level)
    if n == 0:
        return (0.0, 1.0)
    return (float(clopper_pearson_lower(k, n, a)), float(clopper_pearson_upper(k, n, a)))


@dataclass(frozen=True)
class RateCell:
    """Certified rate at (budget, radius) with its two-sided Clopper-Pearson interval."""

    budget: int
    radius: float
    certified: int
    total: int
    ci_low: float
    ci_high: float

    @property
    def rate(self) -> float:
        return self.certified / self.total if self.total else 0.0


def rate_cell(radii: NDArray[np.float64], budget: int, radius: float, level: float = 0.95) -> RateCell:
    """Certified count at (budget, radius) and its two-sided Clopper-Pearson interval at ``level``."""
    total = radii.shape[0]
    count = int(np.count_nonzero(certified(radii, budget, radius)))
    lo, hi = rate_interval(count, total, level)
    return RateCell(budget=budget, radius=float(radius), certified=count, total=total, ci_low=lo, ci_high=hi)


def aggregate(inputs: list[InputResult], max_budget: int, radii: list[float]) -> Aggregates:
    """Clean rate, abstentions and the certified rate at every (d, eps) of the grid budgets x radii."""
    total = len(inputs)
    matrix = radius_matrix(inputs, max_budget + 1)
    rates = []
    for d in range(max_budget + 1):
        for eps in radii:
            count = int(np.count_nonzero(certified(matrix, d, eps)))
            rates.append(CertifiedRate(budget=d, radius=eps, rate=count / total if total else 0.0, count=count))
    return Aggregates(
        n_inputs=total,
        clean_rate=sum(r.correct for r in inputs) / total if total else 0.0,
        abstain=sum(r.decision == "abstain" for r in inputs),
        certified=rates,
    )
