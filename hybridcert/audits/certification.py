"""From counts to certificates (docs/theory.md §4 and §5): no sampling, no files, no filter.

Per input, the counts say which side is certified (``target_class``: 1 = flag, 0 = no-flag) and how many of the
n estimation samples fell on that side. The one-sided Clopper-Pearson bound at alpha (alpha / (D + 1) per pass
with ``per-budget`` sampling, Bonferroni) gives p_a_lower, and the theory engine turns it into the frontier
d -> r*(d) against the side's threshold (``side_threshold``). Guarantee: with probability >= 1 - alpha over the
sampling, each input's certificate holds for the smoothed filter (docs/theory.md §5). A sequential input brings
its own p_a_lower, the anytime-valid confidence-sequence bound at its stopping time, which enters the same way
because the sequence is time-uniform (docs/theory.md §5).

``Certifier`` computes the frontier rows of one run, one vectorised theory call per side for the values not
seen before, and keeps them for the run (the cache lives on the certifier, never on a configuration object).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridcert.audits.config import CertifySpec
from hybridcert.audits.dataset import AuditInput
from hybridcert.results.schema import Counts, Decision, FrontierPoint, InputResult
from hybridcert.theory import HybridNoise, clopper_pearson_lower
from hybridcert.theory.sequential import SequentialRule

Row = tuple[np.ndarray, np.ndarray]  # (radii r*(d) for d = 0..D, certified-at-eps-0 mask)


def side_threshold(tau: float, target_class: int) -> float:
    """tau on the flag side; the smallest float strictly above 1 - tau on the no-flag side (docs/theory.md §4)."""
    return tau if target_class == 1 else float(np.nextafter(1.0 - tau, 2.0))


def effective_alpha(certify: CertifySpec) -> float:
    """alpha per confidence bound: alpha (one-pass) or alpha / (D + 1) (per-budget, Bonferroni; §5)."""
    return certify.alpha if certify.sampling == "one-pass" else certify.alpha / (certify.max_budget + 1)


def sequential_rule(noise: HybridNoise, certify: CertifySpec, target_class: int) -> SequentialRule:
    """The stopping rule of one side: requested points, the side's threshold, alpha, cap n, one look per chunk."""
    assert certify.requested is not None
    return SequentialRule(noise=noise, points=tuple(certify.requested),
                          threshold=side_threshold(certify.tau, target_class), alpha=certify.alpha,
                          n_max=certify.n, chunk=certify.chunk_size)


@dataclass
class Counted:
    """What counting hands to certification for one input (counting.py fills it)."""

    item: AuditInput
    max_budget: int  # min(max_budget, noised positions of this input)
    selection_ones: int | None  # class-1 count of the n0 selection samples (None: target class fixed)
    target_class: int
    targets: list[int]  # target-side count: one (one-pass) or one per budget (per-budget)
    seconds: float
    n_used: int = 0  # samples behind targets (n, or the samples a sequential input drew)
    p_lower: float | None = None  # sequential: the confidence-sequence lower bound at the stopping time
    stopped: str | None = None  # sequential: certified | refuted | cap


def _point(d: int, r: float) -> FrontierPoint:
    if np.isinf(r):
        return FrontierPoint(budget=d, radius=None, radius_infinite=True)
    return FrontierPoint(budget=d, radius=float(r))


