"""Assemble the checks over a grid: ``run_verification(Grid.quick())`` is what ``hybridcert verify`` runs."""

from __future__ import annotations

import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hybridcert import __version__
from hybridcert.verifier.highprec import check_highprec, random_cases, random_field_cases
from hybridcert.verifier.impl import THEORY, Implementation
from hybridcert.verifier.interval import prove_budget, prove_frontier
from hybridcert.verifier.properties import check_properties
from hybridcert.verifier.reference import NoiseParams
from hybridcert.verifier.result import CheckResult
from hybridcert.verifier.symbolic import check_symbolic

CHECKS = ("symbolic", "highprec", "properties", "interval")


@dataclass(frozen=True)
class Grid:
    """How much of each check to run. ``quick`` is for CI (well under a minute), ``full`` for audits."""

    name: str
    seed: int = 20261125
    symbolic_points: int = 4
    highprec_worst_cases: int = 3
    highprec_radii: int = 2
    highprec_max_budget: int = 2
    property_examples: int = 20
    mc_samples: int = 10000
    interval_configs: int = 20
    interval_max_budget: int = 4
    tabular_highprec: int = 1  # worst cases and as many radii, per-field arities (docs/theory.md §9)
    tabular_interval: int = 1  # tabular frontiers proven for every choice of fields

    @staticmethod
    def quick(seed: int = 20261125) -> Grid:
        return Grid("quick", seed)

    @staticmethod
    def full(seed: int = 20261125) -> Grid:
        return Grid("full", seed, symbolic_points=25, highprec_worst_cases=12, highprec_radii=6,
                    highprec_max_budget=3, property_examples=200, mc_samples=50000, interval_configs=150,
                    interval_max_budget=16, tabular_highprec=4, tabular_interval=12)


@dataclass
class VerificationReport:
    """Every check's result, the grid and the environment: what the table, --json and the HTML show."""

    grid: Grid
    implementation: str
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    created: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "hybridcert/verification/v1",
            "tool": {"name": "hybridcert", "version": __version__},
            "created": self.created,
            "implementation": self.implementation,
            "grid": asdict(self.grid),
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "environment": {"python": platform.python_version(), "platform": platform.platform()},
            "checks": [c.to_dict() for c in self.checks],
        }


def interval_cases(rng: np.random.Generator, n: int) -> list[tuple[NoiseParams, float, float]]:
    """Random (noise, p_a, tau) for the interval check, large alphabets and tiny tau included."""
    cases = [(NoiseParams("uniform-other", 30000, 0.25, 1.0), 0.99954, 4.6e-5)]  # docs/theory.md §8
    kernels = ("uniform-other", "uniform-all", "absorb")
    while len(cases) < n:
        kernel = kernels[len(cases) % 3]
        v = int(rng.choice([2, 5, 50, 1000, 50257]))
        b = float(np.round(rng.uniform(0.1, 0.9), 6))
        if kernel == "uniform-other" and abs(b - (v - 1) / v) < 0.05:
            b = float(np.round(b / 2, 6))
        s = float(np.round(rng.uniform(0.1, 2.0), 6))
        p = float(1.0 - 10 ** rng.uniform(-6, -0.5))
        tau = 0.5 if rng.random() < 0.5 else float(10 ** rng.uniform(-5, -1))
        cases.append((NoiseParams(kernel, v, b, s), p, tau))
    return cases


def tabular_interval_cases(rng: np.random.Generator, n: int) -> list[tuple[NoiseParams, float, float]]:
    """Random tabular (noise, p_a, tau): per-field arities, Adult's first (docs/theory.md §9)."""
    cases = [(NoiseParams("uniform-other", (9, 16, 7, 15, 6, 5, 2, 42), 0.25, 1.0), 0.999, 0.5)][:n]
    kernels = ("uniform-other", "uniform-all", "absorb")
    while len(cases) < n:
        kernel = kernels[len(cases) % 3]
        arities = tuple(int(v) for v in rng.choice([2, 3, 5, 7, 16, 42], size=int(rng.integers(2, 6))))
        b = float(np.round(rng.uniform(0.1, 0.95), 6))
        s = float(np.round(rng.uniform(0.1, 2.0), 6))
        p = float(1.0 - 10 ** rng.uniform(-6, -1))
        tau = 0.5 if rng.random() < 0.5 else float(10 ** rng.uniform(-4, -1))
        cases.append((NoiseParams(kernel, arities, b, s), p, tau))
    return cases


