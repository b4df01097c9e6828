"""DSSE envelopes (Ed25519) around in-toto Statements v1.

PAE(type, body) = b"DSSEv1" SP len(type) SP type SP len(body) SP body (lengths in ASCII decimal). The
signature covers the PAE, so neither the payload type nor the payload can be changed without detection.
Base64 is checked to be canonical on read (a flipped padding bit must not decode to the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


class DSSEError(ValueError):
    """The envelope is malformed or its signature does not verify."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(payload: bytes, key: ed25519.Ed25519PrivateKey, keyid: str,
                  payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    """A DSSE envelope with one Ed25519 signature over PAE(payload_type, payload)."""
    sig = key.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode("ascii")}],
    }


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise DSSEError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DSSEError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise DSSEError(f"{what} is not canonical base64")
    return raw


def parse_envelope(data: bytes) -> tuple[dict[str, Any], bytes, str, bytes]:
    """Parse envelope bytes into (envelope, payload, keyid, signature); DSSEError when malformed.

    Exactly one signature is expected (this project signs with one identity).
    """
    try:
        env = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DSSEError(f"envelope is not valid JSON ({exc})") from exc
    if not isinstance(env, dict) or set(env) != {"payload", "payloadType", "signatures"}:
        raise DSSEError("envelope must have exactly the fields payload, payloadType, signatures")
    if env["payloadType"] != PAYLOAD_TYPE:
        raise DSSEError(f"payloadType is {env['payloadType']!r}, expected {PAYLOAD_TYPE!r}")
    sigs = env["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict) \
            or set(sigs[0]) != {"keyid", "sig"} or not isinstance(sigs[0]["keyid"], str):
        raise DSSEError("envelope must carry exactly one signature {keyid, sig}")
    payload = _b64(env["payload"], "payload")
    sig = _b64(sigs[0]["sig"], "signature")
    return env, payload, sigs[0]["keyid"], sig


def verify_signature(env: dict[str, Any], payload: bytes, sig: bytes, public_key: Any) -> None:
    """Check the Ed25519 signature over PAE; DSSEError if it fails."""
    if not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise DSSEError("the DSSE signer certificate does not hold an Ed25519 key")
    try:
        public_key.verify(sig, pae(env["payloadType"], payload))
    except InvalidSignature as exc:
        raise DSSEError("Ed25519 signature does not verify over the DSSE PAE") from exc
