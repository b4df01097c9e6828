"""Pure mathematics of hybrid randomized smoothing (docs/theory.md). numpy and scipy only.

Public API::

    noise = HybridNoise(kernel="uniform-other", vocab_size=30000, beta=0.25, sigma=1.0)
    noise.worst_case(p_a, budget=d, radius=eps)
    noise.certified_radius(p_a, budget=d, tau=0.5)
    noise.certified_budget(p_a, radius=eps, tau=0.5)
    noise.frontier(p_a, tau=0.5, max_budget=None)
    cohen_radius(p_a, sigma, tau=0.5)
    clopper_pearson_lower(successes, trials, alpha)
    cs_lower(successes, trials, alpha)              # anytime-valid (sequential) bound
    decide(successes, trials, SequentialRule(...))  # stopping rule for sequential certification
"""

from hybridcert.theory.bounds import clopper_pearson_lower, clopper_pearson_upper
from hybridcert.theory.certificate import (
    MAX_AUTO_BUDGET,
    MAX_BUDGET,
    MAX_SIGMA,
    HybridNoise,
    cohen_radius,
    cohen_worst_case,
    knapsack_worst_case,
)
from hybridcert.theory.kernels import KERNELS, Atoms, KernelName, TokenKernel
from hybridcert.theory.sequential import (
    SequentialDecision,
    SequentialResult,
    SequentialRule,
    certified_points,
    cs_lower,
    cs_upper,
    decide,
    run_sequential,
)
from hybridcert.theory.threat import THREAT_MODELS, ThreatKind, ThreatModel

__all__ = [
    "KERNELS",
    "MAX_AUTO_BUDGET",
    "MAX_BUDGET",
    "MAX_SIGMA",
    "THREAT_MODELS",
    "Atoms",
    "HybridNoise",
    "KernelName",
    "SequentialDecision",
    "SequentialResult",
    "SequentialRule",
    "ThreatKind",
    "ThreatModel",
    "TokenKernel",
    "certified_points",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "cohen_radius",
    "cohen_worst_case",
    "cs_lower",
    "cs_upper",
    "decide",
    "knapsack_worst_case",
    "run_sequential",
]
