"""A realistic synthetic ``results.json`` (docs/results-format.md) for the report tests and the docs pages.

Counts are drawn from a seeded generator; ``p_a_lower`` is the real Clopper-Pearson bound of those counts and
every frontier comes from the real ``HybridNoise.frontier`` (docs/theory.md §4, §5), exactly as the audit runner does.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridcert.theory import HybridNoise, clopper_pearson_lower


def make_results(n_inputs: int = 30, seed: int = 20261125, max_budget: int = 4, **overrides: Any) -> dict[str, Any]:
    """Return a results.json object with ``n_inputs`` inputs (some hard, some wrong, some abstaining)."""
    results: dict[str, Any] = json.loads(_make_results_json(n_inputs, seed, max_budget))
    results.update(overrides)
    return results


@functools.cache
def _make_results_json(n_inputs: int, seed: int, max_budget: int) -> str:
    rng = np.random.default_rng(seed)
    noise_cfg = {"kernel": "uniform-other", "vocab_size": 10, "beta": 0.5, "sigma": 0.5}
    tau, alpha, n0, n = 0.5, 0.001, 64, 1000
    noise = HybridNoise(**noise_cfg)
    labels = rng.integers(0, 2, n_inputs)
    # Probability that the base filter flags: mostly confident and right, a few hard or wrong inputs.
    confident = rng.beta(40, 1, n_inputs)
    p1 = np.where(labels == 1, confident, 1 - confident)
    hard = rng.random(n_inputs) < 0.15
    p1 = np.where(hard, rng.uniform(0.35, 0.65, n_inputs), p1)
    k0 = rng.binomial(n0, p1)
    side_flag = k0 / n0 >= tau
    q = np.where(side_flag, p1, 1 - p1)
    target = rng.binomial(n, q)
    p_lower = clopper_pearson_lower(target, n, alpha)
    threshold = np.where(side_flag, tau, np.nextafter(1 - tau, 2.0))
    frontiers: list[list[tuple[int, float]]] = [[] for _ in range(n_inputs)]
    for t in np.unique(threshold):  # one vectorised call per threshold (flag side, no-flag side)
        idx = np.flatnonzero(threshold == t)
        for i, front in zip(idx, noise.frontier(p_lower[idx], tau=float(t), max_budget=max_budget), strict=True):
            frontiers[i] = front
    inputs = []
    for i in range(n_inputs):
        frontier = frontiers[i]
        side = "flag" if side_flag[i] else "no-flag"
        decision = side if frontier else "abstain"
        label = int(labels[i])
        correct = (decision == "flag" and label == 1) or (decision == "no-flag" and label == 0)
        inputs.append({
            "id": f"x{i + 1:04d}",
            "label": label,
            "group": None,
            "counts": {"n0": n0, "n": n, "target": int(target[i])},
            "target_class": 1 if side == "flag" else 0,
            "side": side,
            "threshold": float(threshold[i]),
            "p_a_lower": float(p_lower[i]),
            "decision": decision,
            "correct": bool(correct),
            "max_budget": max_budget,
            "frontier": [{"budget": d, "radius": r} for d, r in frontier],
            "seconds": round(float(rng.uniform(0.5, 1.5)), 3),
        })
    clean = sum(r["correct"] for r in inputs) / n_inputs
    results: dict[str, Any] = {
        "schema": "hybridcert/results/v1",
        "tool": {"name": "hybridcert", "version": "0.1.0", "revision": "0123456789abcdef0123456789abcdef01234567"},
        "created": "2026-11-25T16:00:00Z",
        "config": {
            "noise": noise_cfg,
            "threat_model": {"kind": "l0", "span": None},
            "pixel_space": "[0,1]",
            "clamp": False,
            "tau": tau,
            "alpha": alpha,
            "n0": n0,
            "n": n,
            "seed": str(seed),
            "sampling": "one-pass",
            "max_budget": max_budget,
            "radii": [0.0, 0.1, 0.25, 0.5],
            "batch_size": 500,
            "confidence_bound": "clopper-pearson",
            "multiple_testing": "one sampling pass with every eligible position noised: every budget shares one bound",
        },
        "model": {"name": "synthetic-filter", "version": "1", "sha256": hashlib.sha256(b"weights").hexdigest(),
                  "intended_purpose": "flag unsafe text+image pairs (synthetic test fixture)"},
        "dataset": {"name": "synthetic-digits", "version": "1", "sha256": hashlib.sha256(b"manifest").hexdigest(),
                    "n_inputs": n_inputs, "selection": "all inputs of the manifest, in manifest order"},
        "inputs": inputs,
        "aggregates": {"n_inputs": n_inputs, "clean_rate": clean,
                       "abstain": sum(r["decision"] == "abstain" for r in inputs)},
        "environment": {"python": "3.11.7", "platform": "Linux-x86_64", "packages": {"torch": "2.13.0", "numpy": "2.1"},
                        "device": "cpu"},
        "acceptance": [
            {"id": "A1", "budget": 1, "radius": 0.5, "min_certified_rate": 0.5},
            {"id": "A2", "budget": 2, "radius": 0.25, "min_certified_rate": 0.3, "statistic": "ci_lower"},
        ],
        "command": "hybridcert audit --config audit.toml --out out/",
        "runner_extra": {"note": "unknown fields must be kept"},
    }
    return json.dumps(results, allow_nan=False)


def write_results(folder: Path, results: dict[str, Any] | None = None) -> Path:
    """Write results.json (pretty-printed, as a runner would) into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps(results if results is not None else make_results(), indent=2, allow_nan=False) + "\n")
    return path


def make_ca(folder: Path) -> tuple[Path, Path]:
    """A test root CA (P-384) in ``folder``: returns (ca.crt, ca.key)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir()
    (folder / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return folder / "ca.crt", folder / "ca.key"
