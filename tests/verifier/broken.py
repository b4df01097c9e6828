"""Deliberately broken theories (wrappers around the real one, nothing edited) that the verifier must catch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hybridcert.theory import Atoms, HybridNoise, TokenKernel, cohen_radius
from hybridcert.verifier.impl import Implementation

INFLATION = 1e-6


class InflatedNoise(HybridNoise):
    """Every radius 1e-6 relative too large."""

    def certified_radius(self, p_a: Any, budget: int, tau: float = 0.5) -> Any:
        return super().certified_radius(p_a, budget, tau) * (1 + INFLATION)

    def frontier(self, p_a: Any, tau: float = 0.5, max_budget: int | None = None) -> Any:
        return [(d, r * (1 + INFLATION)) for d, r in super().frontier(p_a, tau=tau, max_budget=max_budget)]


def _errors(a: Atoms, per_atom: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """The theory's rounding-error fields (docs/theory.md §6), rearranged like the atoms when they are per atom."""
    out: dict[str, Any] = {}
    for name in ("level_error", "clean_error", "attacked_error"):
        if hasattr(a, name):
            arr = np.asarray(getattr(a, name))
            out[name] = per_atom(arr) if arr.size == a.size and a.size > 1 else arr.copy()
    if hasattr(a, "special_error"):
        out["special_error"] = a.special_error
    return out


class DroppedAtomKernel(TokenKernel):
    """Atoms with the middle atom (ratio 1 for the uniform kernels) dropped, when there are at least two."""

    def atoms(self, budget: int) -> Atoms:
        a = super().atoms(budget)
        if a.size < 2:
            return a
        k = a.size // 2
        return Atoms(a.budget, np.delete(a.log_ratio, k), np.delete(a.log_clean, k), np.delete(a.log_attacked, k),
                     a.clean_zero_ratio, a.attacked_infinite_ratio, **_errors(a, lambda x: np.delete(x, k)))


class FlippedSignKernel(TokenKernel):
    """Atoms whose log likelihood ratios have the wrong sign (masses kept, order kept ascending)."""

    def atoms(self, budget: int) -> Atoms:
        a = super().atoms(budget)
        return Atoms(a.budget, -a.log_ratio[::-1].copy(), a.log_clean[::-1].copy(), a.log_attacked[::-1].copy(),
                     a.clean_zero_ratio, a.attacked_infinite_ratio, **_errors(a, lambda x: x[::-1].copy()))


class DroppedAtomNoise(HybridNoise):
    @property
    def token_kernel(self) -> TokenKernel:
        return DroppedAtomKernel(self.kernel, self.vocab_size, self.beta)


class FlippedSignNoise(HybridNoise):
    @property
    def token_kernel(self) -> TokenKernel:
        return FlippedSignKernel(self.kernel, self.vocab_size, self.beta)


INFLATED = Implementation(
    name="radius inflated by 1e-6",
    noise=InflatedNoise,
    cohen_radius=lambda p, s, tau=0.5: cohen_radius(p, s, tau) * (1 + INFLATION),
)
DROPPED_ATOM = Implementation(name="dropped atom", noise=DroppedAtomNoise, token_kernel=DroppedAtomKernel)
FLIPPED_SIGN = Implementation(
    name="wrong sign of the log ratio", noise=FlippedSignNoise, token_kernel=FlippedSignKernel
)
BROKEN = {"inflated": INFLATED, "dropped-atom": DROPPED_ATOM, "flipped-sign": FLIPPED_SIGN}
