"""DSSE envelopes: the PAE, interop with securesystemslib, and rejection of every single-byte change."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from hybridcert.reports import dsse


def test_pae_matches_the_spec_example() -> None:
    # From the DSSE v1 protocol description.
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def _envelope() -> tuple[bytes, ed25519.Ed25519PrivateKey]:
    key = ed25519.Ed25519PrivateKey.generate()
    payload = json.dumps({"_type": dsse.STATEMENT_TYPE, "subject": []}).encode()
    env = dsse.sign_envelope(payload, key, "sha256:abc")
    return json.dumps(env, indent=2).encode(), key


def test_securesystemslib_verifies_our_envelope() -> None:
    data, key = _envelope()
    env = Envelope.from_dict(json.loads(data))
    ssl_key = SSlibKey.from_crypto(key.public_key(), keyid="sha256:abc")
    assert "sha256:abc" in env.verify([ssl_key], 1)


def _verify(data: bytes, key: ed25519.Ed25519PrivateKey) -> None:
    env, payload, keyid, sig = dsse.parse_envelope(data)
    if keyid != "sha256:abc":
        raise dsse.DSSEError("key id")
    dsse.verify_signature(env, payload, sig, key.public_key())


def test_every_single_byte_flip_is_rejected() -> None:
    data, key = _envelope()
    _verify(data, key)
    for i in range(len(data)):
        for mask in (0x01, 0x20):
            bad = bytearray(data)
            bad[i] ^= mask
            with pytest.raises(dsse.DSSEError):
                _verify(bytes(bad), key)


def test_wrong_key_is_rejected() -> None:
    data, _ = _envelope()
    with pytest.raises(dsse.DSSEError, match="does not verify"):
        _verify(data, ed25519.Ed25519PrivateKey.generate())
