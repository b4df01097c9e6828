"""``GradientFilter`` for the Hugging Face guard adapter (``hybridcert.audits.adapters.guard.GuardFilter``).

The guard exposes its own attack API (``model_inputs``, ``embed``, ``logits``, ``margin``, ``prompt_ids``,
``prepare_images``; docs/guards.md "Attacks"). This wrapper turns it into the protocol the attack searches with
(``hybridcert.attacks.protocol``): the text positions' embeddings are spliced into the prompt's embeddings and
the guard's own margin logsumexp(unsafe) - logsumexp(safe) is the score, so ``score > 0`` is exactly the guard's
decision (checked by ``check_consistency`` before every attack, and in tests/attacks/test_guard.py against the
guard's ``scores`` on a tiny random guard). The attack only searches with it; estimates use the guard itself
(docs/theory.md §10). A guard that implements the protocol's three methods itself is used as it is.
"""

from __future__ import annotations

from typing import Any

import torch

GUARD_API = ("model_inputs", "embed", "logits", "margin", "prompt_ids", "prepare_images", "model")


def is_guard(filt: object) -> bool:
    """Whether ``filt`` has the guard adapter's attack API."""
    return all(hasattr(filt, name) for name in GUARD_API)


class GuardGradient:
    """The protocol over a guard's attack API (module docstring). Rows must have equal length (no
    ``PAD_TOKEN_ID``): the text then sits right after the prompt's (image-expanded) prefix."""

    def __init__(self, guard: Any) -> None:
        self.guard = guard
        self.device: torch.device = guard.device
        self.name = getattr(guard, "name", "guard")
        self.weights_sha256 = getattr(guard, "weights_sha256", None)
        ids = guard.model.get_input_embeddings().weight.shape[0]
        image_token = getattr(guard, "image_token_id", None)
        self._filler = next(t for t in range(ids) if t != image_token)  # any text id; its embeddings are replaced

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.guard(tokens, images)
        return out

    def embedding_matrix(self) -> torch.Tensor:
        weight: torch.Tensor = self.guard.model.get_input_embeddings().weight.detach()
        return weight

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out: torch.Tensor = self.guard.embed(tokens.to(self.device)).detach()
        return out

    def scores_from_embeddings(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The guard's margin with the text positions' input embeddings replaced by ``embeddings`` [B, L, E], in
        slices of the guard's own ``batch_size`` (a filter setting, so results do not depend on the run's)."""
        step = getattr(self.guard, "batch_size", None) or max(embeddings.shape[0], 1)
        parts = [self._scores(embeddings[i:i + step], images[i:i + step]) for i in range(0, embeddings.shape[0], step)]
        return torch.cat(parts) if parts else torch.zeros(0, device=self.device)

    def _scores(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        b, length, _ = embeddings.shape
        filler = torch.full((b, length), self._filler, dtype=torch.long, device=self.device)
        inputs = self.guard.model_inputs(filler, images)
        ids = inputs.pop("input_ids")
        h, w = self.guard.prepare_images(images[:1]).shape[-2:]
        prefix, suffix = self.guard.prompt_ids(int(h), int(w))
        start = len(prefix)
        if ids.shape[1] != start + length + len(suffix):
            raise ValueError("the guard's prompt layout is not prefix + text + suffix: cannot splice embeddings")
        with torch.no_grad():
            full = self.guard.embed(ids)
        spliced = torch.cat([full[:, :start], embeddings.to(self.device, full.dtype), full[:, start + length:]], dim=1)
        margin: torch.Tensor = self.guard.margin(self.guard.logits(**inputs, inputs_embeds=spliced))
        return margin
