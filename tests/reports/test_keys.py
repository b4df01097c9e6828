"""Signing identities: file permissions, key/certificate pairing, CA-issued identities, demo labelling."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from hybridcert.reports import keys
from hybridcert.reports.verify import chain_problem as _chain_ok
from tests.reports.synthetic import make_ca


def test_self_signed_identity(tmp_path: Path) -> None:
    ident = keys.init_identity(tmp_path / "id", "Ada", "Auditor", "Org")
    for p in (ident.dsse_key, ident.pades_key):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "id").stat().st_mode) == 0o700
    anchor = keys.load_certificate(tmp_path / "id" / keys.ANCHOR)
    assert anchor == ident.pades_certificate() == ident.trust_anchor()
    assert _chain_ok(ident.dsse_certificate(), [], [anchor]) is None
    meta = json.loads((tmp_path / "id" / keys.META).read_text())
    assert meta["trust_anchor_sha256"] == keys.fingerprint(anchor)
    assert "PRIVATE" not in (tmp_path / "id" / keys.META).read_text()
    with pytest.raises(ValueError, match="not empty"):
        keys.init_identity(tmp_path / "id", "Ada", "Auditor", "Org")


def test_ca_issued_identity(tmp_path: Path) -> None:
    ca_cert, ca_key = make_ca(tmp_path / "ca")
    ident = keys.init_identity(tmp_path / "id", "Ada", "Auditor", "Org", ca_cert=ca_cert, ca_key=ca_key)
    root = keys.load_certificate(ca_cert)
    assert ident.trust_anchor() == root
    assert _chain_ok(ident.dsse_certificate(), [], [root]) is None
    assert _chain_ok(ident.pades_certificate(), [], [root]) is None
    stranger = keys.init_identity(tmp_path / "other", "Eve", "x", "y")
    assert _chain_ok(ident.dsse_certificate(), [], [stranger.trust_anchor()]) is not None


def test_mismatched_ca_key_and_missing_half(tmp_path: Path) -> None:
    ca_cert, _ = make_ca(tmp_path / "ca")
    _, other_key = make_ca(tmp_path / "ca2")
    with pytest.raises(ValueError, match="does not match"):
        keys.init_identity(tmp_path / "id", "Ada", "Auditor", "Org", ca_cert=ca_cert, ca_key=other_key)
    with pytest.raises(ValueError, match="both"):
        keys.init_identity(tmp_path / "id2", "Ada", "Auditor", "Org", ca_cert=ca_cert)


def test_swapped_key_file_is_detected(tmp_path: Path) -> None:
    a = keys.init_identity(tmp_path / "a", "Ada", "Auditor", "Org")
    b = keys.init_identity(tmp_path / "b", "Bob", "Auditor", "Org")
    a.dsse_key.chmod(0o600)
    a.dsse_key.write_bytes(b.dsse_key.read_bytes())
    with pytest.raises(ValueError, match="does not match"):
        keys.load_identity(tmp_path / "a")


def test_demo_identity_is_labelled(tmp_path: Path) -> None:
    ident = keys.demo_identity(tmp_path / "demo")
    assert ident.demo and keys.DEMO_NAME in ident.name
    cn = ident.pades_certificate().subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert "DEMO IDENTITY" in str(cn)


def test_empty_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        keys.init_identity(tmp_path / "id", " ", "Auditor", "Org")
