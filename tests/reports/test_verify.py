"""verify-report checks the report type it is asked for, exactly the files that type signs, and every byte of the
signer certificates (issue 10); one function per check (issue 11). These tests use the CLI and stable imports
only, so that they can be run against older code to see them fail there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridcert.cli import app
from hybridcert.reports.html import render
from hybridcert.reports.keys import Identity, init_identity
from hybridcert.reports.publish import SignedReport
from tests.reports.synthetic import make_ca

ATTACK_NOTE = "same trusted identity signs a verification report; the compliance report around it is forged"


def verify(folder: Path, anchor: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify-report", str(folder), "--trust", str(anchor), *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


def sign_html(folder: Path, identity: Identity, *attach: str) -> None:
    args = ["report", str(folder), "--identity", str(identity.dsse_key.parent), "--sign-html", "verification.html"]
    for a in attach:
        args += ["--attach", a]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stdout + result.stderr


def write_verification_html(folder: Path) -> None:
    (folder / "verification.html").write_text(
        render("report-base.html.j2", {"title": "Verification", "generator": "g", "demo": False}))
    (folder / "verification.json").write_text('{"ok": true}')


def test_envelope_of_another_report_type_is_refused(signed_copy: Path, identity: Identity) -> None:
    """Issue 10 (critical): the documented `report DIR --sign-html verification.html` workflow, by the same
    trusted identity, yields an envelope that must not vouch for a forged compliance report next to it:
    radii x10 in results.json, an edited report.html, an unsigned report.pdf."""
    from hybridcert.reports.pdf import render_pdf

    anchor = identity.pades_cert
    write_verification_html(signed_copy)
    sign_html(signed_copy, identity, "verification.json")
    # wherever the signing put the verification envelope, the attacker names it as the compliance one
    if (signed_copy / "verification.dsse.json").exists():
        shutil.move(signed_copy / "verification.dsse.json", signed_copy / "attestation.dsse.json")
        shutil.copy(signed_copy / "verification.signer-certs.pem", signed_copy / "signer-certs.pem")
    raw = json.loads((signed_copy / "results.json").read_text())
    for rec in raw["inputs"]:
        for point in rec["frontier"]:
            if point["radius"] is not None:
                point["radius"] *= 10
    (signed_copy / "results.json").write_text(json.dumps(raw, indent=2))
    html = (signed_copy / "report.html").read_text().replace("Robustness certification report",
                                                             "Robustness certification report (edited)")
    (signed_copy / "report.html").write_text(html)
    import datetime as dt

    # an unsigned PDF (small, to keep the test fast: what matters is that nothing signs it)
    small = (signed_copy / "verification.html").read_text()
    (signed_copy / "report.pdf").write_bytes(render_pdf(small, None, dt.datetime(2026, 11, 25, tzinfo=dt.UTC)))
    code, out = verify(signed_copy, anchor)
    assert code == 1, out
    assert "all checks passed" not in out
    assert "FAIL  report type" in out and "verification-report" in out
    assert "FAIL  PAdES report.pdf: expected one signature, found 0" in out


def test_documented_workflow_keeps_both_reports_verifiable(signed_copy: Path, identity: Identity) -> None:
    write_verification_html(signed_copy)
    sign_html(signed_copy, identity, "verification.json", "results.json")
    code, out = verify(signed_copy, identity.pades_cert)
    assert code == 0, out
    assert "NOTE  unsigned files: not covered by this signature: verification" in out
    code, out = verify(signed_copy, identity.pades_cert, "--expect", "verification-report")
    assert code == 0, out
    assert "PASS  embedded verification.json" in out and "PASS  sha256 results.json" in out


def test_unsigned_folder_is_one_line(tmp_path: Path, identity: Identity) -> None:
    from tests.reports.synthetic import write_results

    write_results(tmp_path / "a")
    code, out = verify(tmp_path / "a", identity.pades_cert)
    assert code == 1
    assert out.strip().splitlines() == [
        f"NOT SIGNED: {tmp_path / 'a'} is not signed as a compliance report: attestation.dsse.json and "
        "signer-certs.pem are missing"]
    code, out = verify(tmp_path / "a", identity.pades_cert, "--json")
    assert code == 1 and json.loads(out)["not_signed"] and json.loads(out)["ok"] is False


def test_missing_certificates_file_is_named_without_errno(signed_copy: Path, identity: Identity) -> None:
    (signed_copy / "signer-certs.pem").unlink()
    code, out = verify(signed_copy, identity.pades_cert)
    assert code == 1 and "Errno" not in out
    assert "FAIL  DSSE signer certificate: signer-certs.pem: no such file or directory" in out


@pytest.mark.parametrize("edit", ["append-newline", "append-text", "prepend-comment", "swap-pades", "add-cert"])
def test_any_edit_of_signer_certs_fails(signed_copy: Path, identity: Identity, other_identity: Identity,
                                        edit: str) -> None:
    path = signed_copy / "signer-certs.pem"
    data = path.read_bytes()
    blocks = [b"-----BEGIN" + b for b in data.split(b"-----BEGIN")[1:]]
    if edit == "append-newline":
        data += b"\n"
    elif edit == "append-text":
        data += b"harmless looking note\n"
    elif edit == "prepend-comment":
        data = b"# signer certificates\n" + data
    elif edit == "swap-pades":
        data = blocks[0] + other_identity.pades_cert.read_bytes() + b"".join(blocks[2:])
    else:
        data += other_identity.pades_cert.read_bytes()
    path.write_bytes(data)
    code, out = verify(signed_copy, identity.pades_cert)
    assert code == 1, out
    assert "FAIL  sha256 signer-certs.pem" in out or "FAIL  DSSE signer certificate" in out


def test_extra_files_are_listed(signed_copy: Path, identity: Identity) -> None:
    (signed_copy / "notes.txt").write_text("x")
    (signed_copy / "data").mkdir()
    code, out = verify(signed_copy, identity.pades_cert)
    assert code == 0, out
    assert "NOTE  unsigned files: not covered by this signature: data/, notes.txt" in out


def test_pdf_signed_by_another_certificate_than_the_statement_names(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Both PAdES certificates chain to the trusted CA, but the statement names A's: the PAdES check fails."""
    from hybridcert.reports import publish

    ca_cert, ca_key = make_ca(tmp_path / "ca")
    a = init_identity(tmp_path / "a", "Ada", "QA", "Org", ca_cert=ca_cert, ca_key=ca_key)
    b = init_identity(tmp_path / "b", "Bob", "QA", "Org", ca_cert=ca_cert, ca_key=ca_key)
    folder = tmp_path / "out"
    folder.mkdir()
    write_verification_html(folder)
    real = publish.sign_pdf
    monkeypatch.setattr(publish, "sign_pdf", lambda pdf, ident, **kw: real(pdf, b, **kw))
    publish.sign_html_report(folder, "verification.html", a, attach="verification.json")
    code, out = verify(folder, ca_cert, "--expect", "verification-report")
    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  PAdES verification.pdf: PDF signed by a different "
                                                     "certificate"), out
    monkeypatch.setattr(publish, "sign_pdf", real)
    publish.sign_html_report(folder, "verification.html", a, attach="verification.json")
    assert verify(folder, ca_cert, "--expect", "verification-report")[0] == 0


