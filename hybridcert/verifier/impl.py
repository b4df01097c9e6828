"""The implementation under test: by default the real ``hybridcert.theory``, replaceable for tests.

Every check takes an ``Implementation`` so that the test suite can hand it a deliberately broken one (a radius
inflated by 1e-6, a kernel that drops an atom, a sign flip) and see the check fail, without editing theory.
Only the public API of ``hybridcert.theory`` is used (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hybridcert.theory import HybridNoise, TokenKernel, cohen_radius, cohen_worst_case, knapsack_worst_case


class NoiseLike(Protocol):
    """What the checks call on a noise object (docs/theory.md §4)."""

    def worst_case(self, p_a: Any, budget: int, radius: Any) -> Any: ...

    def certified_radius(self, p_a: Any, budget: int, tau: float = 0.5) -> Any: ...

    def certified_budget(
        self, p_a: Any, radius: Any, tau: float = 0.5, max_budget: int | None = None
    ) -> Any: ...

    def frontier(self, p_a: Any, tau: float = 0.5, max_budget: int | None = None) -> Any: ...


class KernelLike(Protocol):
    """What the checks call on a token kernel (docs/theory.md §3): ``atoms(d)`` with the fields of theory's Atoms."""

    def atoms(self, budget: int) -> Any: ...


@dataclass(frozen=True)
class Implementation:
    """Factories and functions of the theory under test (defaults: ``hybridcert.theory``)."""

    name: str = "hybridcert.theory"
    noise: Callable[..., NoiseLike] = HybridNoise
    token_kernel: Callable[..., KernelLike] = TokenKernel
    cohen_radius: Callable[..., Any] = cohen_radius
    cohen_worst_case: Callable[..., Any] = cohen_worst_case
    knapsack_worst_case: Callable[..., Any] = knapsack_worst_case

    def make_noise(self, kernel: str, vocab_size: int | tuple[int, ...], beta: float, sigma: float) -> NoiseLike:
        return self.noise(kernel, vocab_size, beta, sigma)

    def make_kernel(self, kernel: str, vocab_size: int, beta: float) -> KernelLike:
        return self.token_kernel(kernel, vocab_size, beta)


THEORY = Implementation()
