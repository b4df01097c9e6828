"""Signing identities: an Ed25519 key for DSSE and an ECDSA P-256 key for PAdES, each with an X.509 certificate.

Why two keys: pyHanko signs and validates PAdES with Ed25519, but poppler's ``pdfsig`` (NSS) and common PDF
readers do not validate Ed25519 CMS signatures, so the PDF is signed with P-256, which every PAdES
validator accepts. Both certificates chain to one trust anchor:

- self-signed (default): the P-256 certificate is self-signed (CA, path length 0) and issues the Ed25519
  certificate; the anchor is the P-256 certificate;
- ``ca_cert``/``ca_key`` given: that CA issues both leaves; the anchor is the CA certificate.

Layout of an identity folder (private keys 0600, never copied into any artefact)::

    identity.json            public metadata (name, role, organisation, demo flag, fingerprints)
    dsse-ed25519.key         PRIVATE (PKCS#8 PEM)       dsse-ed25519.crt   its certificate
    pades-p256.key           PRIVATE (PKCS#8 PEM)       pades-p256.crt     its certificate
    chain.pem                issuing CA certificate(s) (public; empty when self-signed)
    trust-anchor.crt         what a verifier passes to ``--trust``
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from hybridcert.results.atomic import write_bytes_atomic

DEMO_NAME = "DEMO IDENTITY - NOT FOR COMPLIANCE USE"

DSSE_KEY, DSSE_CERT = "dsse-ed25519.key", "dsse-ed25519.crt"
PADES_KEY, PADES_CERT = "pades-p256.key", "pades-p256.crt"
CHAIN, ANCHOR, META = "chain.pem", "trust-anchor.crt", "identity.json"

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Identity:
    """Paths and metadata of a signing identity (see the module docstring)."""

    name: str
    role: str
    organisation: str
    demo: bool
    dsse_key: Path
    dsse_cert: Path
    pades_key: Path
    pades_cert: Path
    chain: tuple[Path, ...] = ()

    def dsse_private_key(self) -> ed25519.Ed25519PrivateKey:
        key = _load_private_key(self.dsse_key)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{self.dsse_key}: the DSSE key must be an Ed25519 private key")
        return key

    def dsse_certificate(self) -> x509.Certificate:
        return load_certificate(self.dsse_cert)

    def pades_certificate(self) -> x509.Certificate:
        return load_certificate(self.pades_cert)

    def chain_certificates(self) -> list[x509.Certificate]:
        certs: list[x509.Certificate] = []
        for p in self.chain:
            certs.extend(load_certificates(p))
        return certs

    def trust_anchor(self) -> x509.Certificate:
        """The certificate a verifier trusts: the last CA of the chain, else the self-signed PAdES certificate."""
        chain = self.chain_certificates()
        return chain[-1] if chain else self.pades_certificate()

    def check(self) -> None:
        """Raise ValueError unless each key matches its certificate and the DSSE key is Ed25519."""
        key = self.dsse_private_key()
        if key.public_key() != self.dsse_certificate().public_key():
            raise ValueError(f"{self.dsse_key} does not match the public key in {self.dsse_cert}")
        pkey = _load_private_key(self.pades_key)
        if pkey.public_key() != self.pades_certificate().public_key():
            raise ValueError(f"{self.pades_key} does not match the public key in {self.pades_cert}")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lower-case hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def describe_name(name: x509.Name) -> str:
    """A certificate subject for people: 'CN=..., title=..., O=...' (no raw OIDs such as 2.5.4.12)."""
    labels = {NameOID.COMMON_NAME: "CN", NameOID.TITLE: "title", NameOID.ORGANIZATION_NAME: "O"}
    parts = []
    for attr in name:
        label = labels.get(attr.oid) or attr.oid._name  # noqa: SLF001 - cryptography's own short name
        parts.append(f"{label}={attr.value!s}")
    return ", ".join(parts)


def load_certificate(path: Path) -> x509.Certificate:
    certs = load_certificates(path)
    if not certs:
        raise ValueError(f"{path}: no certificate found")
    return certs[0]


def load_certificates(path: Path) -> list[x509.Certificate]:
    """All certificates in a PEM file (or one DER certificate)."""
    data = Path(path).read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ValueError(f"{path}: not an X.509 certificate ({exc})") from exc


def _load_private_key(path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from exc


def _write_private(path: Path, key: SigningKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_bytes_atomic(path, pem, 0o600, overwrite=False)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _subject(name: str, role: str, org: str, suffix: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{name} ({suffix})"[:64]),
        x509.NameAttribute(NameOID.TITLE, role[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org[:64]),
    ])


def _hash_for(key: Any) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _key_usage(sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=sign_certs,
                         crl_sign=sign_certs, encipher_only=False, decipher_only=False)


def _build(subject: x509.Name, public_key: Any, issuer: x509.Name, issuer_key: Any, issuer_public: Any,
           ca: bool, now: dt.datetime, days: int) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(_key_usage(ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False)
    )
    return builder.sign(issuer_key, _hash_for(issuer_key))


def init_identity(
    out: Path,
    name: str,
    role: str,
    organisation: str,
    *,
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
    demo: bool = False,
    days: int = 365,
    now: dt.datetime | None = None,
) -> Identity:
    """Create a new signing identity in the empty or absent folder ``out`` (see the module docstring)."""
    out = Path(out)
    for label, value in (("name", name), ("role", role), ("organisation", organisation)):
        if not value or not value.strip():
            raise ValueError(f"{label} must not be empty")
    if demo and DEMO_NAME not in name:
        name = f"{DEMO_NAME}: {name}"
    if (ca_cert is None) != (ca_key is None):
        raise ValueError("give both --ca-cert and --ca-key, or neither")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; refusing to overwrite a signing identity")
    now = now or dt.datetime.now(dt.UTC)
    issuer_cert: x509.Certificate | None = None
    issuer_key: Any = None
    dsse_issuer_pub: Any
    if ca_cert is not None and ca_key is not None:
        issuer_cert = load_certificate(ca_cert)
        issuer_key = _load_private_key(ca_key)
        if issuer_key.public_key() != issuer_cert.public_key():
            raise ValueError(f"{ca_key} does not match the public key in {ca_cert}")
        bc = issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints).value \
            if _has_ext(issuer_cert, x509.BasicConstraints) else None
        if bc is None or not bc.ca:
            raise ValueError(f"{ca_cert} is not a CA certificate (basicConstraints CA:TRUE missing)")
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    dsse_key = ed25519.Ed25519PrivateKey.generate()
    pades_key = ec.generate_private_key(ec.SECP256R1())
    pades_subject = _subject(name, role, organisation, "PAdES")
    if issuer_cert is None:
        pades_cert = _build(pades_subject, pades_key.public_key(), pades_subject, pades_key, pades_key.public_key(),
                            True, now, days)
        dsse_issuer, dsse_issuer_key, dsse_issuer_pub = pades_subject, pades_key, pades_key.public_key()
        anchor, chain = pades_cert, []
    else:
        pades_cert = _build(pades_subject, pades_key.public_key(), issuer_cert.subject, issuer_key,
                            issuer_cert.public_key(), False, now, days)
        dsse_issuer, dsse_issuer_key, dsse_issuer_pub = issuer_cert.subject, issuer_key, issuer_cert.public_key()
        anchor, chain = issuer_cert, [issuer_cert]
    dsse_cert = _build(_subject(name, role, organisation, "DSSE Ed25519"), dsse_key.public_key(), dsse_issuer,
                       dsse_issuer_key, dsse_issuer_pub, False, now, days)
    _write_private(out / DSSE_KEY, dsse_key)
    _write_private(out / PADES_KEY, pades_key)
    write_bytes_atomic(out / DSSE_CERT, _pem(dsse_cert))
    write_bytes_atomic(out / PADES_CERT, _pem(pades_cert))
    write_bytes_atomic(out / CHAIN, b"".join(_pem(c) for c in chain))
    write_bytes_atomic(out / ANCHOR, _pem(anchor))
    meta = {
        "name": name, "role": role, "organisation": organisation, "demo": demo,
        "self_signed": issuer_cert is None,
        "dsse_certificate_sha256": fingerprint(dsse_cert),
        "pades_certificate_sha256": fingerprint(pades_cert),
        "trust_anchor_sha256": fingerprint(anchor),
        "not_after": dsse_cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_bytes_atomic(out / META, (json.dumps(meta, indent=2) + "\n").encode("utf-8"))
    return load_identity(out)


def _has_ext(cert: x509.Certificate, cls: type) -> bool:
    try:
        cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return False
    return True


def load_identity(folder: Path) -> Identity:
    """Load an identity folder written by :func:`init_identity` and check that keys match certificates."""
    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder} is not a signing identity (no {META}); "
                                "create one with `hybridcert keys init`")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: not valid JSON ({exc.msg})") from exc
    chain = (folder / CHAIN,) if (folder / CHAIN).is_file() and (folder / CHAIN).stat().st_size else ()
    ident = Identity(
        name=str(meta["name"]), role=str(meta["role"]), organisation=str(meta["organisation"]),
        demo=bool(meta.get("demo", False)),
        dsse_key=folder / DSSE_KEY, dsse_cert=folder / DSSE_CERT,
        pades_key=folder / PADES_KEY, pades_cert=folder / PADES_CERT, chain=chain,
    )
    ident.check()
    return ident


def identity_from_files(
    key: Path, cert: Path, pades_key: Path, pades_cert: Path, chain: Path | None = None,
    name: str | None = None, role: str = "", organisation: str | None = None,
) -> Identity:
    """An identity from explicit key and certificate files (names default to the certificate's subject)."""
    c = load_certificate(cert)

    def attr(oid: x509.ObjectIdentifier) -> str:
        vals = c.subject.get_attributes_for_oid(oid)
        return str(vals[0].value) if vals else ""

    ident = Identity(
        name=name or attr(NameOID.COMMON_NAME), role=role or attr(NameOID.TITLE),
        organisation=organisation or attr(NameOID.ORGANIZATION_NAME), demo=DEMO_NAME in attr(NameOID.COMMON_NAME),
        dsse_key=Path(key), dsse_cert=Path(cert), pades_key=Path(pades_key), pades_cert=Path(pades_cert),
        chain=(Path(chain),) if chain else (),
    )
    ident.check()
    return ident


def demo_identity(out: Path) -> Identity:
    """A throwaway identity clearly labelled "DEMO IDENTITY - NOT FOR COMPLIANCE USE" (for ``hybridcert demo``)."""
    return init_identity(out, DEMO_NAME, "demo signer", "hybridcert demo (no organisation)", demo=True, days=30)


def private_key_markers(identity: Identity) -> list[bytes]:
    """Byte strings that must never appear in an artefact: each private key's PEM, DER and raw scalar."""
    out: list[bytes] = []
    for path in (identity.dsse_key, identity.pades_key):
        pem = path.read_bytes()
        key = _load_private_key(path)
        out.append(pem)
        out.append(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            out.append(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption()))
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            out.append(key.private_numbers().private_value.to_bytes(32, "big"))
    return out
