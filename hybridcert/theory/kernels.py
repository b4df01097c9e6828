"""Token kernels and the atoms of the discrete likelihood ratio (docs/theory.md §1 and §3).

At one differing position (clean token a, attacked token b) a noisy token is a, b or something else (c).
All three kernels give an attacked law that is the clean law with the masses of a and b swapped, so an atom
with counts (na, nb, nc) over d differing positions has likelihood ratio (P(a)/P(b))^(nb - na): atoms are
merged by k = nb - na. Masses are computed in log space (rho^d overflows float64 quickly, docs/theory.md §3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln, logsumexp

from hybridcert.theory._checks import check_scalar, check_token_budget

KernelName = Literal["uniform-other", "uniform-all", "absorb"]
_EPS = float(np.finfo(np.float64).eps)
KERNELS: tuple[str, ...] = get_args(KernelName)


@dataclass(frozen=True)
class Atoms:
    """The merged atoms of the token likelihood ratio over ``budget`` differing positions (docs/theory.md §3).

    ``log_ratio`` holds the finite, strictly increasing levels log gamma1 of the atoms with positive mass
    under both laws, with their clean and attacked masses (``clean``, ``attacked``; logs in ``log_clean``,
    ``log_attacked`` stay exact where the float masses underflow). ``clean_zero_ratio`` is the clean mass of
    atoms with attacked mass 0 (gamma1 = 0, always in the worst-case set); ``attacked_infinite_ratio`` is the
    attacked mass of atoms with clean mass 0 (gamma1 = +infinity, never in it).
    """

    budget: int
    log_ratio: NDArray[np.float64]
    log_clean: NDArray[np.float64]
    log_attacked: NDArray[np.float64]
    clean_zero_ratio: float
    attacked_infinite_ratio: float
    # Rounding-error bounds (docs/theory.md §6): absolute error of log_ratio, relative error of each float mass.
    level_error: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.zeros(1))
    clean_error: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.zeros(1))
    attacked_error: NDArray[np.float64] = field(repr=False, default_factory=lambda: np.zeros(1))
    special_error: float = field(repr=False, default=0.0)  # relative error of the two special masses
    clean: NDArray[np.float64] = field(init=False, repr=False)
    attacked: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        with np.errstate(under="ignore"):  # masses below ~1e-308 become 0: the solvers add slack for them
            object.__setattr__(self, "clean", np.exp(self.log_clean))
            object.__setattr__(self, "attacked", np.exp(self.log_attacked))
        for arr in (self.log_ratio, self.log_clean, self.log_attacked, self.clean, self.attacked,
                    self.level_error, self.clean_error, self.attacked_error):
            arr.setflags(write=False)

    @property
    def size(self) -> int:
        return int(self.log_ratio.size)


@dataclass(frozen=True)
class TokenKernel:
    """A token kernel (docs/theory.md §1): ``name`` in KERNELS, alphabet size ``vocab_size``, noise level ``beta``.

    ``uniform-other``: keep w.p. 1 - beta, else one of the V - 1 other tokens uniformly.
    ``uniform-all``: keep w.p. 1 - beta, else one of all V tokens uniformly (the current one included).
    ``absorb``: replace by a mask symbol outside the alphabet w.p. beta.
    """

    name: KernelName
    vocab_size: int
    beta: float

    def __post_init__(self) -> None:
        if self.name not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {self.name!r}")
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int | np.integer):
            raise ValueError(f"vocab_size must be an integer, got {self.vocab_size!r}")
        object.__setattr__(self, "vocab_size", int(self.vocab_size))
        if self.vocab_size < 2:
            raise ValueError(
                f"vocab_size too small for the {self.name} kernel: need at least 2 tokens "
                f"(one to attack with), got {self.vocab_size}"
            )
        beta = check_scalar("beta", self.beta)
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"beta must lie in (0, 1], got {self.beta!r}")
        object.__setattr__(self, "beta", beta)

    def position_masses(self) -> tuple[float, float, float]:
        """Clean-law masses (P(a), P(b), P(c)) at one differing position (docs/theory.md §3 table)."""
        v, b = self.vocab_size, self.beta
        if self.name == "uniform-other":
            return (1.0 - b, b / (v - 1), b * (v - 2) / (v - 1))
        if self.name == "uniform-all":
            return (1.0 - b + b / v, b / v, b * (v - 2) / v)
        return (1.0 - b, 0.0, b)

    def log_position_masses(self) -> tuple[float, float, float]:
        """The logs of ``position_masses`` (-inf for a zero mass), each computed without cancellation."""
        v, b = self.vocab_size, self.beta
        if self.name == "uniform-other":
            log_a = math.log1p(-b) if b < 1.0 else -math.inf
            log_b = math.log(b) - math.log(v - 1)
            log_c = math.log(b) + math.log(v - 2) - math.log(v - 1) if v > 2 else -math.inf
        elif self.name == "uniform-all":
            log_a = math.log1p(-b * (v - 1) / v)
            log_b = math.log(b) - math.log(v)
            log_c = math.log(b) + math.log(v - 2) - math.log(v) if v > 2 else -math.inf
        else:
            log_a = math.log1p(-b) if b < 1.0 else -math.inf
            log_b = -math.inf
            log_c = math.log(b)
        return (log_a, log_b, log_c)

    @property
    def informative(self) -> bool:
        """False when the noise hides a token change completely (every atom has ratio 1)."""
        log_a, log_b, _ = self.log_position_masses()
        return log_a != log_b

    def atoms(self, budget: int) -> Atoms:
        """The merged likelihood-ratio atoms over ``budget`` differing positions (docs/theory.md §3)."""
        d = check_token_budget("budget", budget)
        return _atoms(self.log_position_masses(), d)


@lru_cache(maxsize=512)
def _atoms(log_masses: tuple[float, float, float], d: int) -> Atoms:
    log_a, log_b, log_c = log_masses
    if d == 0:
        zero = np.zeros(1)
        return Atoms(0, zero, zero.copy(), zero.copy(), 0.0, 0.0, zero.copy(), zero.copy(), zero.copy(), 0.0)
    na, nb = np.meshgrid(np.arange(d + 1), np.arange(d + 1), indexing="ij")
    nc = d - na - nb
    valid = nc >= 0
    na, nb, nc = na[valid], nb[valid], nc[valid]
    g_na, g_nb, g_nc = gammaln(na + 1), gammaln(nb + 1), gammaln(nc + 1)
    log_multinomial = gammaln(d + 1) - g_na - g_nb - g_nc
    # Clean law: (a, b, c) with masses (P(a), P(b), P(c)); attacked law swaps P(a) and P(b).
    log_clean = log_multinomial + _xlog(na, log_a) + _xlog(nb, log_b) + _xlog(nc, log_c)
    log_attacked = log_multinomial + _xlog(na, log_b) + _xlog(nb, log_a) + _xlog(nc, log_c)
    # Error bounds: gammaln and log within a few ulps of their magnitude, the per-position logs within
    # ulps of (|log m| + log V) (docs/theory.md §6). Generous factor 8 on the sum of magnitudes.
    scale = 8.0 * _EPS
    mag_log = [abs(x) + 2.0 if math.isfinite(x) else 0.0 for x in (log_a, log_b, log_c)]
    base = gammaln(d + 1) + g_na + g_nb + g_nc + 1.0
    err_clean = scale * (base + na * mag_log[0] + nb * mag_log[1] + nc * mag_log[2] + d * 4.0)
    err_attacked = scale * (base + na * mag_log[1] + nb * mag_log[0] + nc * mag_log[2] + d * 4.0)
    clean_pos = np.isfinite(log_clean)
    attacked_pos = np.isfinite(log_attacked)

    zero_ratio = clean_pos & ~attacked_pos  # gamma1 = 0
    inf_ratio = attacked_pos & ~clean_pos  # gamma1 = +infinity
    finite = clean_pos & attacked_pos
    c0 = float(np.exp(logsumexp(log_clean[zero_ratio]))) if zero_ratio.any() else 0.0
    a_inf = float(np.exp(logsumexp(log_attacked[inf_ratio]))) if inf_ratio.any() else 0.0
    special_error = float(max(err_clean.max(), err_attacked.max())) + scale * (math.log(d + 1) + 2.0)

    k = (nb - na)[finite]
    lc, la = log_clean[finite], log_attacked[finite]
    if log_a == log_b:  # ratio 1 everywhere: a single level
        keys = np.zeros_like(k)
        log_rho = 0.0
    else:
        keys = k
        log_rho = log_a - log_b
    by_key = np.argsort(keys, kind="stable")
    levels, starts = np.unique(keys[by_key], return_index=True)
    merged_c = _segment_logsumexp(lc[by_key], starts)
    merged_a = _segment_logsumexp(la[by_key], starts)
    log_ratio = np.zeros(levels.shape)
    nonzero = levels != 0  # (only level 0 exists when a or b has mass 0: no 0 * inf)
    log_ratio[nonzero] = levels[nonzero] * log_rho
    # errors: the worst atom of each merged group, plus the logsumexp and exp roundings
    grow = scale * (np.log(np.diff(np.append(starts, keys.size)) + 1.0) + 2.0)
    clean_error = np.maximum.reduceat(err_clean[finite][by_key], starts) + grow
    attacked_error = np.maximum.reduceat(err_attacked[finite][by_key], starts) + grow
    rho_error = scale * (sum(mag_log[:2]) + 2.0 * math.log(max(2, d)))  # |log a - log b| rounding
    level_error = np.abs(levels) * rho_error + _EPS * np.abs(log_ratio)
    order = np.argsort(log_ratio)
    return Atoms(
        d, log_ratio[order], merged_c[order], merged_a[order], c0, a_inf,
        level_error[order], clean_error[order], attacked_error[order], special_error,
    )


def _xlog(count: NDArray[np.int64], log_mass: float) -> NDArray[np.float64]:
    """count * log_mass with 0 * (-inf) = 0 (a zero-mass outcome seen zero times)."""
    out = np.zeros(count.shape)
    nz = count > 0
    out[nz] = count[nz] * log_mass
    return out


def _segment_logsumexp(values: NDArray[np.float64], starts: NDArray[np.intp]) -> NDArray[np.float64]:
    """log(sum(exp(values))) over the consecutive segments that begin at ``starts``."""
    peak = np.maximum.reduceat(values, starts)
    seg = np.repeat(np.arange(starts.size), np.diff(np.append(starts, values.size)))
    total = np.add.reduceat(np.exp(values - peak[seg]), starts)
    out: NDArray[np.float64] = peak + np.log(total)
    return out
