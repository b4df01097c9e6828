"""The result of one check, in a form the CLI table, ``--json`` and the HTML report all render."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_LISTED_FAILURES = 20


@dataclass
class CheckResult:
    """One check over its grid: how many cases ran, the largest errors seen and the verdict.

    ``failures`` holds a readable line per failing case (the first MAX_LISTED_FAILURES are kept; ``n_failures``
    counts them all). Errors are None when the check compares no numbers.
    """

    name: str
    description: str
    cases: int = 0
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    tolerance: str = ""
    failures: list[str] = field(default_factory=list)
    n_failures: int = 0
    seconds: float = 0.0
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.n_failures == 0 and self.cases > 0

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"

    def record(self, abs_error: float | None = None, rel_error: float | None = None) -> None:
        """Count one case and fold its errors into the maxima (NaN counts as an infinite error)."""
        self.cases += 1
        if abs_error is not None:
            a = math.inf if math.isnan(abs_error) else abs(abs_error)
            self.max_abs_error = a if self.max_abs_error is None else max(self.max_abs_error, a)
        if rel_error is not None:
            r = math.inf if math.isnan(rel_error) else abs(rel_error)
            self.max_rel_error = r if self.max_rel_error is None else max(self.max_rel_error, r)

    def fail(self, message: str) -> None:
        self.n_failures += 1
        if len(self.failures) < MAX_LISTED_FAILURES:
            self.failures.append(message)

    def to_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | str | None:
            if x is None:
                return None
            return "inf" if math.isinf(x) else x

        return {
            "name": self.name,
            "description": self.description,
            "cases": self.cases,
            "max_abs_error": num(self.max_abs_error),
            "max_rel_error": num(self.max_rel_error),
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "passed": self.passed,
            "n_failures": self.n_failures,
            "failures": list(self.failures),
            "seconds": round(self.seconds, 3),
            "details": self.details,
        }
