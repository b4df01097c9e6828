"""Exact reference quantities the checks compare against, built without ``hybridcert.theory``.

Two independent sources, both exact (``fractions.Fraction``):

* ``position_masses``: the per-position table of docs/theory.md §3 (P_clean(a), P_clean(b), P_clean(c)).
* ``token_density``: the raw per-token kernel of docs/theory.md §1 (keep w.p. 1 - beta, else ...), used by the
  high-precision and Monte-Carlo checks, which enumerate or sample raw token sequences and never use the table.

``exact_atoms`` groups the outcomes of d differing positions into atoms with exact masses and exact
likelihood ratios (docs/theory.md §3); ``knapsack`` is the e = 0 worst case (docs/theory.md §4) in exact
rational arithmetic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

KERNEL_NAMES = ("uniform-other", "uniform-all", "absorb")
MASK = -1  # the absorb kernel's mask symbol (outside the alphabet 0..V-1)
CLEAN_TOKEN, ATTACKED_TOKEN = 0, 1  # at each differing position: x1_j = 0, x1'_j = 1


@dataclass(frozen=True)
class NoiseParams:
    """The noise configuration a certificate is about (docs/theory.md §1): kernel, alphabet size V, beta, sigma.

    ``vocab_size`` may be a tuple, one arity per categorical field (docs/theory.md §9): the budget then counts
    changed fields and a certificate must hold for every choice of fields (``field_choices``)."""

    kernel: str
    vocab_size: int | tuple[int, ...]
    beta: float
    sigma: float

    def __post_init__(self) -> None:
        if self.kernel not in KERNEL_NAMES:
            raise ValueError(f"kernel must be one of {', '.join(KERNEL_NAMES)}, got {self.kernel!r}")
        if isinstance(self.vocab_size, list | tuple):
            if not self.vocab_size or any(isinstance(v, bool) or not isinstance(v, int) or v < 2
                                          for v in self.vocab_size):
                raise ValueError(f"vocab_size must list integers >= 2, one per field, got {self.vocab_size!r}")
            object.__setattr__(self, "vocab_size", tuple(self.vocab_size))
        elif isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int) or self.vocab_size < 2:
            raise ValueError(f"vocab_size must be an integer >= 2, got {self.vocab_size!r}")
        if not (isinstance(self.beta, int | float) and 0.0 < float(self.beta) <= 1.0):
            raise ValueError(f"beta must lie in (0, 1], got {self.beta!r}")
        if not (isinstance(self.sigma, int | float) and 0.0 < float(self.sigma) < math.inf):
            raise ValueError(f"sigma must be a finite number > 0, got {self.sigma!r}")
        object.__setattr__(self, "beta", float(self.beta))
        object.__setattr__(self, "sigma", float(self.sigma))


def position_masses(kernel: str, vocab_size: int, beta: float) -> tuple[Fraction, Fraction, Fraction]:
    """Exact clean-law masses (P(a), P(b), P(c)) at one differing position: the docs/theory.md §3 table."""
    v, b = Fraction(vocab_size), Fraction(beta)
    if kernel == "uniform-other":
        return (1 - b, b / (v - 1), b * (v - 2) / (v - 1))
    if kernel == "uniform-all":
        return (1 - b + b / v, b / v, b * (v - 2) / v)
    if kernel == "absorb":
        return (1 - b, Fraction(0), b)
    raise ValueError(f"unknown kernel {kernel!r}")


def token_density(kernel: str, vocab_size: int, beta: float, source: int, z: int) -> Fraction:
    """Exact probability that the kernel turns token ``source`` into ``z`` (docs/theory.md §1, no grouping)."""
    b = Fraction(beta)
    if kernel == "uniform-other":
        return 1 - b if z == source else b / (vocab_size - 1)
    if kernel == "uniform-all":
        return (1 - b if z == source else Fraction(0)) + b / vocab_size
    if kernel == "absorb":
        if z == MASK:
            return b
        return 1 - b if z == source else Fraction(0)
    raise ValueError(f"unknown kernel {kernel!r}")


def noisy_alphabet(kernel: str, vocab_size: int) -> list[int]:
    """Every token the kernel can output: the alphabet, plus the mask for ``absorb``."""
    return list(range(vocab_size)) + ([MASK] if kernel == "absorb" else [])


def raw_outcomes(kernel: str, vocab_size: int, beta: float, budget: int) -> Iterator[tuple[Fraction, Fraction]]:
    """(clean, attacked) probability of every raw token sequence at ``budget`` differing positions.

    The clean input has token 0 at each differing position and the attacked input token 1; each noisy
    sequence's probability is the product of the raw per-token densities (docs/theory.md §1). V^d sequences
    ((V+1)^d with the mask): only for small V and d.
    """
    alphabet = noisy_alphabet(kernel, vocab_size)
    table = [(token_density(kernel, vocab_size, beta, CLEAN_TOKEN, z),
              token_density(kernel, vocab_size, beta, ATTACKED_TOKEN, z)) for z in alphabet]
    return _product_outcomes([table] * budget)


def _product_outcomes(tables: Sequence[Sequence[tuple[Fraction, Fraction]]]) -> Iterator[tuple[Fraction, Fraction]]:
    """(clean, attacked) probability of every choice of one row from each table, independent positions
    multiplying; outcomes impossible under both inputs are left out."""
    for combo in itertools.product(*tables):
        c, a = Fraction(1), Fraction(1)
        for cc, aa in combo:
            c *= cc
            a *= aa
        if c or a:
            yield c, a


@dataclass(frozen=True)
class ExactAtoms:
    """Atoms with exact masses (docs/theory.md §3): ``ratio`` strictly increasing (finite, > 0), with masses
    ``clean`` and ``attacked``; ``c0`` the clean mass of ratio-0 outcomes, ``a_inf`` the attacked mass of
    ratio-infinity outcomes."""

    budget: int
    ratio: tuple[Fraction, ...]
    clean: tuple[Fraction, ...]
    attacked: tuple[Fraction, ...]
    c0: Fraction
    a_inf: Fraction


def group_atoms(outcomes: Iterator[tuple[Fraction, Fraction]], budget: int) -> ExactAtoms:
    """Merge outcomes with the same exact likelihood ratio; split off the ratio-0 and ratio-inf parts."""
    by_ratio: dict[Fraction, list[Fraction]] = {}
    c0, a_inf = Fraction(0), Fraction(0)
    for c, a in outcomes:
        if c == 0:
            a_inf += a
        elif a == 0:
            c0 += c
        else:
            slot = by_ratio.setdefault(a / c, [Fraction(0), Fraction(0)])
            slot[0] += c
            slot[1] += a
    keys = sorted(by_ratio)
    return ExactAtoms(
        budget,
        tuple(keys),
        tuple(by_ratio[k][0] for k in keys),
        tuple(by_ratio[k][1] for k in keys),
        c0,
        a_inf,
    )


@lru_cache(maxsize=256)
def exact_atoms(kernel: str, vocab_size: int, beta: float, budget: int) -> ExactAtoms:
    """The atoms over ``budget`` differing positions from the docs/theory.md §3 table, by counts (na, nb, nc).

    The attacked law swaps P(a) and P(b); an outcome with counts (na, nb, nc) has multinomial multiplicity.
    """
    pa_, pb_, pc_ = position_masses(kernel, vocab_size, beta)

    def outcomes() -> Iterator[tuple[Fraction, Fraction]]:
        for na in range(budget + 1):
            for nb in range(budget + 1 - na):
                nc = budget - na - nb
                mult = math.factorial(budget) // (math.factorial(na) * math.factorial(nb) * math.factorial(nc))
                clean = mult * pa_**na * pb_**nb * pc_**nc
                attacked = mult * pb_**na * pa_**nb * pc_**nc
                yield clean, attacked

    return group_atoms(outcomes(), budget)


def knapsack(atoms: ExactAtoms, p_a: Fraction) -> Fraction:
    """The exact e = 0 worst case (docs/theory.md §4): fill clean mass p_a by ascending ratio, sum attacked mass."""
    if p_a >= 1:
        return 1 - atoms.a_inf
    room = p_a - atoms.c0
    if room <= 0:
        return Fraction(0)
    value = Fraction(0)
    for c, a in zip(atoms.clean, atoms.attacked, strict=True):
        if room >= c:
            room -= c
            value += a
        else:
            return value + a * room / c
    return value


# ------------------------------------------------------------------------------------------------------------
# Heterogeneous arities (docs/theory.md §9)
# ------------------------------------------------------------------------------------------------------------


def field_choices(arities: tuple[int, ...], budget: int, kernel: str | None = None, beta: float = 0.0,
                  ) -> list[tuple[tuple[int, int], ...]]:
    """Every choice of exactly min(budget, m) changed fields, as ((arity, count), ...) per distinct arity.

    Fields of equal arity are interchangeable (the kernel is symmetric in the category values), so this covers
    every subset of fields. With ``kernel`` (and ``beta``), choices that a swap provably cannot make worse are
    left out: a choice is dropped when it changes a field of arity v while a field of arity w is unchanged and
    ``garbling_kernel`` exhibits, checked here in exact arithmetic, a Markov kernel from w's one-field laws to
    v's (then moving the change from v to w gives laws of which the old ones are a garbling, so its worst case
    is no larger; ties between equivalent arities are broken towards the larger arity, so the moves end:
    docs/theory.md §9.1). The verifier checks each kernel itself; it does not take the engine's order.
    """
    classes: dict[int, int] = {}
    for v in arities:
        classes[v] = classes.get(v, 0) + 1
    items = sorted(classes.items())
    below: dict[tuple[int, int], bool] = {}
    if kernel is not None:
        for v, _ in items:
            for w, _ in items:
                if v != w:
                    fwd = garbling_kernel(position_masses(kernel, v, beta), position_masses(kernel, w, beta))
                    back = garbling_kernel(position_masses(kernel, w, beta), position_masses(kernel, v, beta))
                    below[(v, w)] = fwd is not None and (back is None or w > v)
    d = min(budget, len(arities))
    out = []
    for counts in itertools.product(*(range(n + 1) for _, n in items)):
        if sum(counts) != d:
            continue
        dominated = any(below.get((v, w), False) and kv > 0 and kw < nw
                        for (v, _), kv in zip(items, counts, strict=True)
                        for (w, nw), kw in zip(items, counts, strict=True))
        if not dominated:
            out.append(tuple((v, k) for (v, _), k in zip(items, counts, strict=True) if k > 0))
    return out


def garbling_kernel(weak: tuple[Fraction, Fraction, Fraction], strong: tuple[Fraction, Fraction, Fraction],
                    ) -> list[list[Fraction]] | None:
    """A Markov kernel K (rows: the strong field's outcome a, b, c; columns: the weak field's) with
    K(strong clean law) = weak clean law and K(strong attacked law) = weak attacked law, both checked exactly
    here; None when the construction of docs/theory.md §9.1 (Lemma 2) does not give one. Each field is given
    by its clean masses (P(a), P(b), P(c)); its attacked law swaps a and b."""

    def orient(m: tuple[Fraction, Fraction, Fraction]) -> tuple[Fraction, Fraction, int, int]:
        # H: the outcome with the smaller clean and larger attacked mass; L the other of a, b
        return (m[0], m[1], 0, 1) if m[0] <= m[1] else (m[1], m[0], 1, 0)

    m2, big2, h2, l2 = orient(weak)
    m, big, h, low = orient(strong)
    one, zero = Fraction(1), Fraction(0)
    if big == m:
        if big2 != m2:
            return None
        x = y = z = zero  # both uninformative: everything to the weak field's laws below
        rows_hln = None
    else:
        delta = (big2 - m2) / (big - m)
        r = 1 - m - big
        if m2 + big2 <= m + big:
            y = ((m2 + big2) / (m + big) - delta) / 2
            x, z = y + delta, zero
        elif r > 0:
            x, y, z = (1 + delta) / 2, (1 - delta) / 2, (m2 + big2 - m - big) / (2 * r)
        else:
            return None
        rows_hln = [[x, y, 1 - x - y], [y, x, 1 - x - y], [z, z, 1 - 2 * z]]
    kernel = [[zero] * 3 for _ in range(3)]
    if rows_hln is None:  # constant kernel onto the weak clean law (equal to its attacked law)
        kernel = [list(weak) for _ in range(3)]
    else:
        src = (h, low, 2)
        dst = (h2, l2, 2)
        for i, row in enumerate(rows_hln):
            for j, q in enumerate(row):
                kernel[src[i]][dst[j]] = q
    if any(q < 0 or q > 1 for row in kernel for q in row) or any(sum(row) != one for row in kernel):
        return None
    clean, attacked = list(strong), [strong[1], strong[0], strong[2]]
    weak_attacked = [weak[1], weak[0], weak[2]]
    for law, target in ((clean, list(weak)), (attacked, weak_attacked)):
        if [sum((law[i] * kernel[i][j] for i in range(3)), zero) for j in range(3)] != target:
            return None
    return kernel


@lru_cache(maxsize=1024)
def choice_atoms(kernel: str, beta: float, parts: tuple[tuple[int, int], ...]) -> ExactAtoms:
    """Exact atoms of changing ``count`` fields of each ``arity`` in ``parts`` (docs/theory.md §3 table per field,
    counts (na, nb, nc) per arity with multinomial multiplicities, products across arities; equal ratios merged)."""
    per_class = []
    for v, k in parts:
        pa_, pb_, pc_ = position_masses(kernel, v, beta)
        rows = []
        for na in range(k + 1):
            for nb in range(k + 1 - na):
                nc = k - na - nb
                mult = math.factorial(k) // (math.factorial(na) * math.factorial(nb) * math.factorial(nc))
                rows.append((mult * pa_**na * pb_**nb * pc_**nc, mult * pb_**na * pa_**nb * pc_**nc))
        per_class.append(rows)
    return group_atoms(_product_outcomes(per_class), sum(k for _, k in parts))


def raw_field_outcomes(kernel: str, arities: tuple[int, ...], beta: float) -> Iterator[tuple[Fraction, Fraction]]:
    """(clean, attacked) probability of every raw category tuple at the changed fields ``arities`` (one raw
    kernel of docs/theory.md §1 per field at its own arity; clean category 0, attacked category 1 at each field)."""
    tables = []
    for v in arities:
        alphabet = noisy_alphabet(kernel, v)
        tables.append([(token_density(kernel, v, beta, CLEAN_TOKEN, z),
                        token_density(kernel, v, beta, ATTACKED_TOKEN, z)) for z in alphabet])
    return _product_outcomes(tables)
