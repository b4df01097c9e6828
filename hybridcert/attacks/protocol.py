"""The protocol a filter implements so that the gradient-guided attack can differentiate through it.

``GradientFilter`` (name this in adapters): on top of the ``Filter`` protocol (a batch of token ids and images
in, one decision per sample out), a filter exposes its input embeddings and a differentiable score:

- ``embedding_matrix()`` -> [model_vocab_size, E]: the input embedding table (row t embeds token id t);
- ``embed_tokens(tokens [B, L])`` -> [B, L, E]: the embeddings of the filter's own token positions (the same L;
  a guard that wraps the tokens in a prompt does so inside ``scores_from_embeddings``);
- ``scores_from_embeddings(embeddings [B, L, E], images [B, C, H, W])`` -> [B]: differentiable in both
  arguments, and > 0 exactly where ``__call__`` on the same tokens and images decides class 1 (for logits
  [B, K]: logit[target] - max of the other logits).

The attack only uses these to *search*; every reported estimate comes from ``__call__`` (the deployed filter)
with fresh seeds (docs/theory.md §10). ``check_consistency`` refuses a filter whose score and decision disagree.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from hybridcert.audits.adapters.common import decision_margin

__all__ = ["GradientFilter", "as_gradient_filter", "check_consistency", "decision_margin"]


@runtime_checkable
class GradientFilter(Protocol):
    """A ``Filter`` with a differentiable path from input embeddings to its decision score (module docstring)."""

    device: torch.device

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor: ...

    def embedding_matrix(self) -> torch.Tensor: ...

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def scores_from_embeddings(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor: ...


def as_gradient_filter(filt: object) -> GradientFilter:
    """``filt`` itself when it implements ``GradientFilter``; a guard adapter through ``attacks.guard``;
    ValueError naming what is missing otherwise."""
    from hybridcert.attacks.guard import GuardGradient, is_guard

    if is_guard(filt) and not callable(getattr(filt, "scores_from_embeddings", None)):
        return GuardGradient(filt)
    missing = [name for name in ("embedding_matrix", "embed_tokens", "scores_from_embeddings")
               if not callable(getattr(filt, name, None))]
    if missing:
        name = getattr(filt, "name", type(filt).__name__)
        raise ValueError(f"filter {name!r} does not implement the GradientFilter protocol (missing "
                         f"{', '.join(missing)}; see hybridcert.attacks.protocol): the gradient attack needs it")
    assert isinstance(filt, GradientFilter)
    return filt


@torch.no_grad()
def check_consistency(filt: GradientFilter, tokens: torch.Tensor, images: torch.Tensor,
                      tolerance: float = 0.01) -> None:
    """ValueError unless sign(scores_from_embeddings) agrees with ``__call__`` on (all but ``tolerance`` of) a
    batch: a protocol implementation that scores another function than the deployed filter would make the
    attack search the wrong objective."""
    decisions = filt(tokens, images).to(torch.bool).cpu()
    scores = filt.scores_from_embeddings(filt.embed_tokens(tokens), images).float().cpu()
    disagree = float(((scores > 0) != decisions).float().mean())
    if disagree > tolerance:
        raise ValueError(f"the filter's scores_from_embeddings disagrees with its decisions on {disagree:.1%} of "
                         "samples: the GradientFilter implementation does not score the deployed filter")
