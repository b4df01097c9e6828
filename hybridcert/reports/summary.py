"""Dataset-level statistics derived deterministically from a validated bundle (docs/report.md §7, §8, §6).

Nothing here recomputes a certificate: an input is certified at (d, eps) when its decision is correct and not
abstain and its frontier (from results.json) has budget d with radius >= eps (docs/results-format.md,
docs/theory.md §4). Rates get a two-sided Clopper-Pearson interval from ``hybridcert.theory`` (docs/theory.md §5).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hybridcert.reports.bundle import Bundle, Criterion, load_criteria
from hybridcert.results import stats
from hybridcert.results.stats import RateCell

#: Confidence level of the dataset-level intervals (two-sided).
RATE_CONFIDENCE = 0.95
#: At most this many budgets get their own curve / table row (the rest are in results.json).
MAX_BUDGET_ROWS = 9


@dataclass(frozen=True)
class Verdict:
    criterion: Criterion
    cell: RateCell
    value: float
    passed: bool

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class AcceptanceResult:
    source: str
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def overall(self) -> str:
        if not self.verdicts:
            return "NO CRITERIA"
        return "PASS" if all(v.passed for v in self.verdicts) else "FAIL"

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "overall": self.overall,
            "criteria": [
                {
                    **v.criterion.model_dump(exclude_none=True),
                    "certified": v.cell.certified,
                    "total": v.cell.total,
                    "value": v.value,
                    "verdict": v.label,
                }
                for v in self.verdicts
            ],
        }


def radius_matrix(bundle: Bundle) -> NDArray[np.float64]:
    """R[i, d] = certified radius of input i at budget d, -inf where not certified, +inf if infinite
    (``hybridcert.results.stats.radius_matrix``)."""
    return stats.radius_matrix(bundle.results)


def rate_cell(radii: NDArray[np.float64], budget: int, radius: float) -> RateCell:
    """Certified count at (budget, radius) and its two-sided Clopper-Pearson interval at RATE_CONFIDENCE."""
    return stats.rate_cell(radii, budget, radius, RATE_CONFIDENCE)


def evaluate(criteria: list[Criterion], radii: NDArray[np.float64], source: str) -> AcceptanceResult:
    """PASS when the chosen statistic (observed rate, or the interval's lower end) >= min_certified_rate."""
    verdicts = []
    for c in criteria:
        cell = rate_cell(radii, c.budget, c.radius)
        value = cell.rate if c.statistic == "observed" else cell.ci_low
        verdicts.append(Verdict(criterion=c, cell=cell, value=value, passed=value >= c.min_certified_rate))
    return AcceptanceResult(source=source, verdicts=verdicts)


def acceptance(bundle: Bundle, criteria_file: Path | None = None) -> AcceptanceResult:
    """Criteria from ``criteria_file`` if given, else from results.json's ``acceptance`` field, evaluated."""
    radii = radius_matrix(bundle)
    if criteria_file is not None:
        data = Path(criteria_file).read_bytes()
        criteria = load_criteria(Path(criteria_file))
        digest = hashlib.sha256(data).hexdigest()
        source = f"criteria file {Path(criteria_file).name} (sha256 {digest}), supplied when the report was made"
        return evaluate(criteria, radii, source)
    if bundle.results.acceptance:
        return evaluate(bundle.results.acceptance, radii, "results.json 'acceptance' (recorded with the run)")
    return AcceptanceResult(source="none given")


def table_budgets(max_budget: int, extra: list[int] | None = None) -> list[int]:
    """Budgets shown in tables and plots: all of 0..D when few, else an even subset (plus ``extra``)."""
    if max_budget + 1 <= MAX_BUDGET_ROWS:
        chosen = set(range(max_budget + 1))
    else:
        chosen = {int(round(x)) for x in np.linspace(0, max_budget, MAX_BUDGET_ROWS)}
    chosen |= {b for b in (extra or []) if b <= max_budget}
    return sorted(chosen)


#: At most this many configured radii are tabulated (the plot shows the whole curve).
MAX_TABLE_RADII = 12


def configured_radii(bundle: Bundle) -> list[float] | None:
    """``config.radii`` of results.json: the audit's own grid (what the terminal prints and ``compare`` gates
    on), or None when the file has none. ValueError when present but not a list of finite radii >= 0."""
    raw = bundle.raw["config"].get("radii")
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > 1000 or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x < float("inf") for x in raw):
        raise ValueError("results.json: config.radii must be a list of at most 1000 finite radii >= 0")
    return [float(x) for x in raw]


def table_radii(sigma: float, extra: list[float] | None = None, configured: list[float] | None = None) -> list[float]:
    """Radii shown in the rate table: the audit's configured radii (else 0, sigma/4, ..., 2 sigma), plus the
    criteria's radii (``extra``). More than MAX_TABLE_RADII configured radii are thinned evenly."""
    if configured:
        base = sorted(set(configured))
        if len(base) > MAX_TABLE_RADII:
            base = [base[int(round(i))] for i in np.linspace(0, len(base) - 1, MAX_TABLE_RADII)]
    else:
        base = [0.0] + [m * sigma for m in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)]
    return sorted(set(base) | set(extra or []))
