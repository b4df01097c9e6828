"""PDF/A-3b from the report HTML (weasyprint) with results.json attached, PAdES signing and validation (pyHanko).

Validation reads ``status.bottom_line`` (intact, valid, trusted) and also requires the signature to cover
the whole file: an incremental update appended after signing keeps ``intact`` true but is rejected here.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass
from typing import Any

from hybridcert.reports.keys import Identity

RESULTS_ATTACHMENT = "results.json"
SIGNATURE_FIELD = "HybridcertSignature"


def render_pdf(html: str, results_bytes: bytes | None, created: dt.datetime,
               attachment_name: str = RESULTS_ATTACHMENT) -> bytes:
    """PDF/A-3b of ``html`` with ``results_bytes`` attached as ``attachment_name`` (AFRelationship Data).

    Byte-deterministic for the same inputs (dates come from ``created``, not the clock).
    """
    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    attachments = []
    if results_bytes is not None:
        attachments.append(weasyprint.Attachment(
            string=results_bytes, name=attachment_name, description=f"{attachment_name} (machine-readable data)",
            created=created, modified=created, relationship="Data",
        ))
    pdf: bytes = weasyprint.HTML(string=html, base_url=None).write_pdf(
        pdf_variant="pdf/a-3b", attachments=attachments, uncompressed_pdf=False, finisher=_unique_af,
    )
    return pdf


def _unique_af(document: Any, pdf: Any) -> None:
    """Keep one /AF entry per associated file (ISO 19005-3 6.8): weasyprint's PDF/A-3 step adds each
    attachment's file specification twice (once from the EmbeddedFiles name tree, once as the object)."""
    af = pdf.catalog.get("AF")
    if af is None:
        return
    unique = list(dict.fromkeys(af))  # entries are references such as b"9 0 R"
    del af[:]
    af.extend(unique)


def sign_pdf(pdf: bytes, identity: Identity, *, reason: str, tsa_url: str | None = None) -> bytes:
    """Sign ``pdf`` PAdES (B-B, or B-T with a TSA) with the identity's P-256 key and certificate."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers, timestamps

    chain = [str(p) for p in identity.chain]
    signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
        str(identity.pades_key), str(identity.pades_cert), ca_chain_files=chain
    )
    if signer is None:
        raise ValueError(f"cannot load the PAdES key {identity.pades_key} with {identity.pades_cert}")
    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason, name=identity.name,
    )
    timestamper = timestamps.HTTPTimeStamper(tsa_url) if tsa_url else None
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    _producer_for_xmp(writer)
    out = _pdf17_signer(signers)(meta, signer=signer, timestamper=timestamper).sign_pdf(writer)
    data: bytes = out.getvalue()
    return data


def _producer_for_xmp(writer: Any) -> None:
    """Make the Info dictionary's /Producer the value pyHanko writes into the XMP metadata (pdf:Producer) when it
    signs: ISO 19005-3 6.6.3 wants the two to agree, and pyHanko appends its name to the Info entry only."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.metadata.model import VENDOR

    try:
        info = writer.trailer["/Info"]
    except KeyError:
        return
    info.get_object()["/Producer"] = generic.TextStringObject(VENDOR)


def _pdf17_signer(signers: Any) -> Any:
    """A pyHanko PdfSigner that keeps the document at PDF 1.7 (what PDF/A-3 is built on, ISO 19005-3 6.1.2).

    pyHanko's default registers the ISO 32002 extension for an ECDSA P-256 key, which raises the catalog's
    /Version to 2.0: the signed file would then claim PDF/A-3 while declaring PDF 2.0. ECDSA in a PAdES
    (ETSI.CAdES.detached) signature is valid PDF 1.7; only the ESIC extension PAdES asks for is registered.
    """
    from pyhanko.sign.signers import constants
    from pyhanko.sign.signers.pdf_signer import PdfSigner

    class Pdf17Signer(PdfSigner):
        def register_extensions(self, pdf_out: Any, *, md_algorithm: str) -> None:
            pdf_out.ensure_output_version(version=(1, 7))
            pdf_out.register_extension(constants.ESIC_EXTENSION_1)

    return Pdf17Signer


@dataclass(frozen=True)
class PadesStatus:
    ok: bool
    detail: str
    signer_sha256: str | None = None


def validate_pdf(pdf: bytes, trust_roots: list[Any]) -> PadesStatus:
    """Validate the PDF's single PAdES signature against ``trust_roots`` (asn1crypto certificates)."""
    import hashlib

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        sigs = reader.embedded_signatures
    except Exception as exc:  # noqa: BLE001 - any parse failure is a failed check
        return PadesStatus(False, f"cannot read the PDF ({type(exc).__name__}: {exc})")
    if len(sigs) != 1:
        return PadesStatus(False, f"expected one signature, found {len(sigs)}")
    vc = ValidationContext(trust_roots=trust_roots, allow_fetching=False, revocation_mode="soft-fail")
    quiet = logging.getLogger("pyhanko")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # pyHanko logs a traceback for an untrusted signer; we report it ourselves
    try:
        status = validate_pdf_signature(sigs[0], vc)
    except Exception as exc:  # noqa: BLE001
        return PadesStatus(False, f"validation error ({type(exc).__name__}: {exc})")
    finally:
        quiet.setLevel(level)
    signer = hashlib.sha256(status.signing_cert.dump()).hexdigest() if status.signing_cert is not None else None
    problems = []
    if not status.intact:
        problems.append("document digest does not match (modified after signing)")
    if not status.valid:
        problems.append("cryptographic signature invalid")
    if not status.trusted:
        problems.append("signer certificate does not chain to the trust anchor")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        cov = status.coverage.name if status.coverage is not None else "unknown"
        problems.append(f"signature does not cover the whole file ({cov}: content appended after signing)")
    if not status.bottom_line:
        problems.append("pyHanko bottom_line is False")
    if problems:
        return PadesStatus(False, "; ".join(dict.fromkeys(problems)), signer)
    from cryptography import x509

    from hybridcert.reports.keys import describe_name

    who = describe_name(x509.load_der_x509_certificate(status.signing_cert.dump()).subject)
    ts = status.timestamp_validity
    when = (f"RFC 3161 timestamp {ts.timestamp:%Y-%m-%dT%H:%M:%SZ} (TSA trusted: {ts.trusted})" if ts is not None
            else f"signing time {status.signer_reported_dt:%Y-%m-%dT%H:%M:%SZ} self-asserted"
            if status.signer_reported_dt else "no signing time")
    return PadesStatus(True, f"bottom_line=True, whole file covered, signed by {who}; {when}", signer)


def embedded_file(pdf: bytes, name: str = RESULTS_ATTACHMENT) -> bytes | None:
    """The bytes of the embedded file ``name`` (from the PDF's EmbeddedFiles name tree), or None."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    names = reader.root.get("/Names")
    if names is None or "/EmbeddedFiles" not in names:
        return None
    tree = names["/EmbeddedFiles"]
    entries = list(tree.get("/Names", []))
    for kid in tree.get("/Kids", []):
        entries.extend(kid.get_object().get("/Names", []))
    for key, spec in zip(entries[::2], entries[1::2], strict=True):
        spec = spec.get_object()
        fname = str(spec.get("/UF", spec.get("/F", key)))
        if fname == name:
            data: bytes = spec["/EF"]["/F"].get_object().data
            return data
    return None
