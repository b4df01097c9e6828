"""Signed audit folders: verify-report passes on a good folder and names what failed after each tampering."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridcert.cli import app
from hybridcert.reports import keys
from hybridcert.reports.keys import Identity
from hybridcert.reports.pdf import embedded_file, validate_pdf
from hybridcert.reports.publish import (
    ENVELOPE,
    SIGNER_CERTS,
    SignedReport,
    demo_report,
    render_and_sign,
    verify_report,
)
from hybridcert.reports.verify import _asn1
from tests.reports.synthetic import make_results, write_results


def cli_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybridcert", *args], capture_output=True, text=True, timeout=120)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, in-process (saves the interpreter start-up of a subprocess per call)."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def failed(folder: Path, identity: Identity) -> set[str]:
    """Run `hybridcert verify-report` (in-process, the real CLI code) and return the names of failed checks.

    Asserts the exit code agrees: 0 when nothing failed, 1 otherwise.
    """
    anchor = folder.parent / "anchor.crt"
    shutil.copy(identity.pades_cert, anchor)
    result = CliRunner().invoke(app, ["verify-report", str(folder), "--trust", str(anchor)])
    names = {line[6:].split(":", 1)[0] for line in result.stdout.splitlines() if line.startswith("FAIL  ")}
    assert result.exit_code == (1 if names else 0), result.stdout
    api = {c.name for c in verify_report(folder, anchor) if not c.ok}
    assert names == api
    return names


def flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    path.write_bytes(bytes(data))


def test_good_folder_verifies_via_cli(signed: SignedReport, identity: Identity) -> None:
    anchor = identity.dsse_cert.parent / keys.ANCHOR
    proc = cli_subprocess("verify-report", str(signed.folder), "--trust", str(anchor))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert all(line.startswith("PASS") for line in lines[:-1]) and len(lines) >= 10
    assert lines[-1] == "all checks passed"
    for name in ("DSSE signature", "PAdES report.pdf", "sha256 report.pdf", "embedded results"):
        assert any(name in line for line in lines)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("results.json", {"sha256 results.json", "embedded results"}),
        ("report.html", {"sha256 report.html"}),
        ("report.pdf", {"sha256 report.pdf", "PAdES report.pdf"}),
        (ENVELOPE, {"envelope"}),
    ],
)
def test_flipped_byte_fails_and_is_named(signed_copy: Path, identity: Identity, target: str,
                                          expected: set[str]) -> None:
    flip(signed_copy / target)
    bad = failed(signed_copy, identity)
    assert expected <= bad or (target == ENVELOPE and bad & {"envelope", "DSSE signature"}), bad


def test_flipped_payload_byte_in_envelope_fails_signature(signed_copy: Path, identity: Identity) -> None:
    path = signed_copy / ENVELOPE
    text = path.read_text()
    start = text.index('"payload": "') + len('"payload": "') + 40
    letter = text[start]
    path.write_text(text[:start] + ("B" if letter != "B" else "C") + text[start + 1:])
    assert "DSSE signature" in failed(signed_copy, identity)


def test_flipped_byte_cli_exit_1(signed_copy: Path, identity: Identity) -> None:
    flip(signed_copy / "report.html", 0.3)
    proc = cli("verify-report", str(signed_copy), "--trust", str(identity.pades_cert))
    assert proc.returncode == 1
    assert "FAIL  sha256 report.html" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("FAILED: ")


def _append_incremental_update(pdf: bytes) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    info = w.root
    info["/Lang"] = generic.TextStringObject("fr")
    w.update_root()
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def test_incremental_update_is_rejected(signed_copy: Path, identity: Identity) -> None:
    pdf_path = signed_copy / "report.pdf"
    original = pdf_path.read_bytes()
    updated = _append_incremental_update(original)
    assert updated.startswith(original) and len(updated) > len(original)
    status = validate_pdf(updated, [_asn1(identity.pades_certificate())])
    assert not status.ok and "cover the whole file" in status.detail
    assert validate_pdf(original, [_asn1(identity.pades_certificate())]).ok
    pdf_path.write_bytes(updated)
    assert {"PAdES report.pdf", "sha256 report.pdf"} <= failed(signed_copy, identity)


def test_swapped_certificate_fails(signed_copy: Path, identity: Identity, other_identity: Identity) -> None:
    # The signer certificates replaced by another identity's (same names, different keys).
    shutil.copy(other_identity.dsse_cert, signed_copy / SIGNER_CERTS)
    assert "DSSE signer certificate" in failed(signed_copy, identity)


def test_wrong_trust_anchor_fails(signed: SignedReport, other_identity: Identity) -> None:
    proc = cli("verify-report", str(signed.folder), "--trust", str(other_identity.pades_cert))
    assert proc.returncode == 1
    assert "FAIL  DSSE signer certificate" in proc.stdout and "FAIL  PAdES report.pdf" in proc.stdout


@pytest.mark.slow
def test_resigned_by_someone_else_fails(signed_copy: Path, identity: Identity, other_identity: Identity) -> None:
    """A consistent folder re-signed with another key (e.g. after editing results) fails the original anchor."""
    render_and_sign(signed_copy, other_identity)
    assert not failed(signed_copy, other_identity)
    assert {"DSSE signer certificate", "PAdES report.pdf"} <= failed(signed_copy, identity)


def test_missing_file_fails(signed_copy: Path, identity: Identity) -> None:
    (signed_copy / "report.html").unlink()
    assert "sha256 report.html" in failed(signed_copy, identity)


def test_no_private_key_in_any_artefact(signed: SignedReport, identity: Identity) -> None:
    markers = keys.private_key_markers(identity)
    assert len(markers) >= 5
    markers += [m.hex().encode() for m in markers if len(m) <= 32]
    for path in signed.folder.iterdir():
        data = path.read_bytes()
        assert b"PRIVATE KEY" not in data, path
        for m in markers:
            assert m not in data, (path, m[:16])
    pdf = (signed.folder / "report.pdf").read_bytes()
    assert embedded_file(pdf) == (signed.folder / "results.json").read_bytes()


def test_report_cli_usage_errors(tmp_path: Path, signed: SignedReport, identity: Identity) -> None:
    proc = cli("report", str(signed.folder))
    assert proc.returncode == 2 and "missing signing identity" in proc.stderr
    proc = cli("report", str(tmp_path), "--identity", str(identity.dsse_key.parent))
    assert proc.returncode == 2 and "no results file" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "results.json").write_text('{"schema": "hybridcert/results/v1", "tool": {}}')
    proc = cli("report", str(tmp_path), "--identity", str(identity.dsse_key.parent))
    assert proc.returncode == 2 and "tool." in proc.stderr
    proc = cli("verify-report", str(tmp_path / "nope"), "--trust", str(identity.pades_cert))
    assert proc.returncode == 2


@pytest.mark.slow
def test_report_cli_with_explicit_key_files(tmp_path: Path, identity: Identity) -> None:
    folder = tmp_path / "audit"
    write_results(folder, make_results(n_inputs=6))
    proc = cli("report", str(folder), "--key", str(identity.dsse_key), "--cert", str(identity.dsse_cert),
               "--pades-key", str(identity.pades_key), "--pades-cert", str(identity.pades_cert), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report_id"].startswith("HCR-")
    proc = cli("verify-report", str(folder), "--trust", str(identity.pades_cert), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True
    # --gate: the 6-input fixture fails its criteria, so the gate exits 1 (after writing the report)
    proc = cli("report", str(folder), "--identity", str(identity.dsse_key.parent), "--gate")
    assert proc.returncode == 1 and "acceptance FAIL" in proc.stdout


def test_sign_html_cli(tmp_path: Path, identity: Identity) -> None:
    from hybridcert.reports.html import render

    (tmp_path / "verification.html").write_text(render("report-base.html.j2", {"title": "Verification",
                                                                                "generator": "g", "demo": False}))
    (tmp_path / "verification.json").write_text('{"ok": true}')
    proc = cli("report", str(tmp_path), "--identity", str(identity.dsse_key.parent), "--sign-html",
               "verification.html", "--attach", "verification.json")
    assert proc.returncode == 0, proc.stderr
    assert embedded_file((tmp_path / "verification.pdf").read_bytes(), "verification.json") == b'{"ok": true}'
    proc = cli("verify-report", str(tmp_path), "--trust", str(identity.pades_cert), "--expect",
               "verification-report")
    assert proc.returncode == 0, proc.stdout
    assert "PASS  sha256 verification.json" in proc.stdout
    assert "PASS  embedded verification.json" in proc.stdout
    proc = cli("report", str(tmp_path), "--identity", str(identity.dsse_key.parent), "--sign-html", "../x.html")
    assert proc.returncode == 2


@pytest.mark.parametrize("link", [ENVELOPE, SIGNER_CERTS])
def test_link_at_a_later_target_refused_before_anything_is_written(
    tmp_path: Path, identity: Identity, link: str,
) -> None:
    """Regression (QA of issue 10): a link planted at attestation.dsse.json was refused only after report.html
    and report.pdf had been rewritten, leaving a folder whose report no longer matched its signature."""
    folder = tmp_path / "audit"
    write_results(folder, make_results(n_inputs=4))
    victim = tmp_path / "victim"
    victim.write_bytes(b"SECRET")
    (folder / link).symlink_to(victim)
    proc = cli("report", str(folder), "--identity", str(identity.dsse_key.parent))
    assert proc.returncode == 2 and "symbolic link" in proc.stderr
    assert victim.read_bytes() == b"SECRET"
    assert sorted(p.name for p in folder.iterdir()) == sorted([link, "results.json"])
    (folder / "v.html").write_text("<p>v</p>")
    (folder / "v.dsse.json").symlink_to(victim)
    proc = cli("report", str(folder), "--identity", str(identity.dsse_key.parent), "--sign-html", "v.html")
    assert proc.returncode == 2 and "symbolic link" in proc.stderr
    assert not (folder / "v.pdf").exists() and victim.read_bytes() == b"SECRET"


def test_fifo_in_place_of_a_signed_file_fails_without_blocking(signed_copy: Path, identity: Identity) -> None:
    """QA of issue 10: a FIFO at results.json blocked verify-report forever (the content and embedded checks
    opened it for reading); now those checks fail, naming it."""
    import os
    import threading

    for name in ("results.json", "report.pdf"):
        (signed_copy / name).unlink()
        os.mkfifo(signed_copy / name)
    unblock = threading.Timer(20, lambda: [open(signed_copy / n, "wb").close() for n in ("results.json", "report.pdf")])
    unblock.start()
    try:
        names = failed(signed_copy, identity)
    finally:
        unblock.cancel()
    assert {"sha256 results.json", "results.json content", "embedded results", "PAdES report.pdf"} <= names


def test_identity_inside_the_audit_folder_is_refused(tmp_path: Path) -> None:
    write_results(tmp_path, make_results(n_inputs=4))
    ident = keys.init_identity(tmp_path / "identity", "Ada", "QA", "Org")
    with pytest.raises(ValueError, match="keep signing identities out of audit folders"):
        render_and_sign(tmp_path, ident)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_demo_report_signs_and_verifies(tmp_path: Path, identity: Identity) -> None:
    write_results(tmp_path / "demo-out", make_results(n_inputs=4))
    signed, checks = demo_report(tmp_path / "demo-out", tmp_path / "demo-identity")
    assert checks and all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    assert "DEMO IDENTITY - NOT FOR COMPLIANCE USE" in (tmp_path / "demo-out" / "report.html").read_text()
    assert any("DEMO IDENTITY" in c.detail for c in checks if c.name == "in-toto statement")
    with pytest.raises(ValueError, match="real identity"):
        demo_report(tmp_path / "demo-out", identity.dsse_key.parent)


def test_keys_init_cli(tmp_path: Path) -> None:
    proc = cli("keys", "init", "--out", str(tmp_path / "id"), "--name", "Ada", "--role", "QA", "--org", "Org", "--demo")
    assert proc.returncode == 0, proc.stderr
    ident = keys.load_identity(tmp_path / "id")
    assert ident.demo and ident.name.startswith(keys.DEMO_NAME)
    proc = cli("keys", "init", "--out", str(tmp_path / "id"), "--name", "Ada", "--role", "QA", "--org", "Org")
    assert proc.returncode == 2 and "not empty" in proc.stderr
