"""Adaptive attacks against a filter within the threat model (tokens + image), as an empirical upper bound next
to each certificate (docs/theory.md §10).

Filters opt in to the gradient-guided search by implementing ``hybridcert.attacks.protocol.GradientFilter``:
``embedding_matrix()``, ``embed_tokens(tokens)`` and ``scores_from_embeddings(embeddings, images)`` (a
differentiable score, > 0 exactly where the filter decides class 1). ``ModuleFilter`` implements it for modules
with ``get_input_embeddings()`` and ``forward_embeddings()`` (the demo filter); the guard adapter is wrapped by
``attacks.guard.GuardGradient`` over its own attack API unless it implements the three methods itself.
Entry points: ``run.attack_from_file`` (``hybridcert attack``) and ``engine.search``.
"""

from hybridcert.attacks.engine import AttackSettings, Estimate, Target, estimate, search
from hybridcert.attacks.protocol import GradientFilter, as_gradient_filter, check_consistency

__all__ = ["AttackSettings", "Estimate", "GradientFilter", "Target", "as_gradient_filter", "check_consistency",
           "estimate", "search"]
