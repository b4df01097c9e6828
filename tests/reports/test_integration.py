"""The reports and the regression gate together: compare reads a signed folder through verify_report, and its
change-history object renders in section 12 of the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridcert.regression.gate import TamperedInput, compare_paths, load_audit
from hybridcert.reports.bundle import parse_results
from hybridcert.reports.html import render_report
from hybridcert.reports.keys import Identity
from hybridcert.reports.publish import SignedReport
from hybridcert.reports.summary import acceptance
from tests.reports.synthetic import make_results, write_results


def test_compare_verifies_a_signed_report_folder(signed: SignedReport, identity: Identity) -> None:
    audit = load_audit(signed.folder, trust=identity.pades_cert)
    assert audit.signature == "verified"
    assert audit.audit_id == signed.report_id  # both sides derive the same report id


def test_compare_rejects_a_tampered_signed_folder(signed_copy: Path, identity: Identity,
                                                  other_identity: Identity) -> None:
    with pytest.raises(TamperedInput, match="DSSE signer certificate"):
        load_audit(signed_copy, trust=other_identity.pades_cert)
    raw = json.loads((signed_copy / "results.json").read_text())
    raw["inputs"][0]["seconds"] = 0.0
    (signed_copy / "results.json").write_text(json.dumps(raw, indent=2))
    with pytest.raises(TamperedInput):
        load_audit(signed_copy, trust=identity.pades_cert)


def test_change_history_from_compare_renders(signed: SignedReport, tmp_path: Path) -> None:
    cand = make_results(seed=7)  # other labels: another dataset (compare refuses relabelled inputs of one dataset)
    cand["dataset"]["sha256"] = "ef" * 32
    write_results(tmp_path / "cand", cand)
    history = compare_paths(signed.folder, tmp_path / "cand", allow_config_change=True).to_dict()
    raw = {**cand, "change_history": history}
    bundle = parse_results(json.dumps(raw).encode())
    assert bundle.results.change_history is not None
    html = render_report(bundle, acceptance(bundle), None)
    assert history["previous_report_id"] == signed.report_id
    assert signed.report_id in html and f"<strong>{history['verdict']}</strong>" in html
    assert html.count("<tr><td class=\"num\">") >= len(history["deltas"]) > 0


def test_verifier_html_report_is_signed_the_same_way(tmp_path: Path, identity: Identity) -> None:
    """`hybridcert verify --results --html` (the verifier's report), then `report --sign-html`, then
    `verify-report`: the verifier's report gets the same PAdES + DSSE treatment."""
    from typer.testing import CliRunner

    from hybridcert.cli import app

    folder = tmp_path / "vout"
    write_results(folder, make_results(n_inputs=6))
    run = CliRunner().invoke(app, ["verify", "--results", str(folder / "results.json"), "--html",
                                   str(folder / "verification.html"), "--json"])
    assert run.exit_code == 0, run.stdout
    (folder / "verification.json").write_text(run.stdout)
    run = CliRunner().invoke(app, ["report", str(folder), "--identity", str(identity.dsse_key.parent),
                                   "--sign-html", "verification.html", "--attach", "verification.json",
                                   "--attach", "results.json"])
    assert run.exit_code == 0, run.stdout + run.stderr
    expect = ["--expect", "verification-report"]
    run = CliRunner().invoke(app, ["verify-report", str(folder), "--trust", str(identity.pades_cert), *expect])
    assert run.exit_code == 0, run.stdout
    assert "PASS  PAdES verification.pdf" in run.stdout and "PASS  sha256 results.json" in run.stdout
    (folder / "verification.html").write_text((folder / "verification.html").read_text().replace("PASS", "FAIL"))
    run = CliRunner().invoke(app, ["verify-report", str(folder), "--trust", str(identity.pades_cert), *expect])
    assert run.exit_code == 1 and "FAIL  sha256 verification.html" in run.stdout
