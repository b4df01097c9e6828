"""Complete results.json objects for tests (docs/results-format.md), built from the real theory engine."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybridcert.theory import HybridNoise, clopper_pearson_lower

NOISE = {"kernel": "uniform-other", "vocab_size": 10, "beta": 0.75, "sigma": 0.25}
SHA = "ab" * 32


def threshold_for(tau: float, side: str) -> float:
    return tau if side == "flag" else float(np.nextafter(1.0 - tau, 2.0))


def make_input(ident: str, p: float | None, noise: HybridNoise, *, tau: float = 0.5, side: str = "flag",
               label: int | None = None, n: int = 1000, target: int | None = None, alpha: float = 0.001,
               max_budget: int = 3) -> dict[str, Any]:
    """One input. ``target`` defaults to n (so any p <= the bound of n/n is consistent); ``p`` defaults to the
    Clopper-Pearson bound of the counts."""
    target = n if target is None else target
    if p is None:
        p = float(clopper_pearson_lower(target, n, alpha))
    threshold = threshold_for(tau, side)
    frontier = []
    for d, r in noise.frontier(p, tau=threshold, max_budget=max_budget):
        frontier.append({"budget": d, "radius": None, "radius_infinite": True} if np.isinf(r)
                        else {"budget": d, "radius": r, "radius_infinite": False})
    decision = side if frontier else "abstain"
    if label is None:
        label = 1 if side == "flag" else 0
    correct = decision != "abstain" and (decision == "flag") == (label == 1)
    return {"id": ident, "label": label, "group": None,
            "counts": {"n0": 64, "n": n, "target": target, "selection_target": 64, "target_per_budget": None},
            "target_class": 1 if side == "flag" else 0, "side": side, "threshold": threshold, "p_a_lower": p,
            "p_a_lower_per_budget": None, "decision": decision, "correct": correct, "max_budget": max_budget,
            "frontier": frontier, "seconds": 0.1}


def make_results(p_values: list[float | None], tau: float = 0.5, max_budget: int = 3,
                 noise: dict[str, Any] | None = None, n: int = 1000, alpha: float = 0.001,
                 sides: list[str] | None = None) -> dict[str, Any]:
    """A results object with one flag-side input per p (ids x0000, x0001, ...)."""
    noise_cfg = dict(noise or NOISE)
    engine = HybridNoise(noise_cfg["kernel"], noise_cfg["vocab_size"], noise_cfg["beta"], noise_cfg["sigma"])
    sides = sides or ["flag"] * len(p_values)
    inputs = [make_input(f"x{i:04d}", p, engine, tau=tau, side=s, n=n, alpha=alpha, max_budget=max_budget)
              for i, (p, s) in enumerate(zip(p_values, sides, strict=True))]
    return {
        "schema": "hybridcert/results/v1",
        "tool": {"name": "hybridcert", "version": "0.1.0", "revision": None},
        "created": "2026-11-29T12:00:00Z",
        "config": {"noise": {**noise_cfg, "mask_id": None, "alphabet_sha256": None},
                   "threat_model": {"kind": "l0", "span": None, "pad_id": None},
                   "pixel_space": "[0,1]", "clamp": False, "tau": tau, "alpha": alpha, "n0": 64, "n": n,
                   "seed": "1", "sampling": "one-pass", "max_budget": max_budget, "target_class": None,
                   "chunk_size": 1024, "sampling_device": "cpu", "amp": False, "radii": [0.0, 0.25],
                   "confidence_bound": "clopper-pearson", "multiple_testing": "one pass"},
        "model": {"name": "m", "version": "1", "sha256": SHA},
        "dataset": {"name": "d", "version": "1", "sha256": SHA, "n_inputs": len(inputs)},
        "inputs": inputs,
        "aggregates": {"n_inputs": len(inputs), "clean_rate": 0.0, "abstain": 0, "certified": []},
        "environment": {"python": "3.11"},
    }
