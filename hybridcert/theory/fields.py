"""Categorical fields with unequal arities (tabular data): the attacker's choice of fields (docs/theory.md §9).

A record has m fields with arities V_1..V_m, each noised on its own by the same kernel (uniform-other,
uniform-all or absorb, docs/theory.md §1) at its own arity. An attacker who changes a set S of at most d
fields faces the product of the per-field tables of §3 over S; the certificate is the minimum over S.

* Fields of equal arity are interchangeable (the kernel is symmetric in the category values), so a choice
  is a vector k of how many fields of each distinct arity ("class") change, with k_i <= n_i (the class
  size) and sum k_i = d. The atoms of a choice are the per-class atoms of §3 (counts (na, nb, nc) merged by
  nb - na), multiplied across classes; atoms whose exact ratios are equal (compared as rationals) merge.
* Exactly d fields suffice for "at most d" when d <= m (§9.1, Lemma 1: adding a field garbles nothing away,
  so p_adv is non-increasing in the set S), and d > m means d = m.
* Pruning (§9.1, Lemma 2): at one field the experiment of class i is a garbling (in Blackwell's sense) of
  class j's when an explicit Markov kernel maps j's outcomes to i's under both laws; then moving a changed
  field from class i to an unused field of class j never raises p_adv. Only choices where no such move is
  possible are searched; with a total order (uniform-all always; uniform-other when beta/(V-1) <= 1-beta
  for every arity) that is one choice per d.

Everything here is exact where it decides anything (which choices, which atoms merge, the order of the
atoms: rational arithmetic on the float beta's exact value); floats carry the running error bounds of
``kernels.Atoms`` (docs/theory.md §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from hybridcert.theory._checks import check_budget
from hybridcert.theory.kernels import Atoms, KernelName, TokenKernel, _atoms

_EPS = float(np.finfo(np.float64).eps)


def exact_position_masses(kernel: str, vocab_size: int, beta: float) -> tuple[Fraction, Fraction, Fraction]:
    """The §3 table (P(a), P(b), P(c)) in exact rational arithmetic on the float ``beta``'s exact value."""
    v, b = Fraction(vocab_size), Fraction(beta)
    if kernel == "uniform-other":
        return (1 - b, b / (v - 1), b * (v - 2) / (v - 1))
    if kernel == "uniform-all":
        return (1 - b + b / v, b / v, b * (v - 2) / v)
    return (1 - b, Fraction(0), b)


def garbles(weak: tuple[Fraction, Fraction], strong: tuple[Fraction, Fraction]) -> bool:
    """True when the one-field experiment ``weak`` is a garbling of ``strong`` (docs/theory.md §9.1, Lemma 2).

    An experiment is given by (m, M), m <= M: outcome H has masses (m, M) under (clean, attacked), L has
    (M, m), N has r = 1 - m - M under both. The condition is sufficient: the proof exhibits the Markov kernel.
    """
    m2, big2 = weak
    m, big = strong
    if big2 == m2:  # weak is uninformative: a constant kernel
        return True
    if big == m:  # strong is uninformative, weak is not
        return False
    if m2 + big2 <= m + big:
        return m2 * big >= big2 * m
    return big2 - m2 <= big - m


