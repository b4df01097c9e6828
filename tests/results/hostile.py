"""Hostile variants of valid results files (issue 10), shared by the tests of every command that reads them."""

from __future__ import annotations

import copy
from typing import Any

from hybridcert.theory import HybridNoise


def at_wrong_threshold(raw: dict[str, Any], threshold: float = 0.01) -> dict[str, Any]:
    """Every flag-side input claims ``threshold`` (config.tau unchanged) with frontiers honestly recomputed at
    it: a file whose certificates are right for another decision rule, consistent in every other respect."""
    out = copy.deepcopy(raw)
    nz = out["config"]["noise"]
    noise = HybridNoise(nz["kernel"], nz["vocab_size"], nz["beta"], nz["sigma"])
    top = out["config"]["max_budget"]
    for rec in out["inputs"]:
        if rec["side"] != "flag":
            continue
        rec["threshold"] = threshold
        rec["frontier"] = [{"budget": d, "radius": r, "radius_infinite": False}
                           for d, r in noise.frontier(rec["p_a_lower"], tau=threshold, max_budget=top)]
        rec["decision"] = "flag" if rec["frontier"] else "abstain"
        rec["correct"] = rec["decision"] == "flag" and rec["label"] == 1
    out["aggregates"]["clean_rate"] = sum(r["correct"] for r in out["inputs"]) / len(out["inputs"])
    out["aggregates"]["abstain"] = sum(r["decision"] == "abstain" for r in out["inputs"])
    return out
