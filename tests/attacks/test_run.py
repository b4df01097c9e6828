"""``hybridcert attack`` end to end on the real demo filter: alarms appear under a deliberately inflated theory
(radii x 3) and not under the real one; kill and --resume gives the same attack.json; batch size changes
nothing; bad arguments write nothing (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hybridcert.attacks.engine import AttackSettings, image_sha256
from hybridcert.attacks.run import LOG_NAME, run_attack
from hybridcert.audits.config import load_spec
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.cli import app
from hybridcert.theory import HybridNoise
from tests.attacks.conftest import SMALL

POINT = (0, 1.5)  # far beyond the demo's real d = 0 radii (~0.8), inside 3x them


class InflatedNoise(HybridNoise):
    """A deliberately unsound theory: every certified radius times 3."""

    def frontier_radii(self, p_a: Any, tau: float = 0.5, max_budget: int | None = None) -> Any:
        radii, mask = super().frontier_radii(p_a, tau=tau, max_budget=max_budget)
        return radii * 3.0, mask


def _view(report: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in report.items() if k not in ("created", "certificates")}
    out["records"] = [{k: v for k, v in r.items() if k != "seconds"} for r in report["records"]]
    return out


@pytest.fixture(scope="module")
def honest(demo_config: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("honest")
    audit = prepare(load_spec(demo_config[0]))
    report = run_attack(audit, out, [POINT], AttackSettings(**SMALL))
    return out, report


def test_honest_theory_no_alarm_and_rates_bracket(honest: Any) -> None:
    out, report = honest
    row = report["summary"][0]
    assert report["alarms"] == [] and row["alarms"] == []
    assert row["successes"] >= 1  # the attack does flip inputs at this radius: the alarm check has teeth
    assert row["certified"]["count"] <= row["attacked_robust"]["count"]
    lo, hi = row["attacked_robust"]["interval"]
    assert lo <= row["attacked_robust"]["rate"] <= hi
    for rec in report["records"]:
        if rec["attacked"]:
            image = np.load(out / rec["image"], allow_pickle=False)
            assert image_sha256(image) == rec["image_sha256"]
            assert rec["l2"] <= POINT[1] and rec["queries"] > 0
            est = rec["estimate"]
            assert est["lower"] <= est["p"] <= est["upper"]
            assert rec["success"] == (est["upper"] < 0.5 if rec["side"] == 1 else est["lower"] >= 0.5)
    assert json.loads((out / "attack.json").read_text())["summary"] == report["summary"]


def test_inflated_theory_raises_alarms(demo_config: Any, honest: Any, tmp_path: Path) -> None:
    audit = prepare(load_spec(demo_config[0]))
    audit.noise = InflatedNoise(audit.noise.kernel, audit.noise.vocab_size, audit.noise.beta, audit.noise.sigma)
    inflated = run_audit(audit, tmp_path / "audit")
    report = run_attack(audit, tmp_path / "attack", [POINT], AttackSettings(**SMALL), results=inflated)
    assert report["summary"][0]["certified"]["count"] > 0
    assert report["alarms"], "an inflated theory must be caught by the attack"
    # the attack itself is the honest run's (same seeds); only the certificates changed
    honest_records = {r["id"]: r for r in honest[1]["records"]}
    for rec in report["records"]:
        assert rec.get("estimate") == honest_records[rec["id"]].get("estimate")
        assert rec["alarm"] == (rec["certified"] and bool(rec["success"]))


def test_kill_resume_and_batch_size(demo_config: Any, honest: Any, tmp_path: Path) -> None:
    out, report = honest
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    (killed / "attack.json").unlink()
    lines = (killed / LOG_NAME).read_bytes().split(b"\n")
    (killed / LOG_NAME).write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:40])  # 2 records + a torn line
    audit = prepare(load_spec(demo_config[0]), batch_size=7)
    resumed = run_attack(audit, killed, [POINT], AttackSettings(**SMALL), results_path=out / "audit" / "results.json",
                         resume=True)
    assert _view(resumed)["records"] == _view(report)["records"]
    assert resumed["summary"] == report["summary"]


def test_cli_bad_arguments_write_nothing(demo_config: Any, tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "never"
    for args in (["--points", "1"], ["--points", "x:0.5"], ["--points", "-1:0.5"], ["--method", "psychic"],
                 ["--steps", "0"], ["--results", str(tmp_path / "missing.json")]):
        res = runner.invoke(app, ["attack", "--config", str(demo_config[0]), "--out", str(target), *args])
        assert res.exit_code == 2, (args, res.output)
        assert not target.exists()
        assert len(res.output.strip().splitlines()) == 1


def test_cli_refuses_to_mix_runs(honest: Any, demo_config: Any) -> None:
    out, _ = honest
    res = CliRunner().invoke(app, ["attack", "--config", str(demo_config[0]), "--out", str(out),
                                   "--points", "0:1.5"])
    assert res.exit_code == 2 and "already holds an attack" in res.output