@dataclass(frozen=True)
class FieldKernels:
    """One kernel (``name``, ``beta``) applied per field at that field's arity (``arities``, one per field).

    ``classes`` lists the distinct arities with their counts, most informative first (a linear extension of
    the garbling order of docs/theory.md §9.1); ``choices(d)`` the choices searched at exactly d changed fields.
    """

    name: KernelName
    arities: tuple[int, ...]
    beta: float

    def __post_init__(self) -> None:
        if len(self.arities) == 0:
            raise ValueError("vocab_size must list at least one field arity, got an empty sequence")
        checked = []
        for i, v in enumerate(self.arities):
            try:
                checked.append(TokenKernel(self.name, v, self.beta).vocab_size)
            except ValueError as exc:
                raise ValueError(f"vocab_size[{i}]: {exc}") from None
        object.__setattr__(self, "arities", tuple(checked))
        object.__setattr__(self, "beta", TokenKernel(self.name, checked[0], self.beta).beta)

    @property
    def size(self) -> int:
        """m, the number of fields."""
        return len(self.arities)

    @property
    def homogeneous(self) -> bool:
        return len(set(self.arities)) == 1

    @property
    def informative(self) -> bool:
        """False when the noise hides a change of any field completely."""
        return any(TokenKernel(self.name, v, self.beta).informative for v, _ in self.classes)

    @cached_property
    def _experiments(self) -> dict[int, tuple[Fraction, Fraction]]:
        out = {}
        for v in set(self.arities):
            pa, pb, _ = exact_position_masses(self.name, v, self.beta)
            out[v] = (min(pa, pb), max(pa, pb))
        return out

    @cached_property
    def classes(self) -> tuple[tuple[int, int], ...]:
        """(arity, number of fields) per distinct arity, most informative first (a topological order of the
        strict order "i below j": i garbles j and not j i, or both and j has the larger arity)."""
        counts: dict[int, int] = {}
        for v in self.arities:
            counts[v] = counts.get(v, 0) + 1
        left = sorted(counts, reverse=True)
        order: list[int] = []
        while left:
            # the first (largest arity) class that no remaining class lies above
            top = next(v for v in left if not any(self._below(v, w) for w in left if w != v))
            order.append(top)
            left.remove(top)
        return tuple((v, counts[v]) for v in order)

    def _below(self, v: int, w: int) -> bool:
        """The strict order of §9.1: class v's field can be swapped for class w's without raising p_adv."""
        ev, ew = self._experiments[v], self._experiments[w]
        if not garbles(ev, ew):
            return False
        return not garbles(ew, ev) or w > v

    def all_choices(self, budget: int) -> tuple[tuple[int, ...], ...]:
        """Every choice k (fields changed per class, in ``classes`` order) with sum k = min(budget, m)."""
        d = min(check_budget("budget", budget), self.size)
        return tuple(self._search(d, prune=False))

    def choices(self, budget: int) -> tuple[tuple[int, ...], ...]:
        """The choices whose minimum is the worst case at min(budget, m) fields (§9.1, Lemmas 1 and 2)."""
        d = min(check_budget("budget", budget), self.size)
        return _choices(self, d)

    def _search(self, d: int, prune: bool) -> list[tuple[int, ...]]:
        cls = self.classes
        sizes = [n for _, n in cls]
        capacity_after = [sum(sizes[i + 1:]) for i in range(len(cls))]
        above = [[j for j in range(i) if self._below(cls[i][0], cls[j][0])] for i in range(len(cls))]
        out: list[tuple[int, ...]] = []

        def visit(i: int, left: int, chosen: list[int]) -> None:
            if i == len(cls):
                if left == 0:
                    out.append(tuple(chosen))
                return
            blocked = prune and any(chosen[j] < sizes[j] for j in above[i])
            top = 0 if blocked else min(sizes[i], left)
            for k in range(top, -1, -1):
                if left - k <= capacity_after[i]:
                    visit(i + 1, left - k, [*chosen, k])

        visit(0, d, [])
        return out

    def atoms(self, choice: Sequence[int]) -> Atoms:
        """The merged atoms of one choice (§9): per-class atoms multiplied across classes, equal exact ratios
        merged, sorted by exact ratio; with the error bounds of ``kernels.Atoms``."""
        ks = tuple(int(k) for k in choice)
        if len(ks) != len(self.classes) or any(k < 0 or k > n for k, (_, n) in zip(ks, self.classes, strict=True)):
            raise ValueError(f"choice must give 0 <= k_i <= n_i per class {self.classes}, got {choice!r}")
        return _choice_atoms(self.name, self.beta, tuple((v, k) for (v, _), k in zip(self.classes, ks, strict=True)))


@lru_cache(maxsize=256)
def _choices(fields: FieldKernels, d: int) -> tuple[tuple[int, ...], ...]:
    return tuple(fields._search(d, prune=True))


