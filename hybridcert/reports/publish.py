"""Render and sign an audit folder, and verify a signed folder (issue 5).

``render_and_sign`` writes, next to ``results.json``:

- ``report.html``: the report (self-contained HTML),
- ``report.pdf``: the same HTML as PDF/A-3b with results.json attached, signed PAdES (P-256 certificate),
- ``signer-certs.pem``: the signer's public certificates (DSSE leaf, PAdES leaf, issuing CAs),
- ``attestation.dsse.json``: a DSSE envelope (Ed25519) around an in-toto Statement v1 whose subjects are
  results.json, report.html, report.pdf and signer-certs.pem with their sha256 (predicate REPORT_PREDICATE).

``sign_html_report`` signs another HTML report (the verifier's) the same way under its own names
(``STEM.pdf``, ``STEM.signer-certs.pem``, ``STEM.dsse.json``, predicate VERIFICATION_PREDICATE), so it never
replaces the compliance report's envelope. No private key is ever written into the folder.
Verification (one function per check, an explicit expected report type) is in ``hybridcert.reports.verify``
(docs/report.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from hybridcert import __version__
from hybridcert.reports import dsse
from hybridcert.reports.bundle import canonical_bytes, load_results
from hybridcert.reports.html import SELF_ASSERTED, SigningInfo, render_report
from hybridcert.reports.keys import Identity, describe_name, fingerprint, load_identity
from hybridcert.reports.pdf import render_pdf, sign_pdf
from hybridcert.reports.summary import AcceptanceResult, acceptance
from hybridcert.reports.verify import (
    COMPLIANCE_REPORT,
    ENVELOPE,
    HTML,
    PDF,
    REPORT_PREDICATE,
    RESULTS,
    SIGNER_CERTS,
    VERIFICATION_PREDICATE,
    ReportCheck,
    ReportType,
    plain_name,
    verification_report,
    verify_folder,
    verify_report,
)
from hybridcert.results.atomic import check_writable, write_bytes_atomic

__all__ = [
    "ENVELOPE", "HTML", "PDF", "REPORT_PREDICATE", "RESULTS", "SIGNER_CERTS", "VERIFICATION_PREDICATE",
    "ReportCheck", "SignedReport", "demo_report", "render_and_sign", "sign_html_report", "verify_folder",
    "verify_report",
]


@dataclass(frozen=True)
class SignedReport:
    folder: Path
    report_id: str
    files: dict[str, Path]
    acceptance: AcceptanceResult


def _utc(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)


def _resolve_identity(identity: Identity | Path | str) -> Identity:
    if isinstance(identity, Identity):
        identity.check()
        return identity
    return load_identity(Path(identity))


def _refuse_keys_inside(folder: Path, identity: Identity) -> None:
    """Private keys never travel with the artefacts: refuse an identity stored inside the output folder."""
    root = folder.resolve()
    for key in (identity.dsse_key, identity.pades_key):
        if key.resolve().is_relative_to(root):
            raise ValueError(f"the private key {key} is inside {folder}; keep signing identities out of audit folders")


def signing_info(identity: Identity, signed_at: str, tsa_url: str | None) -> SigningInfo:
    dsse_cert = identity.dsse_certificate()
    anchor = identity.trust_anchor()
    return SigningInfo(
        name=identity.name, role=identity.role, organisation=identity.organisation, demo=identity.demo,
        signed_at=signed_at, timestamp_source=tsa_url or SELF_ASSERTED,
        dsse_keyid="sha256:" + fingerprint(dsse_cert),
        dsse_certificate_sha256=fingerprint(dsse_cert),
        pades_certificate_sha256=fingerprint(identity.pades_certificate()),
        trust_anchor_sha256=fingerprint(anchor),
        trust_anchor_subject=describe_name(anchor.subject),
    )


def _signer_pem(identity: Identity) -> bytes:
    certs = [identity.dsse_certificate(), identity.pades_certificate(), *identity.chain_certificates()]
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def sign_folder(
    folder: Path, rtype: ReportType, subjects: list[str], identity: Identity, info: SigningInfo,
    predicate: dict[str, Any],
) -> Path:
    """Write the signer's public certificates (``rtype.signer_certs``), then the DSSE envelope
    (``rtype.envelope``) over ``subjects`` and that certificates file (so any edit of it is detected)."""
    _write(folder / rtype.signer_certs, _signer_pem(identity))
    subjects = [*subjects, rtype.signer_certs]
    statement = {
        "_type": dsse.STATEMENT_TYPE,
        "subject": [{"name": s, "digest": {"sha256": _sha256((folder / s).read_bytes())}} for s in subjects],
        "predicateType": rtype.predicate_type,
        "predicate": {
            **predicate,
            "generator": {"name": "hybridcert", "version": __version__},
            "signer": {"name": info.name, "role": info.role, "organisation": info.organisation, "demo": info.demo},
            "signed_at": info.signed_at,
            "timestamp_source": info.timestamp_source,
            "certificates": {
                "dsse_sha256": info.dsse_certificate_sha256,
                "pades_sha256": info.pades_certificate_sha256,
                "trust_anchor_sha256": info.trust_anchor_sha256,
            },
        },
    }
    envelope = dsse.sign_envelope(canonical_bytes(statement), identity.dsse_private_key(), info.dsse_keyid)
    path = folder / rtype.envelope
    _write(path, json.dumps(envelope, indent=2).encode() + b"\n")
    return path


def render_and_sign(
    audit_dir: Path | str,
    identity: Identity | Path | str,
    *,
    criteria: Path | None = None,
    tsa_url: str | None = None,
    signing_time: dt.datetime | None = None,
) -> SignedReport:
    """Render report.html and report.pdf from ``audit_dir/results.json``, sign both ways (module docstring)."""
    folder = Path(audit_dir)
    bundle = load_results(folder)
    check_writable(*(folder / name for name in (HTML, PDF, SIGNER_CERTS, ENVELOPE)))
    ident = _resolve_identity(identity)
    _refuse_keys_inside(folder, ident)
    acc = acceptance(bundle, criteria)
    signed_at = _utc(signing_time or dt.datetime.now(dt.UTC))
    info = signing_info(ident, signed_at, tsa_url)
    from hybridcert.reports.evidence import attack_summary

    html = render_report(bundle, acc, info, attack_summary(folder, bundle.raw))
    _write(folder / HTML, html.encode("utf-8"))
    pdf = render_pdf(html, bundle.file_bytes, bundle.results.created_at)
    signed = sign_pdf(pdf, ident, reason=f"hybridcert compliance report {bundle.report_id}", tsa_url=tsa_url)
    _write(folder / PDF, signed)
    predicate = {
        "report_id": bundle.report_id,
        "results": {"schema": bundle.results.schema_, "canonical_sha256": bundle.canonical_sha256},
        "acceptance": acc.as_json(),
    }
    env = sign_folder(folder, COMPLIANCE_REPORT, [RESULTS, HTML, PDF], ident, info, predicate)
    files = {name: folder / name for name in (RESULTS, HTML, PDF, SIGNER_CERTS, ENVELOPE)}
    files[ENVELOPE] = env
    return SignedReport(folder=folder, report_id=bundle.report_id, files=files, acceptance=acc)


def sign_html_report(
    folder: Path | str, html_name: str, identity: Identity | Path | str, *, tsa_url: str | None = None,
    extra_subjects: list[str] | None = None, attach: str | None = None, signing_time: dt.datetime | None = None,
) -> Path:
    """Sign another HTML report (e.g. the verifier's ``verification.html``) the same way: a PDF/A-3b twin
    signed PAdES (``attach``: a file of the folder embedded in it), and a DSSE envelope of the type
    :func:`~hybridcert.reports.verify.verification_report` over the HTML, the PDF, ``extra_subjects`` and the
    signer certificates. Returns the envelope's path.
    """
    folder = Path(folder)
    rtype = verification_report(html_name)
    extras = list(dict.fromkeys(extra_subjects or []))
    if attach is not None and attach not in extras:
        extras.insert(0, attach)
    for name in extras:
        if not plain_name(name) or not (folder / name).is_file():
            raise ValueError(f"{name!r} is not a file name inside {folder}")
        if name in rtype.fixed_subjects or name == rtype.envelope:
            raise ValueError(f"{name!r} is one of the files the signing writes; it cannot be attached")
    check_writable(*(folder / name for name in (rtype.pdf, rtype.signer_certs, rtype.envelope)))
    ident = _resolve_identity(identity)
    _refuse_keys_inside(folder, ident)
    html = (folder / html_name).read_text(encoding="utf-8")
    when = signing_time or dt.datetime.now(dt.UTC)
    info = signing_info(ident, _utc(when), tsa_url)
    attachment = (folder / attach).read_bytes() if attach else None
    pdf = render_pdf(html, attachment, when, attachment_name=attach or "")
    _write(folder / rtype.pdf, sign_pdf(pdf, ident, reason=f"hybridcert {html_name}", tsa_url=tsa_url))
    predicate = {"report": html_name, "attachments": extras, "embedded": attach}
    return sign_folder(folder, rtype, [html_name, rtype.pdf, *extras], ident, info, predicate)


def demo_report(audit_dir: Path | str, identity_dir: Path | str) -> tuple[SignedReport, list[ReportCheck]]:
    """For ``hybridcert demo``: create a labelled throwaway identity in ``identity_dir`` (outside the audit
    folder; reused if it exists), render and sign the audit folder, and verify it against that identity."""
    from hybridcert.reports.keys import ANCHOR, META, demo_identity

    identity_dir = Path(identity_dir)
    ident = load_identity(identity_dir) if (identity_dir / META).is_file() else demo_identity(identity_dir)
    if not ident.demo:
        raise ValueError(f"{identity_dir} holds a real identity; the demo only signs with a demo identity")
    signed = render_and_sign(audit_dir, ident)
    return signed, verify_report(audit_dir, identity_dir / ANCHOR)
