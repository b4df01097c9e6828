"""One certificate query as plain data in and out (used by ``hybridcert certify``)."""

from __future__ import annotations

from typing import Any

from hybridcert.theory.certificate import HybridNoise

_KEYS = {"p_a", "kernel", "vocab", "beta", "sigma", "tau", "budget", "radius", "max_budget"}
_DEFAULTS: dict[str, Any] = {"kernel": "uniform-other", "tau": 0.5, "budget": None, "radius": None, "max_budget": None}


def certify_config(config: dict[str, Any]) -> dict[str, Any]:
    """Evaluate THEORY 4 for one configuration: the frontier, plus r*(budget), the certified budget at
    ``radius`` and the worst case at (budget, radius) when those are given. Bad values raise ValueError."""
    unknown = set(config) - _KEYS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_KEYS))}")
    cfg = {**_DEFAULTS, **config}
    for key in ("p_a", "vocab", "beta", "sigma"):
        if key not in cfg:
            raise ValueError(f"missing field {key!r}")
    noise = HybridNoise(kernel=cfg["kernel"], vocab_size=cfg["vocab"], beta=cfg["beta"], sigma=cfg["sigma"])
    p_a, tau = cfg["p_a"], cfg["tau"]
    budget, radius, max_budget = cfg["budget"], cfg["radius"], cfg["max_budget"]
    result: dict[str, Any] = {"config": cfg}
    if budget is not None and radius is not None:
        result["worst_case"] = float(noise.worst_case(p_a, budget=budget, radius=radius))
    if budget is not None:
        result["certified_radius"] = float(noise.certified_radius(p_a, budget=budget, tau=tau))
    if radius is not None:
        result["certified_budget"] = int(noise.certified_budget(p_a, radius=radius, tau=tau, max_budget=max_budget))
    if max_budget is None and not noise.token_kernel.informative:
        raise ValueError("this kernel hides token changes completely, so every budget is certified: pass max_budget")
    frontier = noise.frontier(p_a, tau=tau, max_budget=max_budget)
    result["frontier"] = [{"budget": d, "radius": r} for d, r in frontier]
    return result