@lru_cache(maxsize=512)
def _choice_atoms(name: str, beta: float, parts: tuple[tuple[int, int], ...]) -> Atoms:
    used = [(v, k) for v, k in parts if k > 0]
    d = sum(k for _, k in used)
    if len(used) <= 1:
        v = used[0][0] if used else parts[0][0]
        return _atoms(TokenKernel(name, v, beta).log_position_masses(), d)  # type: ignore[arg-type]
    scale = 8.0 * _EPS
    # running state: exact ratio keys (sorted later), log masses, levels and their error bounds
    keys: list[Fraction] = [Fraction(1)]
    lc = np.zeros(1)
    la = np.zeros(1)
    lv = np.zeros(1)
    ec = np.zeros(1)
    ea = np.zeros(1)
    el = np.zeros(1)
    c0 = 0.0
    a_inf = 0.0
    fin_c = 1.0  # clean mass of the finite part of the classes so far (and of the attacked law)
    fin_a = 1.0
    special = 0.0
    for v, k in used:
        kern = TokenKernel(name, v, beta)  # type: ignore[arg-type]
        at = _atoms(kern.log_position_masses(), k)
        pa, pb, _ = exact_position_masses(name, v, beta)
        log_a, log_b, _ = kern.log_position_masses()
        if log_a == log_b or not (pa > 0 and pb > 0):
            lam = np.zeros(at.size, dtype=np.int64)
            rho = Fraction(1)
        else:
            lam = np.rint(at.log_ratio / (log_a - log_b)).astype(np.int64)
            rho = pa / pb
        # special masses: ratio 0 (clean > 0 = attacked) when this class is in its ratio-0 part and the
        # earlier classes are finite; ratio inf likewise (an outcome with both parts has both masses 0)
        c0 += at.clean_zero_ratio * fin_c
        a_inf += at.attacked_infinite_ratio * fin_a
        tot_c = float(np.exp(logsumexp(at.log_clean)))
        tot_a = float(np.exp(logsumexp(at.log_attacked)))
        special += (at.special_error + float(at.clean_error.max()) + float(at.attacked_error.max())
                    + (at.size + 4) * _EPS)
        fin_c *= tot_c
        fin_a *= tot_a
        # outer product with this class's atoms
        n_old, n_new = lc.size, at.size
        lc2 = (lc[:, None] + at.log_clean[None, :]).ravel()
        la2 = (la[:, None] + at.log_attacked[None, :]).ravel()
        lv2 = (lv[:, None] + at.log_ratio[None, :]).ravel()
        round_c = _EPS * (np.abs(lc)[:, None] + np.abs(at.log_clean)[None, :]).ravel()
        round_a = _EPS * (np.abs(la)[:, None] + np.abs(at.log_attacked)[None, :]).ravel()
        round_l = _EPS * (np.abs(lv)[:, None] + np.abs(at.log_ratio)[None, :]).ravel()
        ec2 = (ec[:, None] + at.clean_error[None, :]).ravel() + round_c
        ea2 = (ea[:, None] + at.attacked_error[None, :]).ravel() + round_a
        el2 = (el[:, None] + at.level_error[None, :]).ravel() + round_l
        powers = {int(x): rho ** int(x) for x in set(lam.tolist())}
        new_keys = [kk * powers[int(x)] for kk in keys for x in lam]
        assert len(new_keys) == n_old * n_new
        index: dict[Fraction, int] = {}
        group = np.fromiter((index.setdefault(kk, len(index)) for kk in new_keys), dtype=np.int64,
                            count=len(new_keys))
        keys = list(index)
        lc, la, lv, ec, ea, el = _merge(group, len(keys), lc2, la2, lv2, ec2, ea2, el2, scale)
    special += 4.0 * len(used) * _EPS
    order = sorted(range(len(keys)), key=keys.__getitem__)  # exact order of the ratios
    o = np.array(order, dtype=np.intp)
    return Atoms(d, lv[o], lc[o], la[o], float(c0), float(a_inf), el[o], ec[o], ea[o], float(special))


def _merge(
    group: NDArray[np.int64], n: int, lc: NDArray[np.float64], la: NDArray[np.float64], lv: NDArray[np.float64],
    ec: NDArray[np.float64], ea: NDArray[np.float64], el: NDArray[np.float64], scale: float,
) -> tuple[NDArray[np.float64], ...]:
    """Merge atoms with equal exact ratio: masses add (log-sum-exp), the level is one member's with the
    largest member error (every member's float level is within its own bound of the common exact level)."""
    by = np.argsort(group, kind="stable")
    g = group[by]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    counts = np.diff(np.append(starts, g.size))
    out_c = _seg_lse(lc[by], starts)
    out_a = _seg_lse(la[by], starts)
    out_l = lv[by][starts]
    grow = scale * (np.log(counts + 1.0) + 2.0)
    out_ec = np.maximum.reduceat(ec[by], starts) + grow
    out_ea = np.maximum.reduceat(ea[by], starts) + grow
    out_el = np.maximum.reduceat(el[by], starts)
    ids = g[starts]
    res = []
    for arr in (out_c, out_a, out_l, out_ec, out_ea, out_el):
        full = np.empty(n)
        full[ids] = arr
        res.append(full)
    return tuple(res)


def _seg_lse(values: NDArray[np.float64], starts: NDArray[np.intp]) -> NDArray[np.float64]:
    peak = np.maximum.reduceat(values, starts)
    seg = np.repeat(np.arange(starts.size), np.diff(np.append(starts, values.size)))
    with np.errstate(under="ignore"):
        total = np.add.reduceat(np.exp(values - peak[seg]), starts)
    out: NDArray[np.float64] = peak + np.log(total)
    return out

