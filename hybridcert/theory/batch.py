"""One certificate query as plain data in and out (used by ``hybridcert certify``)."""

from __future__ import annotations

import math
from typing import Any

from hybridcert.theory.certificate import HybridNoise

_KEYS = {"p_a", "kernel", "vocab", "beta", "sigma", "tau", "budget", "radius", "max_budget"}
_DEFAULTS: dict[str, Any] = {"kernel": "uniform-other", "tau": 0.5, "budget": None, "radius": None, "max_budget": None}
_REALS = ("p_a", "beta", "sigma", "tau", "radius")
_INTEGERS = ("vocab", "budget", "max_budget")


def _check_types(cfg: dict[str, Any]) -> None:
    """Strict JSON types (data read from files is hostile): a real is an int or a finite float, never a bool, a
    string or an array; a count is an int, never a bool or a float; the kernel is a string."""
    for key in _REALS:
        v = cfg.get(key)
        if v is None and key == "radius":
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"field {key!r} must be a finite number, got {v!r}"[:200])
    for key in _INTEGERS:
        v = cfg.get(key)
        if v is None and key != "vocab":
            continue
        if key == "vocab" and isinstance(v, list) and v:  # one arity per categorical field (docs/theory.md §9)
            if any(isinstance(x, bool) or not isinstance(x, int) for x in v):
                raise ValueError(f"field 'vocab' must be an integer or a list of integers, got {v!r}"[:200])
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"field {key!r} must be an integer, got {v!r}"[:200])
    if not isinstance(cfg.get("kernel"), str):
        raise ValueError(f"field 'kernel' must be a string, got {cfg.get('kernel')!r}"[:200])


def certify_config(config: dict[str, Any]) -> dict[str, Any]:
    """Evaluate docs/theory.md §4 for one configuration. Bad values raise ValueError.

    The query point is (d, eps) = (``budget`` or 0, ``radius`` or 0). The result holds:

    - ``certified``: whether the query point is certified (p_adv(d', eps) >= tau for every d' <= d);
    - with ``budget``: ``certified_radius``, r*(budget), or None when the budget is not certified even at
      eps = 0 (there is no radius then; 0.0 means a certified budget with radius 0), and
      ``worst_case_at_zero_radius``, the worst case at (budget, 0) that decided it;
    - with ``radius``: ``certified_budget``, the largest d certified at that radius, or None when not even d = 0
      is (never -1);
    - with both: ``worst_case``, the lower bound on the attacked score at (budget, radius);
    - ``frontier``: [{budget, radius}] over the certified budgets only.

    A radius or budget is therefore present only for a certified case, and ``certified`` says which.
    """
    unknown = set(config) - _KEYS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_KEYS))}")
    cfg = {**_DEFAULTS, **config}
    for key in ("p_a", "vocab", "beta", "sigma"):
        if key not in cfg:
            raise ValueError(f"missing field {key!r}")
    _check_types(cfg)
    noise = HybridNoise(kernel=cfg["kernel"], vocab_size=cfg["vocab"], beta=cfg["beta"], sigma=cfg["sigma"])
    p_a, tau = cfg["p_a"], cfg["tau"]
    budget, radius, max_budget = cfg["budget"], cfg["radius"], cfg["max_budget"]
    d, eps = (0 if budget is None else budget), (0.0 if radius is None else radius)
    result: dict[str, Any] = {"config": cfg}
    result["certified"] = int(noise.certified_budget(p_a, radius=eps, tau=tau, max_budget=d)) >= d
    if budget is not None and radius is not None:
        result["worst_case"] = float(noise.worst_case(p_a, budget=budget, radius=radius))
    if budget is not None:
        at_zero = int(noise.certified_budget(p_a, radius=0.0, tau=tau, max_budget=budget)) >= budget
        result["worst_case_at_zero_radius"] = float(noise.worst_case(p_a, budget=budget, radius=0.0))
        result["certified_radius"] = float(noise.certified_radius(p_a, budget=budget, tau=tau)) if at_zero else None
    if radius is not None:
        best = int(noise.certified_budget(p_a, radius=radius, tau=tau, max_budget=max_budget))
        result["certified_budget"] = best if best >= 0 else None
    if max_budget is None and not noise.informative:
        raise ValueError("this kernel hides token changes completely, so every budget is certified: pass max_budget")
    frontier = noise.frontier(p_a, tau=tau, max_budget=max_budget)
    result["frontier"] = [{"budget": d, "radius": r} for d, r in frontier]
    return result