class Certifier:
    """Certificates for counted inputs of one run (module docstring). Not shared between runs or threads."""

    def __init__(self, noise: HybridNoise, certify: CertifySpec) -> None:
        self.noise = noise
        self.certify = certify
        self._by_count: dict[tuple[float, int], Row] = {}
        self._by_bound: dict[tuple[float, float], Row] = {}

    def _fill_by_count(self, needed: set[tuple[float, int]]) -> None:
        """Frontier rows for every (threshold, count) not yet known, one vectorised theory call per threshold.

        The theory engine computes each p_a independently, so the rows do not depend on which counts share a
        call (checked by the batch-size and resume tests)."""
        c = self.certify
        missing = sorted(needed - set(self._by_count))
        for threshold in sorted({t for t, _ in missing}):
            ks = np.array([k for t, k in missing if t == threshold], dtype=np.int64)
            p = clopper_pearson_lower(ks, c.n, effective_alpha(c))
            radii, mask = self.noise.frontier_radii(p, tau=threshold, max_budget=c.max_budget)
            for i, k in enumerate(ks):
                self._by_count[(threshold, int(k))] = (radii[i], mask[i])

    def _fill_by_bound(self, needed: set[tuple[float, float]]) -> None:
        """Sequential inputs: frontier rows for every (threshold, p_a_lower) not yet known."""
        missing = sorted(needed - set(self._by_bound))
        for threshold in sorted({t for t, _ in missing}):
            ps = [p for t, p in missing if t == threshold]
            radii, mask = self.noise.frontier_radii(np.array(ps), tau=threshold, max_budget=self.certify.max_budget)
            for i, p in enumerate(ps):
                self._by_bound[(threshold, p)] = (radii[i], mask[i])

    def certify_counted(self, counted: list[Counted]) -> list[InputResult]:
        """One result per counted input, in order (timing: the theory time shared evenly)."""
        start = time.perf_counter()
        tau = self.certify.tau
        self._fill_by_count({(side_threshold(tau, x.target_class), k) for x in counted if x.p_lower is None
                             for k in x.targets})
        self._fill_by_bound({(side_threshold(tau, x.target_class), x.p_lower) for x in counted
                             if x.p_lower is not None})
        share = (time.perf_counter() - start) / max(len(counted), 1)
        return [self._result(x, share) for x in counted]

    def _result(self, counted: Counted, share_seconds: float) -> InputResult:
        c = self.certify
        threshold = side_threshold(c.tau, counted.target_class)
        frontier: list[FrontierPoint] = []
        if counted.p_lower is not None:
            p_lowers = [counted.p_lower]
        else:
            p_lowers = [float(clopper_pearson_lower(k, c.n, effective_alpha(c))) for k in counted.targets]
        if c.sampling == "one-pass":
            radii, mask = (self._by_bound[(threshold, counted.p_lower)] if counted.p_lower is not None
                           else self._by_count[(threshold, counted.targets[0])])
            for d in range(counted.max_budget + 1):
                if not mask[d]:
                    break
                frontier.append(_point(d, float(radii[d])))
        else:
            prev = np.inf
            for d in range(counted.max_budget + 1):
                radii, mask = self._by_count[(threshold, counted.targets[d])]
                if not mask[d]:
                    break
                prev = min(prev, float(radii[d]))
                frontier.append(_point(d, prev))
        decision: Decision = ("flag" if counted.target_class == 1 else "no-flag") if frontier else "abstain"
        label = counted.item.label
        correct = decision != "abstain" and (decision == "flag") == (label == 1)
        extra: dict[str, Any] = {} if counted.stopped is None else {"stopped": counted.stopped}
        return InputResult(
            id=counted.item.id, label=label, group=counted.item.group,
            counts=Counts(n0=c.n0 if c.target_class is None else 0, n=counted.n_used, target=counted.targets[0],
                          selection_target=(None if counted.selection_ones is None else
                                            (counted.selection_ones if counted.target_class == 1
                                             else c.n0 - counted.selection_ones)),
                          target_per_budget=counted.targets if c.sampling == "per-budget" else None),
            target_class=counted.target_class, side="flag" if counted.target_class == 1 else "no-flag",
            threshold=threshold, p_a_lower=p_lowers[0],
            p_a_lower_per_budget=p_lowers if c.sampling == "per-budget" else None,
            decision=decision, correct=correct, max_budget=counted.max_budget, frontier=frontier,
            seconds=round(counted.seconds + share_seconds, 6), **extra,
        )


def budget_warnings(noise: HybridNoise, certify: CertifySpec) -> list[str]:
    """Warnings (one line each) when no budget d >= 1 can ever be certified, on a side, at eps = 0.

    Computed with the theory engine (docs/theory.md §4, §5): the best bound n samples at alpha can give, every
    sample on the certified side, is the Clopper-Pearson lower bound of n successes in n (alpha / (D + 1) with
    per-budget sampling); if even that certifies no d >= 1, no input can. If even p_a = 1 - 1e-12 certifies no
    d >= 1, more samples cannot help either: beta and tau rule it out. Only the side a fixed ``target_class``
    names is checked; empty when ``max_budget`` is 0.
    """
    if certify.max_budget < 1:
        return []
    best = float(clopper_pearson_lower(certify.n, certify.n, effective_alpha(certify)))
    ceiling = 1.0 - 1e-12
    out = []
    for target_class, side in ((1, "flag"), (0, "no-flag")):
        if certify.target_class is not None and certify.target_class != target_class:
            continue
        threshold = side_threshold(certify.tau, target_class)
        _, mask = noise.frontier_radii(np.array([best, ceiling]), tau=threshold, max_budget=1)
        if mask[0, 1]:
            continue
        why = (f"even p_a = 1 - 1e-12 does not (beta = {noise.beta:g}, tau = {certify.tau:g}, V = {noise.vocab_size})"
               if not mask[1, 1] else
               f"n = {certify.n} samples at alpha = {effective_alpha(certify):g} give at best p_a_lower = {best:.6g}")
        out.append(f"no budget d >= 1 can be certified on the {side} side at eps = 0: {why}")
    return out