def check_interval(grid: Grid, impl: Implementation = THEORY,
                   progress: Callable[[str], None] | None = None) -> CheckResult:
    """Prove every frontier entry and a certified budget reported by ``impl`` on random configurations."""
    result = CheckResult("interval", "Interval-arithmetic proofs (mpmath.iv, exact rational atoms) that each "
                         "reported radius and budget is certified", tolerance="proof: worst case >= tau")
    start = time.perf_counter()
    rng = np.random.default_rng(grid.seed + 3)
    tabular = tabular_interval_cases(np.random.default_rng(grid.seed + 5), grid.tabular_interval)
    for noise, p, tau in interval_cases(rng, grid.interval_configs) + tabular:
        where = f"{noise.kernel} V={noise.vocab_size} beta={noise.beta} sigma={noise.sigma} p_a={p!r} tau={tau!r}"
        if progress:
            progress(f"interval: {where}")
        theory = impl.make_noise(noise.kernel, noise.vocab_size, noise.beta, noise.sigma)
        frontier = [(int(d), float(r)) for d, r in theory.frontier(p, tau=tau, max_budget=grid.interval_max_budget)]
        for proof in prove_frontier(noise, p, tau, frontier):
            result.record()
            if not proof.proved:
                result.fail(f"{where}: radius {proof.radius!r} at budget {proof.budget}: {proof.reason}")
        if frontier and frontier[0][1] > 0 and math.isfinite(frontier[0][1]):
            eps = float(frontier[0][1] * rng.uniform(0.1, 0.9))
            budget = int(theory.certified_budget(p, radius=eps, tau=tau, max_budget=grid.interval_max_budget))
            proof = prove_budget(noise, p, eps, budget, tau)
            result.record()
            if not proof.proved:
                result.fail(f"{where}: budget {budget} at eps={eps!r}: {proof.reason}")
        result.details.append({"case": where, "frontier": [[d, r] for d, r in frontier]})
    result.seconds = time.perf_counter() - start
    return result


def run_verification(grid: Grid, impl: Implementation = THEORY, checks: tuple[str, ...] = CHECKS,
                     progress: Callable[[str], None] | None = None) -> VerificationReport:
    """Run the selected checks on ``grid`` against ``impl``; the report passes only if every check passes."""
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(sorted(unknown))}; expected {', '.join(CHECKS)}")
    report = VerificationReport(grid, impl.name, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    start = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in CHECKS:
            if name not in checks:
                continue
            report.checks.append(_run_one(name, grid, impl, progress))
    report.seconds = time.perf_counter() - start
    return report


def _run_one(name: str, grid: Grid, impl: Implementation, progress: Callable[[str], None] | None) -> CheckResult:
    try:
        if name == "symbolic":
            return check_symbolic(grid.symbolic_points, grid.seed, impl, progress)
        if name == "highprec":
            cases = random_cases(np.random.default_rng(grid.seed + 1), grid.highprec_worst_cases,
                                 grid.highprec_radii, grid.highprec_max_budget)
            cases += random_field_cases(np.random.default_rng(grid.seed + 4), grid.tabular_highprec,
                                        grid.tabular_highprec)
            return check_highprec(cases, impl, progress)
        if name == "properties":
            return check_properties(grid.property_examples, grid.seed + 2, grid.mc_samples, impl, progress)
        return check_interval(grid, impl, progress)
    except Exception as exc:  # noqa: BLE001 - a check that crashes on the implementation is a failed check
        result = CheckResult(name, f"{name} check")
        result.fail(f"the check raised {type(exc).__name__}: {exc}")
        return result
