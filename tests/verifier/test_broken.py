"""The verifier can fail: a radius inflated by 1e-6, a dropped atom and a sign flip are each caught by the
symbolic, high-precision and property checks and by the interval proof."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridcert.verifier.highprec import check_highprec, random_cases
from hybridcert.verifier.impl import THEORY, Implementation
from hybridcert.verifier.interval import prove_frontier
from hybridcert.verifier.properties import check_properties
from hybridcert.verifier.reference import NoiseParams
from hybridcert.verifier.runner import Grid, check_interval
from hybridcert.verifier.symbolic import check_symbolic
from tests.verifier.broken import BROKEN

IDS = list(BROKEN)


@pytest.mark.parametrize("name", IDS)
def test_symbolic_catches(name: str) -> None:
    result = check_symbolic(3, seed=1, impl=BROKEN[name])
    assert not result.passed and result.failures


@pytest.mark.parametrize("name", IDS)
def test_highprec_catches(name: str) -> None:
    rng = np.random.default_rng(5)
    cases = random_cases(rng, 0, 2) if name == "inflated" else random_cases(rng, 2, 0)
    result = check_highprec(cases, impl=BROKEN[name])
    assert not result.passed and result.failures


@pytest.mark.parametrize("name", IDS)
def test_properties_catch(name: str) -> None:
    result = check_properties(10, 11, mc_samples=4000, impl=BROKEN[name])
    assert not result.passed
    assert any(not d["passed"] and d["falsifying"] for d in result.details)


@pytest.mark.parametrize("name", ["inflated", "flipped-sign"])
def test_interval_check_catches(name: str) -> None:
    result = check_interval(Grid("t", interval_configs=2, interval_max_budget=2), impl=BROKEN[name])
    assert not result.passed


def test_interval_proof_catches_a_dropped_atom() -> None:
    """Dropping an atom over-states the worst case whenever the remaining clean mass still covers p_A."""
    noise = NoiseParams("uniform-other", 3, 0.3, 1.0)
    broken = _frontier(BROKEN["dropped-atom"], noise, 0.75, 0.2)
    real = _frontier(THEORY, noise, 0.75, 0.2)
    assert all(p.proved for p in prove_frontier(noise, 0.75, 0.2, real))
    assert not all(p.proved for p in prove_frontier(noise, 0.75, 0.2, broken))


def _frontier(impl: Implementation, noise: NoiseParams, p: float, tau: float) -> list[tuple[int, float]]:
    n = impl.make_noise(noise.kernel, noise.vocab_size, noise.beta, noise.sigma)
    return [(int(d), float(r)) for d, r in n.frontier(p, tau=tau, max_budget=2)]


def test_cli_exits_1_and_names_the_failures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`hybridcert verify` against a broken theory: exit 1, FAIL in the table, each failure named, in HTML too."""
    import json

    from typer.testing import CliRunner

    from hybridcert.cli import app
    from hybridcert.verifier import runner

    real = runner.run_verification
    monkeypatch.setattr(runner, "run_verification", lambda grid, **kw: real(grid, impl=BROKEN["inflated"], **kw))
    page = tmp_path / "fail.html"
    res = CliRunner().invoke(app, ["verify", "--check", "interval", "--html", str(page)])
    assert res.exit_code == 1
    assert "FAIL" in res.stdout and "FAILED interval:" in res.stdout
    assert "NOT" not in res.stderr and "Traceback" not in res.stdout
    html = page.read_text()
    assert "FAIL" in html and "failing case" in html
    res = CliRunner().invoke(app, ["verify", "--check", "interval", "--json"])
    data = json.loads(res.stdout)
    assert res.exit_code == 1 and not data["passed"] and data["checks"][0]["n_failures"] > 0
