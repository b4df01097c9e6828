"""Verify a signed report folder: one function per check, each returning a :class:`ReportCheck` (docs/report.md).

The verifier is told which report type it verifies (:data:`COMPLIANCE_REPORT` by default, or
:func:`verification_report`), never the folder: an envelope whose predicate is another type's fails, and the
set of signed files must be exactly the files that type promises. Every file of the folder that no signature
covers is named in a ``NOTE`` (not a failure: audit folders hold configs and data too).

Order and dependencies (a check whose input could not be trusted is not run, so one cause gives one FAIL):

1. ``envelope``: the DSSE envelope file of the type exists, is small and well-formed;
2. ``DSSE signer certificate``: the certificate whose fingerprint is the envelope's key id chains to the anchor;
3. ``DSSE signature``: Ed25519 over the DSSE PAE, with that certificate's key;
4. ``in-toto statement``: a Statement v1 with plain-file subjects, naming the DSSE certificate that signed it;
5. ``report type``: its predicateType is the expected type's;
6. ``signed files``: the subjects are exactly the files the type promises (missing and extra ones named);
7. ``sha256 NAME``: one per subject (the signer certificates file is a subject, so any edit of it fails);
8. ``results.json content`` (compliance report): schema, soundness cross-checks, signed canonical hash and id;
9. ``PAdES NAME.pdf``: pyHanko bottom line, whole file covered, signed by the certificate the statement names
   (run even when 1-6 failed, so that a wrong trust anchor shows on both signatures);
10. ``embedded results`` / ``embedded NAME``: the file embedded in the PDF equals the folder's;
11. ``unsigned files`` (NOTE): what the folder holds that no checked signature covers.

A folder without the type's envelope is *not signed*: :func:`verify_folder` then returns no checks and a
``not_signed`` reason, which the CLI prints as one line (exit 1).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hybridcert.reports import dsse
from hybridcert.reports.bundle import load_results, parse_results
from hybridcert.reports.keys import describe_name, fingerprint, load_certificates
from hybridcert.reports.pdf import embedded_file, validate_pdf
from hybridcert.results.canonical import MAX_FILE_BYTES, read_bounded

RESULTS, HTML, PDF = "results.json", "report.html", "report.pdf"
ENVELOPE, SIGNER_CERTS = "attestation.dsse.json", "signer-certs.pem"
REPORT_PREDICATE = "https://hybridcert.dev/report/v2"
VERIFICATION_PREDICATE = "https://hybridcert.dev/verification-report/v2"
#: Reading limits for the two small files the verifier parses before any signature is checked.
MAX_ENVELOPE_BYTES = 4 * 2**20
MAX_CERTS_BYTES = 256 * 2**10
#: At most this many unsigned file names are listed (then a count).
MAX_LISTED = 20


class Status(Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOTE = "NOTE"


@dataclass(frozen=True)
class ReportCheck:
    """The outcome of one check of a signed report folder: which check, its status and why.

    (The verifier's numerical checks have their own result type, ``hybridcert.verifier.result.CheckResult``.)
    """

    name: str
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        """False only for a failed check (a NOTE informs, it does not fail the folder)."""
        return self.status is not Status.FAIL

    def line(self) -> str:
        return f"{self.status.value}  {self.name}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "status": self.status.value, "detail": self.detail}


def _pass(name: str, detail: str) -> ReportCheck:
    return ReportCheck(name, Status.PASS, detail)


def _fail(name: str, detail: str) -> ReportCheck:
    return ReportCheck(name, Status.FAIL, detail)


@dataclass(frozen=True)
class ReportType:
    """What a signed folder of one report type holds: its predicate, envelope, certificates, signed files."""

    key: str
    label: str
    predicate_type: str
    envelope: str
    signer_certs: str
    html: str
    pdf: str
    #: Files signed whatever the predicate says (the rest, for a verification report, are its attachments).
    fixed_subjects: tuple[str, ...]

    def promised(self, predicate: dict[str, Any]) -> set[str]:
        """The exact set of subjects this type promises, given the (verified) predicate."""
        files = set(self.fixed_subjects)
        attachments = predicate.get("attachments")
        if self.key != COMPLIANCE_REPORT.key and isinstance(attachments, list):
            files |= {a for a in attachments if isinstance(a, str)}
        return files


COMPLIANCE_REPORT = ReportType(
    key="report", label="compliance report", predicate_type=REPORT_PREDICATE, envelope=ENVELOPE,
    signer_certs=SIGNER_CERTS, html=HTML, pdf=PDF, fixed_subjects=(RESULTS, HTML, PDF, SIGNER_CERTS),
)


def verification_report(html_name: str = "verification.html") -> ReportType:
    """The type of an HTML report signed with ``hybridcert report DIR --sign-html NAME`` (e.g. the verifier's):
    envelope ``STEM.dsse.json``, certificates ``STEM.signer-certs.pem``, PDF ``STEM.pdf``."""
    if not plain_name(html_name) or not html_name.endswith(".html"):
        raise ValueError(f"{html_name!r} is not a plain .html file name")
    stem = html_name[: -len(".html")]
    certs = f"{stem}.signer-certs.pem"
    return ReportType(
        key="verification-report", label=f"signed HTML report ({html_name})", predicate_type=VERIFICATION_PREDICATE,
        envelope=f"{stem}.dsse.json", signer_certs=certs, html=html_name, pdf=f"{stem}.pdf",
        fixed_subjects=(html_name, f"{stem}.pdf", certs),
    )


def report_type(key: str, html_name: str = "verification.html") -> ReportType:
    """The report type named on the command line: ``report`` or ``verification-report``."""
    if key == COMPLIANCE_REPORT.key:
        return COMPLIANCE_REPORT
    if key == "verification-report":
        return verification_report(html_name)
    raise ValueError(f"unknown report type {key!r} (expected 'report' or 'verification-report')")


def plain_name(name: object) -> bool:
    """A file name with no path part, not hidden, printable (what a subject may be)."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and name.isprintable() and "/" not in name
            and "\\" not in name and not name.startswith("."))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """At most ``limit`` bytes of a regular file; a FIFO, a device or a larger file is refused unread."""
    try:
        return read_bounded(path, limit)
    except ValueError as exc:
        raise ValueError(str(exc).replace(f"{path}: ", f"{path.name}: ", 1)) from None


# ---------------------------------------------------------------------------------------------------------
# the checks (one function each)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    raw: dict[str, Any]
    payload: bytes
    keyid: str
    signature: bytes


@dataclass(frozen=True)
class Subject:
    name: str
    sha256: str


@dataclass(frozen=True)
class Statement:
    """The verified in-toto statement, reduced to what the checks use."""

    predicate_type: str
    predicate: dict[str, Any]
    subjects: tuple[Subject, ...]
    pades_sha256: str | None


def check_envelope(folder: Path, rtype: ReportType) -> tuple[ReportCheck, Envelope | None]:
    name = "envelope"
    try:
        data = _read_bounded(folder / rtype.envelope, MAX_ENVELOPE_BYTES)
        env, payload, keyid, sig = dsse.parse_envelope(data)
    except (OSError, ValueError) as exc:
        return _fail(name, f"{rtype.envelope}: {_why(exc)}"), None
    return (_pass(name, f"{rtype.envelope} well-formed, payloadType {dsse.PAYLOAD_TYPE}, key id {keyid}"),
            Envelope(env, payload, keyid, sig))


def check_signer_certificate(folder: Path, rtype: ReportType, envelope: Envelope,
                             anchors: list[x509.Certificate]) -> tuple[ReportCheck, x509.Certificate | None]:
    name = "DSSE signer certificate"
    try:
        certs = load_certificates_bytes(_read_bounded(folder / rtype.signer_certs, MAX_CERTS_BYTES),
                                        rtype.signer_certs)
    except (OSError, ValueError) as exc:
        return _fail(name, f"{rtype.signer_certs}: {_why(exc)}"), None
    match = [c for c in certs if "sha256:" + fingerprint(c) == envelope.keyid]
    if not match:
        return _fail(name, f"no certificate in {rtype.signer_certs} has the envelope's key id {envelope.keyid} "
                           "(swapped certificate?)"), None
    leaf = match[0]
    reason = chain_problem(leaf, [c for c in certs if c is not leaf], anchors)
    if reason:
        return _fail(name, f"DSSE signer certificate does not chain to the trust anchor ({reason})"), None
    return _pass(name, f"{describe_name(leaf.subject)} chains to the trust anchor"), leaf


def check_dsse_signature(envelope: Envelope, leaf: x509.Certificate) -> ReportCheck:
    name = "DSSE signature"
    try:
        dsse.verify_signature(envelope.raw, envelope.payload, envelope.signature, leaf.public_key())
    except dsse.DSSEError as exc:
        return _fail(name, str(exc))
    return _pass(name, "Ed25519 signature over the DSSE PAE is valid")


def check_statement(envelope: Envelope, leaf: x509.Certificate) -> tuple[ReportCheck, Statement | None]:
    """The signed payload is an in-toto Statement v1 with plain-file subjects and names its own signer."""
    name = "in-toto statement"
    try:
        st = json.loads(envelope.payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _fail(name, f"payload is not JSON ({_why(exc)})"), None
    if not isinstance(st, dict) or st.get("_type") != dsse.STATEMENT_TYPE:
        return _fail(name, f"payload is not an in-toto Statement v1 ({dsse.STATEMENT_TYPE})"), None
    ptype, pred, raw_subjects = st.get("predicateType"), st.get("predicate"), st.get("subject")
    if not isinstance(ptype, str) or not isinstance(pred, dict):
        return _fail(name, "statement has no predicateType string and predicate object"), None
    if not isinstance(raw_subjects, list) or not raw_subjects:
        return _fail(name, "statement has no subjects"), None
    subjects = []
    for s in raw_subjects:
        digest = s.get("digest") if isinstance(s, dict) else None
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(s, dict) or not plain_name(s.get("name")) or not isinstance(sha, str) \
                or not _is_sha256(sha):
            return _fail(name, f"subject {s!r:.80} needs a plain file name and a sha256 digest"), None
        subjects.append(Subject(str(s["name"]), sha))
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        return _fail(name, f"subjects repeat a name: {names}"), None
    certs = _obj(pred.get("certificates"))
    if certs.get("dsse_sha256") != fingerprint(leaf):
        return _fail(name, "the statement names a different DSSE certificate than the one that signed it"), None
    pades = certs.get("pades_sha256")
    signer = _obj(pred.get("signer"))
    demo = " [DEMO IDENTITY - NOT FOR COMPLIANCE USE]" if signer.get("demo") is True else ""
    detail = (f"{ptype}, signed by {signer.get('name')} ({signer.get('role')}, {signer.get('organisation')}) "
              f"at {pred.get('signed_at')} ({pred.get('timestamp_source')}){demo}")
    return _pass(name, detail), Statement(ptype, pred, tuple(subjects), pades if isinstance(pades, str) else None)


def check_report_type(statement: Statement, rtype: ReportType) -> ReportCheck:
    name = "report type"
    if statement.predicate_type != rtype.predicate_type:
        hint = {REPORT_PREDICATE: "a compliance report (verify it without --expect)",
                VERIFICATION_PREDICATE: "a signed HTML report (verify it with --expect verification-report)"}
        what = hint.get(statement.predicate_type, "of an unknown type")
        return _fail(name, f"the envelope {rtype.envelope} signs {what}, predicate {statement.predicate_type!r}; "
                           f"expected the {rtype.label}'s {rtype.predicate_type!r}")
    if rtype.key != COMPLIANCE_REPORT.key and statement.predicate.get("report") != rtype.html:
        return _fail(name, f"the statement signs report {statement.predicate.get('report')!r}, "
                           f"expected {rtype.html!r}")
    return _pass(name, f"{rtype.label} ({rtype.predicate_type})")


def check_signed_files(statement: Statement, rtype: ReportType) -> ReportCheck:
    name = "signed files"
    want = rtype.promised(statement.predicate)
    got = {s.name for s in statement.subjects}
    missing, extra = sorted(want - got), sorted(got - want)
    if missing or extra:
        parts = ([f"not signed: {', '.join(missing)}"] if missing else []) + \
                ([f"signed but not part of a {rtype.label}: {', '.join(extra)}"] if extra else [])
        return _fail(name, "; ".join(parts))
    return _pass(name, f"exactly the files of a {rtype.label}: {', '.join(sorted(got))}")


def check_subject_digest(folder: Path, subject: Subject) -> ReportCheck:
    name = f"sha256 {subject.name}"
    path = folder / subject.name
    if not path.is_file():
        return _fail(name, f"{subject.name} is missing")
    try:
        got = sha256_file(path)
    except OSError as exc:
        return _fail(name, f"{subject.name}: {_why(exc)}")
    if got != subject.sha256:
        return _fail(name, f"sha256 {got} differs from the signed {subject.sha256}")
    return _pass(name, f"sha256 {got} matches the statement")


def check_results_content(folder: Path, statement: Statement) -> ReportCheck:
    """results.json validates (schema and soundness cross-checks) and is the one the predicate names."""
    name = "results.json content"
    try:
        bundle = load_results(folder / RESULTS)
    except (OSError, ValueError) as exc:
        return _fail(name, _why(exc))
    pred = statement.predicate
    results = _obj(pred.get("results"))
    if results.get("canonical_sha256") != bundle.canonical_sha256:
        return _fail(name, "RFC 8785 hash of results.json differs from the signed one")
    if pred.get("report_id") != bundle.report_id:
        return _fail(name, f"report id {bundle.report_id} differs from the signed {pred.get('report_id')}")
    return _pass(name, f"valid {bundle.results.schema_}, report id {bundle.report_id}, canonical hash matches")


def check_pades(folder: Path, pdf_name: str, trusted: list[Any], statement: Statement | None) -> ReportCheck | None:
    """The PDF's PAdES signature (pyHanko bottom line, whole file) by the certificate the statement names.

    Without a verified statement only a failure is reported (None otherwise): the failure that left no
    statement is already a FAIL, and a valid PDF signature alone says nothing about the folder.
    """
    name = f"PAdES {pdf_name}"
    path = folder / pdf_name
    if not path.is_file():
        return _fail(name, f"{pdf_name} is missing")
    try:
        data = _read_bounded(path)
    except (OSError, ValueError) as exc:
        return _fail(name, _why(exc))
    status = validate_pdf(data, trusted)
    if not status.ok:
        return _fail(name, status.detail)
    if statement is None:
        return None
    if status.signer_sha256 is None or status.signer_sha256 != statement.pades_sha256:
        return _fail(name, f"PDF signed by a different certificate (sha256 {status.signer_sha256}) than the "
                           f"statement names ({statement.pades_sha256})")
    return _pass(name, f"{status.detail}; the certificate the statement names")


def check_embedded(folder: Path, pdf_name: str, file_name: str) -> ReportCheck:
    name = "embedded results" if file_name == RESULTS else f"embedded {file_name}"
    try:
        inner = embedded_file(_read_bounded(folder / pdf_name), file_name)
        outer = _read_bounded(folder / file_name)
    except Exception as exc:  # noqa: BLE001 - a hostile PDF may break the parser in any way: a failed check
        return _fail(name, f"cannot read {pdf_name} or {file_name} ({_why(exc)})")
    if inner is None:
        return _fail(name, f"{pdf_name} has no embedded {file_name}")
    if inner != outer:
        return _fail(name, f"the {file_name} embedded in {pdf_name} differs from {file_name}")
    if file_name == RESULTS:
        try:
            parse_results(inner, f"results.json embedded in {pdf_name}")
        except ValueError as exc:
            return _fail(name, _why(exc))
    return _pass(name, f"the {file_name} embedded in {pdf_name} equals {file_name}")


def note_unsigned_files(folder: Path, covered: set[str]) -> ReportCheck | None:
    """A NOTE naming what the folder holds that the checked signature does not cover (None when nothing)."""
    others: list[str] = []
    for p in sorted(folder.iterdir()):
        if p.name not in covered:
            others.append(p.name + ("/" if p.is_dir() else ""))
    if not others:
        return None
    shown = ", ".join(others[:MAX_LISTED]) + (f" and {len(others) - MAX_LISTED} more" if len(others) > MAX_LISTED
                                              else "")
    return ReportCheck("unsigned files", Status.NOTE, f"not covered by this signature: {shown}")


# ---------------------------------------------------------------------------------------------------------
# the whole folder
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderVerification:
    """Every check of one folder against one expected report type; ``not_signed`` when there is no envelope."""

    folder: Path
    report_type: ReportType
    checks: tuple[ReportCheck, ...]
    not_signed: str | None = None

    @property
    def ok(self) -> bool:
        return self.not_signed is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]


def verify_folder(audit_dir: Path | str, trust_cert: Path | str,
                  expect: ReportType = COMPLIANCE_REPORT) -> FolderVerification:
    """Check a signed folder as a report of type ``expect`` against the trust anchor(s) in ``trust_cert``.

    Raises ValueError only when the trust anchor cannot be read or ``audit_dir`` is not a folder.
    """
    folder = Path(audit_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no audit folder at {folder}")
    anchors = load_trust_anchors(Path(trust_cert))
    if not (folder / expect.envelope).exists():
        missing = [n for n in (expect.envelope, expect.signer_certs) if not (folder / n).exists()]
        return FolderVerification(folder, expect, (), not_signed=(
            f"{folder} is not signed as a {expect.label}: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing"))
    checks: list[ReportCheck] = []
    statement: Statement | None = None
    chk, envelope = check_envelope(folder, expect)
    checks.append(chk)
    if envelope is not None:
        chk, leaf = check_signer_certificate(folder, expect, envelope, anchors)
        checks.append(chk)
        if leaf is not None:
            chk = check_dsse_signature(envelope, leaf)
            checks.append(chk)
            if chk.ok:
                chk, statement = check_statement(envelope, leaf)
                checks.append(chk)
    typed = False
    if statement is not None:
        checks.append(check_report_type(statement, expect))
        typed = checks[-1].ok
        if typed:
            checks.append(check_signed_files(statement, expect))
            checks.extend(check_subject_digest(folder, s) for s in statement.subjects)
            if expect.key == COMPLIANCE_REPORT.key:
                checks.append(check_results_content(folder, statement))
    trusted = [_asn1(a) for a in anchors]
    pades = check_pades(folder, expect.pdf, trusted, statement if typed else None)
    if pades is not None:
        checks.append(pades)
    embedded = RESULTS if expect.key == COMPLIANCE_REPORT.key else (
        statement.predicate.get("embedded") if statement is not None and typed else None)
    if isinstance(embedded, str) and plain_name(embedded):
        checks.append(check_embedded(folder, expect.pdf, embedded))
    if statement is not None:  # what a verified statement covers (only then can "unsigned" be said)
        note = note_unsigned_files(folder, {expect.envelope} | {s.name for s in statement.subjects})
        if note is not None:
            checks.append(note)
    return FolderVerification(folder, expect, tuple(checks))


def verify_report(audit_dir: Path | str, trust_cert: Path | str,
                  expect: ReportType = COMPLIANCE_REPORT) -> list[ReportCheck]:
    """:func:`verify_folder` as a list of checks; a folder that is not signed gives one failed check."""
    result = verify_folder(audit_dir, trust_cert, expect)
    if result.not_signed is not None:
        return [_fail("signed folder", result.not_signed)]
    return list(result.checks)


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def load_trust_anchors(path: Path) -> list[x509.Certificate]:
    """The verifier's trust anchor file: ValueError naming the file when it is absent, too big or not X.509."""
    if not path.is_file():
        raise ValueError(f"trust anchor {path}: no such file")
    if path.stat().st_size > MAX_CERTS_BYTES:
        raise ValueError(f"trust anchor {path}: larger than {MAX_CERTS_BYTES} bytes, not a certificate file")
    try:
        anchors = load_certificates(path)
    except ValueError:
        raise ValueError(f"trust anchor {path}: not a PEM or DER X.509 certificate") from None
    if not anchors:
        raise ValueError(f"trust anchor {path}: no certificate found")
    return anchors


def load_certificates_bytes(data: bytes, source: str) -> list[x509.Certificate]:
    """The certificates of a PEM file that holds nothing else: its bytes must be exactly their PEM encoding."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate list ({_why(exc)})") from None
    canonical = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    if canonical != data:
        raise ValueError(f"{source} holds more than its certificates' PEM encoding (edited?)")
    return certs


def _asn1(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as ax509

    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def chain_problem(leaf: x509.Certificate, others: list[x509.Certificate],
                  anchors: list[x509.Certificate]) -> str | None:
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


def _obj(v: object) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (the caller then fails on the missing field)."""
    return v if isinstance(v, dict) else {}


def _is_sha256(v: object) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _why(exc: BaseException) -> str:
    """One line for an exception: its message, or for an OSError its reason without the errno (callers name
    the file)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text
