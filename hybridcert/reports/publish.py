"""Render and sign an audit folder, and verify a signed folder (issue 5).

``render_and_sign`` writes, next to ``results.json``:

- ``report.html``: the report (self-contained HTML),
- ``report.pdf``: the same HTML as PDF/A-3b with results.json attached, signed PAdES (P-256 certificate),
- ``attestation.dsse.json``: a DSSE envelope (Ed25519) around an in-toto Statement v1 whose subjects are
  results.json, report.html and report.pdf with their sha256,
- ``signer-certs.pem``: the signer's public certificates (DSSE leaf, PAdES leaf, issuing CAs).

No private key is ever written into the folder. ``verify_report`` checks all of it against a trust anchor
and returns one :class:`CheckResult` per check; a folder is good only when every check holds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hybridcert import __version__
from hybridcert.reports import dsse
from hybridcert.reports.bundle import Bundle, canonical_bytes, load_results, parse_results
from hybridcert.reports.html import SELF_ASSERTED, SigningInfo, render_report
from hybridcert.reports.keys import Identity, fingerprint, load_certificates, load_identity
from hybridcert.reports.pdf import embedded_file, render_pdf, sign_pdf, validate_pdf
from hybridcert.reports.summary import AcceptanceResult, acceptance
from hybridcert.results.atomic import write_bytes_atomic

RESULTS, HTML, PDF = "results.json", "report.html", "report.pdf"
ENVELOPE, SIGNER_CERTS = "attestation.dsse.json", "signer-certs.pem"
REPORT_SUBJECTS = (RESULTS, HTML, PDF)
REPORT_PREDICATE = "https://hybridcert.dev/report/v1"
VERIFICATION_PREDICATE = "https://hybridcert.dev/verification-report/v1"
PREDICATES = (REPORT_PREDICATE, VERIFICATION_PREDICATE)


@dataclass(frozen=True)
class SignedReport:
    folder: Path
    report_id: str
    files: dict[str, Path]
    acceptance: AcceptanceResult


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


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
        trust_anchor_subject=anchor.subject.rfc4514_string(),
    )


def _signer_pem(identity: Identity) -> bytes:
    certs = [identity.dsse_certificate(), identity.pades_certificate(), *identity.chain_certificates()]
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def sign_folder(
    folder: Path, subjects: list[str], identity: Identity, info: SigningInfo, predicate_type: str,
    predicate: dict[str, Any],
) -> Path:
    """Write the DSSE envelope over ``subjects`` (files in ``folder``) and the signer's public certificates."""
    statement = {
        "_type": dsse.STATEMENT_TYPE,
        "subject": [{"name": s, "digest": {"sha256": _sha256((folder / s).read_bytes())}} for s in subjects],
        "predicateType": predicate_type,
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
    _write(folder / SIGNER_CERTS, _signer_pem(identity))
    path = folder / ENVELOPE
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
    ident = _resolve_identity(identity)
    _refuse_keys_inside(folder, ident)
    acc = acceptance(bundle, criteria)
    signed_at = _utc(signing_time or dt.datetime.now(dt.UTC))
    info = signing_info(ident, signed_at, tsa_url)
    html = render_report(bundle, acc, info)
    _write(folder / HTML, html.encode("utf-8"))
    pdf = render_pdf(html, bundle.file_bytes, bundle.results.created_at)
    signed = sign_pdf(pdf, ident, reason=f"hybridcert compliance report {bundle.report_id}", tsa_url=tsa_url)
    _write(folder / PDF, signed)
    predicate = {
        "report_id": bundle.report_id,
        "results": {"schema": bundle.results.schema_, "canonical_sha256": bundle.canonical_sha256},
        "acceptance": acc.as_json(),
    }
    env = sign_folder(folder, list(REPORT_SUBJECTS), ident, info, REPORT_PREDICATE, predicate)
    files = {name: folder / name for name in (*REPORT_SUBJECTS, ENVELOPE, SIGNER_CERTS)}
    files[ENVELOPE] = env
    return SignedReport(folder=folder, report_id=bundle.report_id, files=files, acceptance=acc)


def sign_html_report(
    folder: Path | str, html_name: str, identity: Identity | Path | str, *, tsa_url: str | None = None,
    extra_subjects: list[str] | None = None, attach: str | None = None, signing_time: dt.datetime | None = None,
) -> Path:
    """Sign another HTML report (e.g. the verifier's ``verification.html``) the same way: a PDF/A-3b twin
    signed PAdES (``attach``: a file of the folder embedded in it), and a DSSE envelope over the HTML, the PDF
    and ``extra_subjects``.
    """
    folder = Path(folder)
    ident = _resolve_identity(identity)
    _refuse_keys_inside(folder, ident)
    html = (folder / html_name).read_text(encoding="utf-8")
    when = signing_time or dt.datetime.now(dt.UTC)
    info = signing_info(ident, _utc(when), tsa_url)
    attachment = (folder / attach).read_bytes() if attach else None
    pdf_name = Path(html_name).with_suffix(".pdf").name
    pdf = render_pdf(html, attachment, when, attachment_name=attach or "")
    _write(folder / pdf_name, sign_pdf(pdf, ident, reason=f"hybridcert {html_name}", tsa_url=tsa_url))
    subjects = [html_name, pdf_name, *(extra_subjects or [])]
    return sign_folder(folder, subjects, ident, info, VERIFICATION_PREDICATE, {"report": html_name})


def demo_report(audit_dir: Path | str, identity_dir: Path | str) -> tuple[SignedReport, list[CheckResult]]:
    """For ``hybridcert demo``: create a labelled throwaway identity in ``identity_dir`` (outside the audit
    folder; reused if it exists), render and sign the audit folder, and verify it against that identity."""
    from hybridcert.reports.keys import ANCHOR, META, demo_identity

    identity_dir = Path(identity_dir)
    ident = load_identity(identity_dir) if (identity_dir / META).is_file() else demo_identity(identity_dir)
    if not ident.demo:
        raise ValueError(f"{identity_dir} holds a real identity; the demo only signs with a demo identity")
    signed = render_and_sign(audit_dir, ident)
    return signed, verify_report(audit_dir, identity_dir / ANCHOR)


# ---------------------------------------------------------------------------------------------------------
# verification
# ---------------------------------------------------------------------------------------------------------


def _asn1(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as ax509

    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _chain_ok(leaf: x509.Certificate, others: list[x509.Certificate], anchors: list[x509.Certificate]) -> str | None:
    """None when ``leaf`` chains to one of ``anchors`` for digital signatures, else the reason."""
    from pyhanko_certvalidator import CertificateValidator, ValidationContext

    vc = ValidationContext(trust_roots=[_asn1(a) for a in anchors], other_certs=[_asn1(c) for c in others],
                           allow_fetching=False, revocation_mode="soft-fail")
    validator = CertificateValidator(_asn1(leaf), validation_context=vc)
    try:
        asyncio.run(validator.async_validate_usage({"digital_signature"}))  # type: ignore[no-untyped-call]
    except Exception as exc:  # noqa: BLE001 - any path-building or validation failure means "not trusted"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None


def verify_report(audit_dir: Path | str, trust_cert: Path | str) -> list[CheckResult]:
    """Check a signed folder against the trust anchor(s) in ``trust_cert``; one result per check.

    Checks: the envelope parses; its signer certificate (from signer-certs.pem, matched by key id) chains to
    the anchor; the Ed25519 signature over the DSSE PAE; the in-toto Statement; the sha256 of every subject;
    results.json validates and matches the signed canonical hash and report id; each PDF's PAdES signature
    (bottom_line, whole file covered, signer = the identity in the statement); the results.json embedded in
    report.pdf equals results.json. Raises ValueError only when the trust anchor itself cannot be read.
    """
    folder = Path(audit_dir)
    anchors = load_certificates(Path(trust_cert))
    checks: list[CheckResult] = []

    def run(name: str, fn: Callable[[], str]) -> bool:
        try:
            detail = fn()
            checks.append(CheckResult(name, True, detail))
            return True
        except Exception as exc:  # noqa: BLE001 - every failure becomes a failed check, never a traceback
            checks.append(CheckResult(name, False, str(exc) or type(exc).__name__))
            return False

    state: dict[str, Any] = {}

    def envelope() -> str:
        path = folder / ENVELOPE
        if not path.is_file():
            raise ValueError(f"{ENVELOPE} is missing")
        env, payload, keyid, sig = dsse.parse_envelope(path.read_bytes())
        state.update(env=env, payload=payload, keyid=keyid, sig=sig)
        return f"well-formed, payloadType {dsse.PAYLOAD_TYPE}, key id {keyid}"

    def signer_certificate() -> str:
        if "keyid" not in state:
            raise ValueError("skipped: the envelope could not be read")
        path = folder / SIGNER_CERTS
        if not path.is_file():
            raise ValueError(f"{SIGNER_CERTS} is missing")
        certs = load_certificates(path)
        keyid = state["keyid"]
        match = [c for c in certs if "sha256:" + fingerprint(c) == keyid]
        if not match:
            raise ValueError(f"no certificate in {SIGNER_CERTS} has the envelope's key id {keyid} "
                             "(swapped certificate?)")
        leaf = match[0]
        reason = _chain_ok(leaf, [c for c in certs if c is not leaf], anchors)
        if reason:
            raise ValueError(f"DSSE signer certificate does not chain to the trust anchor ({reason})")
        state["leaf"] = leaf
        return f"{leaf.subject.rfc4514_string()} chains to the trust anchor"

    def signature() -> str:
        if "leaf" not in state:
            raise ValueError("skipped: no trusted signer certificate")
        dsse.verify_signature(state["env"], state["payload"], state["sig"], state["leaf"].public_key())
        state["signed"] = True
        return "Ed25519 signature over the DSSE PAE is valid"

    def statement() -> str:
        if not state.get("signed"):
            raise ValueError("skipped: the envelope's signature was not verified")
        st = json.loads(state["payload"].decode("utf-8"))
        if not isinstance(st, dict) or st.get("_type") != dsse.STATEMENT_TYPE:
            raise ValueError(f"payload is not an in-toto Statement v1 ({dsse.STATEMENT_TYPE})")
        if st.get("predicateType") not in PREDICATES:
            raise ValueError(f"unknown predicateType {st.get('predicateType')!r}")
        subjects = st.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise ValueError("statement has no subjects")
        if not all(isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("digest"), dict)
                   for s in subjects):
            raise ValueError("every subject needs a name and a digest")
        names = [s["name"] for s in subjects]
        if len(set(names)) != len(names):
            raise ValueError("subjects repeat a name")
        if not isinstance(st.get("predicate"), dict):
            raise ValueError("statement has no predicate object")
        if st["predicateType"] == REPORT_PREDICATE and sorted(map(str, names)) != sorted(REPORT_SUBJECTS):
            raise ValueError(f"subjects are {names}, expected {list(REPORT_SUBJECTS)}")
        pred = st.get("predicate", {})
        if pred.get("certificates", {}).get("dsse_sha256") != fingerprint(state["leaf"]):
            raise ValueError("the statement names a different DSSE certificate than the one that signed it")
        state["statement"] = st
        signer = pred.get("signer", {})
        demo = " [DEMO IDENTITY - NOT FOR COMPLIANCE USE]" if signer.get("demo") else ""
        return (f"{st['predicateType']}, signed by {signer.get('name')} ({signer.get('role')}, "
                f"{signer.get('organisation')}) at {pred.get('signed_at')} ({pred.get('timestamp_source')}){demo}")

    ok = run("envelope", envelope)
    ok = run("DSSE signer certificate", signer_certificate) and ok
    ok = run("DSSE signature", signature) and ok
    run("in-toto statement", statement)
    st = state.get("statement")
    subjects = st["subject"] if st else [{"name": n} for n in REPORT_SUBJECTS]
    for subj in subjects:
        name = str(subj.get("name"))

        def digest(subj: dict[str, Any] = subj, name: str = name) -> str:
            if st is None:
                raise ValueError("skipped: no verified statement to compare with")
            if "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"subject name {name!r} is not a plain file name")
            path = folder / name
            if not path.is_file():
                raise ValueError(f"{name} is missing")
            want = subj.get("digest", {}).get("sha256")
            got = _sha256(path.read_bytes())
            if got != want:
                raise ValueError(f"sha256 {got} differs from the signed {want}")
            return f"sha256 {got} matches the statement"

        run(f"sha256 {name}", digest)

    def results_check() -> str:
        bundle: Bundle = load_results(folder)
        if st is None:
            raise ValueError("skipped: valid schema, but no verified statement to compare it with")
        if st["predicateType"] != REPORT_PREDICATE:
            state["bundle"] = bundle
            return f"valid {bundle.results.schema_} (its sha256 is checked above)"
        pred = st.get("predicate", {})
        if pred.get("results", {}).get("canonical_sha256") != bundle.canonical_sha256:
            raise ValueError("RFC 8785 hash of results.json differs from the signed one")
        if pred.get("report_id") != bundle.report_id:
            raise ValueError(f"report id {bundle.report_id} differs from the signed {pred.get('report_id')}")
        state["bundle"] = bundle
        return f"valid {bundle.results.schema_}, report id {bundle.report_id}, canonical hash matches"

    names = [str(s.get("name")) for s in subjects]
    if RESULTS in names:
        run("results.json content", results_check)
    trusted = [_asn1(a) for a in anchors]
    for pdf_name in [n for n in names if n.endswith(".pdf")]:

        def pades(pdf_name: str = pdf_name) -> str:
            path = folder / pdf_name
            if not path.is_file():
                raise ValueError(f"{pdf_name} is missing")
            status = validate_pdf(path.read_bytes(), trusted)
            if not status.ok:
                raise ValueError(status.detail)
            if st is not None:
                want = st.get("predicate", {}).get("certificates", {}).get("pades_sha256")
                if status.signer_sha256 != want:
                    raise ValueError("PDF signed by a different certificate than the statement names")
            return status.detail

        run(f"PAdES {pdf_name}", pades)
    if RESULTS in names and PDF in names:

        def embedded() -> str:
            pdf = (folder / PDF).read_bytes()
            inner = embedded_file(pdf)
            if inner is None:
                raise ValueError("report.pdf has no embedded results.json")
            if inner != (folder / RESULTS).read_bytes():
                raise ValueError("the results.json embedded in report.pdf differs from results.json")
            parse_results(inner, "embedded results.json")
            return "the results.json embedded in report.pdf equals results.json"

        run("embedded results", embedded)
    return checks
