"""Realistic results.json files for the regression-gate tests (docs/results-format.md).

Each input is given as synthetic Monte-Carlo counts; its bound is the real one-sided Clopper-Pearson lower
bound and its frontier the real ``HybridNoise.frontier`` against the side's threshold, exactly as the audit
runner computes them. Tests state what they expect from the counts they chose, never from the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hybridcert.theory import HybridNoise, clopper_pearson_lower

NOISE = {"kernel": "uniform-other", "vocab_size": 10, "beta": 0.5, "sigma": 0.5}
TAU, ALPHA, N0, N, MAX_BUDGET = 0.5, 0.001, 64, 1000, 4


@dataclass(frozen=True)
class Spec:
    """One input: its label, the side the smoothed filter predicts, and the count of that side in N draws."""

    id: str
    label: int
    side: str  # "flag" or "no-flag"
    target: int


def synthetic_specs(n_inputs: int = 40, seed: int = 7) -> list[Spec]:
    """Mostly confident correct inputs, a few marginal ones, a few wrong decisions (seeded)."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n_inputs):
        label = int(i % 2)
        right = "flag" if label == 1 else "no-flag"
        wrong = "no-flag" if label == 1 else "flag"
        kind = i % 10
        if kind == 9:
            side, target = wrong, int(rng.integers(900, 1000))
        elif kind == 8:
            side, target = right, int(rng.integers(480, 560))  # often abstains
        else:
            side, target = right, int(rng.integers(950, 1001))
        specs.append(Spec(f"x{i:04d}", label, side, target))
    return specs


def build_results(
    specs: list[Spec], *, noise: dict[str, Any] | None = None, tau: float = TAU, alpha: float = ALPHA,
    max_budget: int = MAX_BUDGET, dataset_sha256: str = "ab" * 32, model_name: str = "demo-digit-filter",
    threat_model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A results.json dict for ``specs``, frontiers from the real theory engine."""
    noise = dict(NOISE if noise is None else noise)
    hn = HybridNoise(noise["kernel"], noise["vocab_size"], noise["beta"], noise["sigma"])
    targets = np.array([s.target for s in specs], dtype=np.int64)
    p_lower = clopper_pearson_lower(targets, N, alpha)
    flag = np.array([s.side == "flag" for s in specs])
    thresholds = np.where(flag, tau, np.nextafter(1.0 - tau, 2.0))
    inputs = []
    # one vectorised frontier call per threshold, as the runner does
    frontiers: list[Any] = [None] * len(specs)
    for thr in np.unique(thresholds):
        idx = np.flatnonzero(thresholds == thr)
        out = hn.frontier(p_lower[idx], tau=float(thr), max_budget=max_budget)
        for j, i in enumerate(idx):
            frontiers[i] = out[j]
    for s, p, thr, front in zip(specs, p_lower, thresholds, frontiers, strict=True):
        decision = s.side if front else "abstain"
        correct = decision != "abstain" and (decision == "flag") == (s.label == 1)
        inputs.append({
            "id": s.id,
            "label": s.label,
            "group": None,
            "counts": {"n0": N0, "n": N, "target": s.target},
            "target_class": 1 if s.side == "flag" else 0,
            "side": s.side,
            "threshold": float(thr),
            "p_a_lower": float(p),
            "decision": decision,
            "correct": bool(correct),
            "max_budget": max_budget,
            "frontier": [{"budget": d, "radius": r} for d, r in front],
            "seconds": 0.01,
        })
    return {
        "schema": "hybridcert/results/v1",
        "tool": {"name": "hybridcert", "version": "0.1.0", "revision": None},
        "created": "2026-11-25T16:00:00Z",
        "config": {
            "noise": noise,
            "threat_model": threat_model or {"kind": "l0", "span": None},
            "pixel_space": "[0,1]",
            "clamp": False,
            "tau": tau,
            "alpha": alpha,
            "n0": N0,
            "n": N,
            "seed": "20261125",
            "sampling": "one-pass",
            "max_budget": max_budget,
            "batch_size": 500,
            "confidence_bound": "clopper-pearson",
            "multiple_testing": "one sampling pass with every eligible position noised: every budget shares one bound",
        },
        "model": {"name": model_name, "version": "1", "sha256": hashlib.sha256(model_name.encode()).hexdigest()},
        "dataset": {"name": "demo-digits", "version": "1", "sha256": dataset_sha256, "n_inputs": len(specs)},
        "inputs": inputs,
        "aggregates": {
            "n_inputs": len(specs),
            "clean_rate": sum(i["correct"] for i in inputs) / max(len(specs), 1),
            "abstain": sum(i["decision"] == "abstain" for i in inputs),
        },
        "environment": {"python": "3.11", "platform": "test", "packages": {}, "device": "cpu"},
    }


def weaken(specs: list[Spec], ids: set[str], target: int = 500) -> list[Spec]:
    """The same inputs with ``ids`` pushed to ``target`` counts (at 500 of 1000 they abstain)."""
    return [replace(s, target=target) if s.id in ids else s for s in specs]


def write_audit(folder: Path, results: dict[str, Any]) -> Path:
    """Write results.json as the runner does; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False), encoding="utf-8")
    return folder


def sign_audit(folder: Path) -> bytes:
    """Add a DSSE attestation (in-toto Statement v1 over results.json, Ed25519) to an audit folder.

    Returns the public key (raw bytes). Mirrors what hybridcert.reports writes; used for the digest checks.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    digest = hashlib.sha256((folder / "results.json").read_bytes()).hexdigest()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "results.json", "digest": {"sha256": digest}}],
        "predicateType": "https://hybridcert.dev/audit/v1",
        "predicate": {},
    }
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    key = Ed25519PrivateKey.generate()
    envelope = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "test", "sig": base64.b64encode(key.sign(pae)).decode()}],
    }
    (folder / "attestation.dsse.json").write_text(json.dumps(envelope), encoding="utf-8")
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
