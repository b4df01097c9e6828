"""Filters: what the audit runner certifies (a batch of token ids and images in, one decision per sample out).

The runner gives the filter the sampled token ids directly (no decode and re-tokenise, THEORY 7).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Filter(Protocol):
    """A base filter f(z1, z2) in {0, 1} (THEORY 1): 1 is the target class (e.g. "unsafe").

    ``tokens``: LongTensor [B, L] of token ids; ``images``: FloatTensor [B, C, H, W] in the declared pixel
    space; returns a BoolTensor [B] (True = class 1). Both inputs are on ``self.device``.
    """

    device: torch.device

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor: ...
