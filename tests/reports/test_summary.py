"""Dataset-level statistics: checked against an independent reading of the contract and scipy's exact CI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.stats import binomtest

from hybridcert.reports.bundle import Criterion, parse_results
from hybridcert.reports.summary import acceptance, evaluate, radius_matrix, rate_cell
from tests.reports.synthetic import make_results


def certified_by_hand(raw: dict, d: int, eps: float) -> int:  # type: ignore[type-arg]
    """The contract's definition, read straight from the JSON dicts."""
    count = 0
    for rec in raw["inputs"]:
        if not rec["correct"] or rec["decision"] == "abstain":
            continue
        for f in rec["frontier"]:
            r = math.inf if f.get("radius_infinite") else f["radius"]
            if f["budget"] == d and r >= eps:
                count += 1
    return count


@pytest.fixture(scope="module")
def raw() -> dict:  # type: ignore[type-arg]
    return make_results()


def test_certified_counts_match_the_contract(raw: dict) -> None:  # type: ignore[type-arg]
    radii = radius_matrix(parse_results(json.dumps(raw).encode()))
    seen = set()
    for d in range(5):
        for eps in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.2, 5.0):
            cell = rate_cell(radii, d, eps)
            assert cell.certified == certified_by_hand(raw, d, eps), (d, eps)
            seen.add(cell.certified)
    assert len(seen) > 5  # the grid really discriminates
    assert rate_cell(radii, 99, 0.0).certified == 0


def test_exact_radius_counts_as_certified(raw: dict) -> None:  # type: ignore[type-arg]
    radii = radius_matrix(parse_results(json.dumps(raw).encode()))
    rec = next(r for r in raw["inputs"] if r["correct"] and r["frontier"])
    r0 = rec["frontier"][0]["radius"]
    assert rate_cell(radii, 0, r0).certified == certified_by_hand(raw, 0, r0)
    assert rate_cell(radii, 0, math.nextafter(r0, 10)).certified == certified_by_hand(raw, 0, math.nextafter(r0, 10))


def test_interval_matches_scipy_exact(raw: dict) -> None:  # type: ignore[type-arg]
    radii = radius_matrix(parse_results(json.dumps(raw).encode()))
    for d, eps in ((0, 0.0), (1, 0.5), (2, 0.25), (4, 0.0)):
        cell = rate_cell(radii, d, eps)
        ci = binomtest(cell.certified, cell.total).proportion_ci(confidence_level=0.95, method="exact")
        assert cell.ci_low <= ci.low + 1e-12 and ci.low - cell.ci_low < 1e-9
        assert cell.ci_high >= ci.high - 1e-12 and cell.ci_high - ci.high < 1e-9


def test_acceptance_verdicts_flip_at_the_observed_rate(raw: dict) -> None:  # type: ignore[type-arg]
    radii = radius_matrix(parse_results(json.dumps(raw).encode()))
    k = certified_by_hand(raw, 1, 0.5)
    rate = k / len(raw["inputs"])
    ok = Criterion(budget=1, radius=0.5, min_certified_rate=rate)
    too_high = Criterion(budget=1, radius=0.5, min_certified_rate=min(1.0, rate + 1e-9))
    on_lower = Criterion(budget=1, radius=0.5, min_certified_rate=rate, statistic="ci_lower")
    res = evaluate([ok, too_high, on_lower], radii, "test")
    assert [v.passed for v in res.verdicts] == [True, False, False]
    assert res.overall == "FAIL"
    assert evaluate([ok], radii, "test").overall == "PASS"
    assert evaluate([], radii, "test").overall == "NO CRITERIA"


def test_criteria_file_overrides_results(raw: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    bundle = parse_results(json.dumps(raw).encode())
    assert acceptance(bundle).source.startswith("results.json")
    path = tmp_path / "criteria.json"
    path.write_text(json.dumps([{"budget": 0, "radius": 0.0, "min_certified_rate": 0.01}]))
    acc = acceptance(bundle, path)
    assert "criteria file criteria.json" in acc.source and acc.overall == "PASS"
    assert len(acc.verdicts) == 1
