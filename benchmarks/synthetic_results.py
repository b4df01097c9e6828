"""Synthetic, valid results.json objects for benchmarks (docs/results-format.md): counts -> Clopper-Pearson bound
-> frontier from the theory engine, one engine call per distinct (threshold, count), as the runner does."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybridcert.theory import HybridNoise, clopper_pearson_lower

NOISE = {"kernel": "uniform-other", "vocab_size": 10, "beta": 0.5, "sigma": 0.5}


def synthetic_results(n_inputs: int, n: int = 1000, low: float = 0.9, seed: int = 0, max_budget: int = 4,
                      tau: float = 0.5, alpha: float = 0.001) -> dict[str, Any]:
    """``n_inputs`` inputs with n samples each; targets uniform in [low * n, n], 1 in 10 on the no-flag side."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(int(low * n), n + 1, n_inputs)
    sides = np.where(rng.random(n_inputs) < 0.1, "no-flag", "flag")
    thresholds = np.where(sides == "flag", tau, np.nextafter(1.0 - tau, 2.0))
    noise = HybridNoise(**NOISE)  # type: ignore[arg-type]
    rows: dict[tuple[float, int], tuple[float, list[dict[str, Any]]]] = {}
    for t in np.unique(thresholds):
        ks = np.unique(targets[thresholds == t])
        ps = clopper_pearson_lower(ks, n, alpha)
        for k, p, front in zip(ks, ps, noise.frontier(ps, tau=float(t), max_budget=max_budget), strict=True):
            rows[(float(t), int(k))] = (float(p), [{"budget": d, "radius": r, "radius_infinite": False}
                                                   for d, r in front])
    inputs = []
    for i in range(n_inputs):
        side, t, k = str(sides[i]), float(thresholds[i]), int(targets[i])
        p, frontier = rows[(t, k)]
        decision = side if frontier else "abstain"
        label = 1 if side == "flag" else 0
        inputs.append({
            "id": f"x{i:07d}", "label": label, "group": None,
            "counts": {"n0": 64, "n": n, "target": k, "selection_target": 64, "target_per_budget": None},
            "target_class": label, "side": side, "threshold": t, "p_a_lower": p, "p_a_lower_per_budget": None,
            "decision": decision, "correct": decision != "abstain", "max_budget": max_budget,
            "frontier": frontier, "seconds": 0.01,
        })
    return {
        "schema": "hybridcert/results/v1",
        "tool": {"name": "hybridcert", "version": "0.1.0", "revision": None},
        "created": "2026-11-29T12:00:00Z",
        "config": {"noise": {**NOISE, "mask_id": None, "alphabet_sha256": None},
                   "threat_model": {"kind": "l0", "span": None, "pad_id": None}, "pixel_space": "[0,1]",
                   "clamp": False, "tau": tau, "alpha": alpha, "n0": 64, "n": n, "seed": "0",
                   "sampling": "one-pass", "max_budget": max_budget, "target_class": None, "chunk_size": 1024,
                   "sampling_device": "cpu", "amp": False, "radii": [0.0, 0.25, 0.5],
                   "confidence_bound": "clopper-pearson", "multiple_testing": "one pass"},
        "model": {"name": "bench", "version": "1", "sha256": "ab" * 32},
        "dataset": {"name": "bench", "version": "1", "sha256": "cd" * 32, "n_inputs": n_inputs},
        "inputs": inputs,
        "aggregates": {"n_inputs": n_inputs, "clean_rate": sum(x["correct"] for x in inputs) / max(n_inputs, 1),
                       "abstain": sum(x["decision"] == "abstain" for x in inputs), "certified": []},
        "environment": {"python": "3.11"},
    }
