"""Threat models (docs/theory.md §2): which token positions the smoothing noises and how many the attacker may change.

For the three kernels the worst case depends only on the number d of differing positions, so a threat model
is data: the span of noised positions and the largest meaningful budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ThreatKind = Literal["l0", "suffix-append", "suffix-inplace"]
THREAT_MODELS: tuple[str, ...] = get_args(ThreatKind)


@dataclass(frozen=True)
class ThreatModel:
    """``l0``: any d text positions (all text noised). ``suffix-append``: the text is padded with ``span``
    pad tokens that are noised and that the attacker overwrites. ``suffix-inplace``: the last ``span`` text
    tokens are noised and the attacker rewrites up to d <= span of them.
    """

    kind: ThreatKind
    span: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in THREAT_MODELS:
            raise ValueError(f"threat model must be one of {', '.join(THREAT_MODELS)}, got {self.kind!r}")
        if self.kind == "l0":
            if self.span is not None:
                raise ValueError("span applies to the suffix threat models only; l0 noises every text position")
        elif isinstance(self.span, bool) or not isinstance(self.span, int) or self.span < 1:
            raise ValueError(f"span must be an integer >= 1 for the {self.kind} threat model, got {self.span!r}")

    def input_length(self, text_length: int) -> int:
        """Length of the token sequence the filter reads (text plus pad for ``suffix-append``)."""
        self._check_text_length(text_length)
        if self.kind == "suffix-append":
            assert self.span is not None
            return text_length + self.span
        return text_length

    def noised_positions(self, text_length: int) -> tuple[int, int]:
        """The half-open range [start, stop) of positions that the token kernel noises."""
        self._check_text_length(text_length)
        if self.kind == "l0":
            return (0, text_length)
        assert self.span is not None
        if self.kind == "suffix-append":
            return (text_length, text_length + self.span)
        if self.span > text_length:
            raise ValueError(
                f"suffix-inplace span {self.span} is longer than the text ({text_length} tokens)"
            )
        return (text_length - self.span, text_length)

    def max_budget(self, text_length: int) -> int:
        """The largest number of positions the attacker can change."""
        start, stop = self.noised_positions(text_length)
        return stop - start

    def describe(self) -> str:
        if self.kind == "l0":
            return "l0: any d text positions, every text position noised"
        if self.kind == "suffix-append":
            return f"suffix-append: {self.span} noised pad tokens after the text, attacker overwrites d of them"
        return f"suffix-inplace: the last {self.span} text tokens noised, attacker rewrites d of them"

    @staticmethod
    def _check_text_length(text_length: int) -> None:
        if isinstance(text_length, bool) or not isinstance(text_length, int) or text_length < 1:
            raise ValueError(f"text length must be an integer >= 1, got {text_length!r}")
