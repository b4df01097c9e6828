"""The report's issue-13 blocks on a real demo audit: the paper's baselines table (with the plain statement that a
unimodal certificate holds only when the other modality is untouched) and certified-against-attacked, shown only
for an attack run against these very certificates."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hybridcert.attacks.engine import AttackSettings
from hybridcert.attacks.run import run_attack
from hybridcert.audits.config import parse_spec
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.reports.bundle import parse_results
from hybridcert.reports.evidence import attack_summary
from hybridcert.reports.html import render_report
from hybridcert.reports.summary import acceptance
from tests.attacks.conftest import SMALL


@pytest.mark.slow
def test_report_shows_baselines_and_attack(demo_config: Any, tmp_path: Path) -> None:
    path, data = demo_config
    data = tomllib.loads(path.read_text())
    data["certify"]["baselines"] = ["image-only", "text-only"]
    audit = prepare(parse_spec(data, path.parent))
    run_attack(audit, tmp_path / "x", [(0, 1.5), (1, 0.25)], AttackSettings(**SMALL))  # audits into x/audit
    folder = tmp_path / "x" / "audit"
    raw_bytes = (folder / "results.json").read_bytes()
    bundle = parse_results(raw_bytes)
    summary = attack_summary(folder, bundle.raw)
    assert summary is not None and summary["matches"]
    html = render_report(bundle, acceptance(bundle), None, summary)
    assert 'id="baselines"' in html and 'data-method="image-only"' in html and 'data-method="text-only"' in html
    assert "holds only when the other modality is untouched" in html
    assert 'id="attack"' in html and 'data-budget="1" data-radius="0.25"' in html
    assert "No soundness alarm" in html
    # an attack.json against other certificates is not shown as if it were this audit's
    certify = {k: v for k, v in data["certify"].items() if k != "baselines"}
    plain = {**data, "seed": data["seed"] + 1, "certify": certify}
    other = run_audit(prepare(parse_spec(plain, path.parent)), tmp_path / "other")
    assert other.inputs
    other_bundle = parse_results((tmp_path / "other" / "results.json").read_bytes())
    (tmp_path / "other" / "attack").mkdir()
    (tmp_path / "other" / "attack" / "attack.json").write_text((tmp_path / "x" / "attack.json").read_text())
    mismatch = attack_summary(tmp_path / "other", other_bundle.raw)
    assert mismatch is not None and not mismatch["matches"]
    assert "run against other certificates" in render_report(other_bundle, acceptance(other_bundle), None, mismatch)
    # no baselines asked: no table
    assert 'id="baselines"' not in render_report(other_bundle, acceptance(other_bundle), None, None)
    broken = json.loads((tmp_path / "x" / "attack.json").read_text())
    broken["summary"][0]["certified"]["count"] = "3"
    (tmp_path / "other" / "attack" / "attack.json").write_text(json.dumps(broken))
    try:
        attack_summary(tmp_path / "other", other_bundle.raw)
    except ValueError as exc:
        assert "attack.json: not a hybridcert attack.json" in str(exc)
    else:
        raise AssertionError("a malformed attack.json must be refused")
