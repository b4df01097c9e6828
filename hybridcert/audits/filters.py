"""Filters: what the audit runner certifies (a batch of token ids and images in, one decision per sample out).

The runner gives the filter the sampled token ids directly (no decode and re-tokenise, docs/theory.md §7).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

PAD_TOKEN_ID = -1
"""A token id that marks an absent position: rows of different lengths in one [B, L] batch are padded with it.

Adapters that build their own prompt (the LLaVA guard) drop these positions; adapters that hand the ids to a
user's module (``module``, ``torchscript``, ``export``) pass them through unchanged, so such modules must
handle them or the runner must not send them.
"""


@runtime_checkable
class Filter(Protocol):
    """A base filter f(z1, z2) in {0, 1} (docs/theory.md §1): 1 is the target class (e.g. "unsafe").

    ``tokens``: LongTensor [B, L] of token ids; ``images``: FloatTensor [B, C, H, W] in the declared pixel
    space; returns a BoolTensor [B] (True = class 1). Adapters move inputs to ``self.device`` themselves.
    Every adapter of ``hybridcert.audits.adapters`` also has ``name`` and ``weights_sha256`` (the sha256 of
    the weights file, or of the model directory's manifest), which identify the filter in results; they are
    not part of the protocol, so a test double needs only ``device`` and ``__call__``.
    """

    device: torch.device

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor: ...