def test_checks_are_one_function_each() -> None:
    """Issue 11: the verification is a sequence of small typed check functions, not one function of closures."""
    import inspect

    from hybridcert.reports import verify as v

    checks = [f for name, f in inspect.getmembers(v, inspect.isfunction) if name.startswith(("check_", "note_"))]
    assert len(checks) >= 10
    for f in [*checks, v.verify_folder]:
        src = inspect.getsource(f)
        assert len(src.splitlines()) <= 60, f.__name__
        assert "def " not in src.split("\n", 1)[1], f"{f.__name__} defines a nested function"
    assert v.ReportCheck.__name__ != "CheckResult"


def test_envelope_of_the_right_type_that_leaves_a_file_unsigned_fails(signed_copy: Path, identity: Identity) -> None:
    """A compliance-report envelope by the trusted signer whose statement leaves report.pdf out: report.pdf could
    be anything (here it is still the good one), so the folder fails and the missing subject is named."""
    import base64

    from hybridcert.reports import publish
    from hybridcert.reports.verify import COMPLIANCE_REPORT

    env = json.loads((signed_copy / "attestation.dsse.json").read_text())
    predicate = json.loads(base64.b64decode(env["payload"]))["predicate"]
    info = publish.signing_info(identity, predicate["signed_at"], None)
    publish.sign_folder(signed_copy, COMPLIANCE_REPORT, ["results.json", "report.html"], identity, info,
                        {k: predicate[k] for k in ("report_id", "results", "acceptance")})
    code, out = verify(signed_copy, identity.pades_cert)
    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    assert failed == ["FAIL  signed files: not signed: report.pdf"], out


def test_unreadable_trust_anchor_is_one_line_exit_2(signed: SignedReport, tmp_path: Path) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate")
    for anchor, why in ((tmp_path / "nope.crt", "no such file"), (tmp_path / "bad.crt", "not a PEM or DER X.509")):
        result = CliRunner().invoke(app, ["verify-report", str(signed.folder), "--trust", str(anchor)])
        assert result.exit_code == 2 and why in result.stderr and "Errno" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
