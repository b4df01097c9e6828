"""Unimodal baselines next to the hybrid certificate (issue 13): ``[certify] baselines = ["image-only", "text-only"]``.

- ``image-only``: Gaussian image noise only, the tokens clean. Certificate: Cohen's radius at the side's threshold,
  sigma (Phi^-1(p_a) - Phi^-1(threshold)) (docs/theory.md §4, d = 0), valid only while **no token changes**.
- ``text-only``: token noise only (the threat model's span, the audit's kernel), the image clean. Certificate: the
  largest budget d certified at eps = 0 (the discrete knapsack, docs/theory.md §4, e = 0), capped at
  ``max_budget`` and the input's noised positions, valid only while **the image is untouched**.

Each baseline is a smoothed filter of its own and is estimated like the hybrid one (docs/theory.md §5): n0
selection samples pick the side (unless ``target_class`` is fixed), n fresh samples give a one-sided
Clopper-Pearson bound at alpha, and with probability >= 1 - alpha over the sampling the baseline's certificate
holds for that smoothed filter. Every sample comes from its own seeded stream: chunk c of stream s (0 selection,
1 estimation) of baseline B for input x is seeded by ``SeedSequence(seed, spawn_key=(sha256(key), s, c))`` with
key ``baseline/B/x``, so the counts do not depend on batch size, waves or interruption, and never reuse the
hybrid audit's noise. The results are attached to each input's record (``inputs[i].baselines``) before the
record is logged, so a resumed audit keeps them; ``verify --results`` proves them (docs/results-format.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hybridcert.audits.certification import side_threshold
from hybridcert.audits.counting import clean_tokens
from hybridcert.audits.samplers import chunk_generator, chunks
from hybridcert.theory import clopper_pearson_lower, cohen_radius

if TYPE_CHECKING:
    from hybridcert.audits.dataset import AuditInput
    from hybridcert.audits.preparation import Audit
    from hybridcert.results.schema import InputResult

BASELINES = ("image-only", "text-only")
SELECT, ESTIMATE = 0, 1


def baseline_key(name: str, input_id: str) -> str:
    return f"baseline\x1f{name}\x1f{input_id}"


def count_ones(audit: Audit, item: AuditInput, name: str, stream: int, count: int) -> int:
    """Class-1 decisions of the filter on ``count`` samples of baseline ``name``'s noise (module docstring)."""
    if count == 0:
        return 0
    tokens = clean_tokens(audit, item)
    image = torch.from_numpy(item.image).to(audit.device)
    start, stop = audit.threat.noised_positions(len(item.tokens))
    clean_index = audit.sampler.clean_index(tokens, (start, stop))
    shown = image * 2.0 - 1.0 if audit.sampler.image.pixel_space == "[-1,1]" else image
    key = baseline_key(name, item.id)
    ones = 0
    pend_t: list[torch.Tensor] = []
    pend_i: list[torch.Tensor] = []

    def flush() -> int:
        all_t, all_i = torch.cat(pend_t), torch.cat(pend_i)
        total = 0
        for s in range(0, all_t.shape[0], audit.batch_size):
            total += int(audit.filter(all_t[s:s + audit.batch_size], all_i[s:s + audit.batch_size]).sum().item())
        return total

    for chunk, size in chunks(count, audit.sampler.chunk_size):
        gen = chunk_generator(int(audit.spec.seed), key, stream, chunk, audit.device)
        if name == "text-only":
            toks = audit.sampler.tokens.apply(tokens.unsqueeze(0).expand(size, -1), start, stop, gen, clean_index)
            imgs = shown.unsqueeze(0).expand((size, *shown.shape)).contiguous()
        else:
            toks = tokens.unsqueeze(0).expand(size, -1).contiguous()
            imgs = audit.sampler.image.apply(image.unsqueeze(0).expand((size, *image.shape)), gen)
        pend_t.append(toks)
        pend_i.append(imgs)
        if sum(t.shape[0] for t in pend_t) >= audit.batch_size:
            ones += flush()
            pend_t, pend_i = [], []
    if pend_t:
        ones += flush()
    return ones


def certify_baseline(audit: Audit, item: AuditInput, name: str) -> dict[str, Any]:
    """One input's baseline record: counts, side, threshold, p_a_lower, decision, correct, frontier (module
    docstring); the frontier is [(0, Cohen radius)] for image-only, [(d, 0) for d <= certified budget] for
    text-only, empty when not certified at (0, 0)."""
    if name not in BASELINES:
        raise ValueError(f"certify.baselines: unknown baseline {name!r} (expected {', '.join(BASELINES)})")
    c = audit.spec.certify
    selection = None
    if c.target_class is None:
        selection = count_ones(audit, item, name, SELECT, c.n0)
        target_class = 1 if selection / c.n0 >= c.tau else 0
    else:
        target_class = c.target_class
    ones = count_ones(audit, item, name, ESTIMATE, c.n)
    target = ones if target_class == 1 else c.n - ones
    threshold = side_threshold(c.tau, target_class)
    p = float(clopper_pearson_lower(target, c.n, c.alpha))
    frontier: list[dict[str, Any]] = []
    if p >= threshold:
        if name == "image-only":
            r = float(cohen_radius(p, audit.spec.noise.sigma, threshold))
            frontier = [{"budget": 0, "radius": None, "radius_infinite": True} if math.isinf(r)
                        else {"budget": 0, "radius": r, "radius_infinite": False}]
        else:
            full = audit.threat.noised_positions(len(item.tokens))
            cap = min(c.max_budget, full[1] - full[0])
            budget = int(audit.noise.certified_budget(p, 0.0, tau=threshold, max_budget=cap))
            frontier = [{"budget": d, "radius": 0.0, "radius_infinite": False} for d in range(budget + 1)]
    decision = ("flag" if target_class == 1 else "no-flag") if frontier else "abstain"
    return {
        "counts": {"n0": c.n0 if c.target_class is None else 0, "n": c.n, "target": target,
                   "selection_target": None if selection is None else
                   (selection if target_class == 1 else c.n0 - selection)},
        "target_class": target_class, "side": "flag" if target_class == 1 else "no-flag", "threshold": threshold,
        "p_a_lower": p, "decision": decision,
        "correct": decision != "abstain" and (decision == "flag") == (item.label == 1), "frontier": frontier,
    }


def with_baselines(audit: Audit, results: list[InputResult]) -> list[InputResult]:
    """``results`` with ``baselines`` attached to each record (unchanged when the config asks for none)."""
    names = list(audit.spec.certify.baselines)
    if not names:
        return results
    from hybridcert.results.schema import InputResult

    items = {x.id: x for x in audit.dataset.inputs}
    out = []
    for r in results:
        extra = {name: certify_baseline(audit, items[r.id], name) for name in names}
        out.append(InputResult.model_validate({**r.model_dump(mode="json"), "baselines": extra}))
    return out


def mean_certified(inputs: list[Any]) -> dict[str, dict[str, float | int | None]]:
    """The paper's table (issue 13): per method, the mean certified image radius and the mean certified token
    budget over all N inputs, an input counting 0 when its decision is wrong or abstains (ACR-style):

    - image-only: radius = its Cohen radius; budget 0 (it certifies no token change);
    - text-only: radius 0 (it certifies no image change); budget = its certified budget at eps = 0;
    - hybrid: radius = r*(1) (one changed token, docs/theory.md §4); budget = the largest d certified at eps = 0.

    ``inputs`` are results.json input objects (dicts). Methods absent from the file are left out."""
    def radius(rec: dict[str, Any], budget: int) -> float:
        if not rec.get("correct") or rec.get("decision") == "abstain":
            return 0.0
        for e in rec.get("frontier", []):
            if e["budget"] == budget:
                return math.inf if e.get("radius_infinite") else float(e["radius"])
        return 0.0

    def budget(rec: dict[str, Any]) -> int:
        if not rec.get("correct") or rec.get("decision") == "abstain":
            return 0
        return max((e["budget"] for e in rec.get("frontier", [])), default=0)

    n = len(inputs)
    table: dict[str, dict[str, float | int | None]] = {}
    if n == 0:
        return table
    table["hybrid (d = 1)"] = {"radius": float(np.mean([radius(x, 1) for x in inputs])),
                               "budget": float(np.mean([budget(x) for x in inputs])), "n_inputs": n}
    for name in BASELINES:
        recs = [x.get("baselines", {}).get(name) for x in inputs]
        if any(r is None for r in recs):
            continue
        if name == "image-only":
            table[name] = {"radius": float(np.mean([radius(r, 0) for r in recs])), "budget": 0.0, "n_inputs": n}
        else:
            table[name] = {"radius": 0.0, "budget": float(np.mean([budget(r) for r in recs])), "n_inputs": n}
    return table
