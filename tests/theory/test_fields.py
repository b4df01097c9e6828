"""Heterogeneous arities (docs/theory.md §9): the fast path against a brute force over every subset of fields
and every outcome at 30 digits; the pruning lemma's kernels; the token case unchanged bit for bit."""

from __future__ import annotations

import hashlib
import itertools
from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridcert.theory import HybridNoise
from hybridcert.theory.certificate import _prepared_choice
from hybridcert.theory.fields import FieldKernels, exact_position_masses, garbles
from tests.theory import fields_oracle as brute
from tests.theory.test_soundness import CONFIGS

TOL = 1e-9
SLACK = mp.mpf("1e-25")
ADULT = [9, 16, 7, 15, 6, 5, 2, 42]

# -- the token case: today's engine, bit for bit ------------------------------------------------------------

#: sha256 of every value below computed by the engine before heterogeneous arities existed (commit 312596d,
#: numpy/scipy of the shared environment): radii and worst cases d = 0..4, budgets, frontiers to d = 8.
GOLDEN = "a5f657ffa20f742f9841ad0c413a64ea4fc6de78645779878aa1a273e2a16f1e"


def _grid_digest(n: int = 100) -> str:
    h = hashlib.sha256()
    for i, (kernel, vocab, beta, sigma, tau) in enumerate(CONFIGS):
        noise = HybridNoise(kernel, vocab, beta, sigma)  # type: ignore[arg-type]
        rng = np.random.default_rng(i)
        p = 1.0 - np.exp(rng.uniform(np.log(1e-9), np.log(1.0 - tau), n))
        eps = rng.uniform(0.0, 1.5, n) * sigma
        eps[::5] = 0.0
        for d in range(5):
            h.update(np.ascontiguousarray(noise.certified_radius(p, budget=d, tau=tau)).tobytes())
            h.update(np.ascontiguousarray(noise.worst_case(p, budget=d, radius=eps)).tobytes())
        h.update(np.ascontiguousarray(noise.certified_budget(p, eps, tau=tau, max_budget=12)).tobytes())
        r, m = noise.frontier_radii(p, tau=tau, max_budget=8)
        h.update(np.ascontiguousarray(r).tobytes())
        h.update(np.ascontiguousarray(m).tobytes())
    return h.hexdigest()


def test_single_vocabulary_is_todays_engine_bit_for_bit() -> None:
    """A scalar vocab_size goes through the token code path unchanged: same bytes as before §9 existed."""
    assert _grid_digest() == GOLDEN


@pytest.mark.parametrize("kernel", ["uniform-other", "uniform-all", "absorb"])
def test_equal_arities_are_the_token_case(kernel: str) -> None:
    """m fields of one arity V: the token engine at min(d, m) positions, bit for bit."""
    fields = HybridNoise(kernel, [40] * 5, 0.3, 0.8)  # type: ignore[arg-type]
    tokens = HybridNoise(kernel, 40, 0.3, 0.8)  # type: ignore[arg-type]
    p = np.linspace(0.5, 1 - 1e-9, 50)
    for d in range(7):
        dd = min(d, 5)
        np.testing.assert_array_equal(fields.certified_radius(p, d, 0.3), tokens.certified_radius(p, dd, 0.3))
        np.testing.assert_array_equal(fields.worst_case(p, d, 0.4), tokens.worst_case(p, dd, 0.4))
    r_f, m_f = fields.frontier_radii(p, tau=0.3)
    r_t, m_t = tokens.frontier_radii(p, tau=0.3, max_budget=5)
    np.testing.assert_array_equal(r_f, r_t[:, : r_f.shape[1]])
    np.testing.assert_array_equal(m_f, m_t[:, : m_f.shape[1]])


# -- brute force over every subset and every outcome ----------------------------------------------------------


def _check_against_brute(kernel: str, arities: list[int], beta: float, sigma: float, tau: float,
                         p: np.ndarray, eps: float, max_d: int) -> None:
    noise = HybridNoise(kernel, arities, beta, sigma)  # type: ignore[arg-type]
    bf = brute.BruteForce(kernel, arities, beta, sigma)
    for d in range(max_d + 1):
        for radius in (0.0, eps):
            wc = noise.worst_case(p, d, radius)
            for x, w in zip(p, wc, strict=True):
                exact = bf.worst_case(float(x), d, radius)
                assert w <= exact + SLACK, ("unsound", kernel, arities, beta, d, x, radius, w, exact)
                assert abs(w - exact) <= TOL, (kernel, arities, beta, d, x, radius, w, exact)
        r = noise.certified_radius(p, d, tau)
        for x, rad in zip(p, r, strict=True):
            if rad == 0.0:
                assert bf.knapsack(float(x), d) < Fraction(tau) * (1 + Fraction(1, 10**9)) or x < tau
                continue
            assert np.isfinite(rad)
            assert bf.worst_case(float(x), d, rad) >= tau, ("radius not certified", arities, d, x, rad)
            assert bf.worst_case(float(x), d, rad + 1e-9) < tau, ("radius short by > 1e-9", arities, d, x, rad)


@pytest.mark.parametrize(
    ("kernel", "arities", "beta"),
    [("uniform-other", [2, 5, 3, 12, 5], 0.3), ("absorb", [4, 2, 7], 0.6), ("uniform-other", [2, 3, 9], 0.85)],
)
def test_brute_force_small(kernel: str, arities: list[int], beta: float) -> None:
    """Fast path = min over every subset of <= d fields and every outcome (30 digits), small cases."""
    _check_against_brute(kernel, arities, beta, 0.7, 0.4, np.array([0.62, 0.97, 0.99999]), 0.35, 3)


N_BRUTE = 24  # slow: the whole grid runs in CI's second step


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(N_BRUTE))
def test_brute_force_random_grid(seed: int) -> None:
    """m <= 8 fields of mixed arities, d <= 4, all three kernels, beta across (0, 1) (including the large
    values where no arity order holds): equal to the brute force within 1e-9 and never above it."""
    rng = np.random.default_rng(500 + seed)
    kernel = ("uniform-other", "absorb", "uniform-all")[seed % 3]
    m = int(rng.integers(3, 9))
    arities = [int(v) for v in rng.choice([2, 2, 3, 4, 5, 7, 9, 16, 42], size=m)]
    beta = float(np.round(rng.uniform(0.05, 0.98), 4))
    tau = float(rng.choice([0.5, 0.1, 1e-3]))
    p = np.sort(1.0 - np.exp(rng.uniform(np.log(1e-8), np.log(1.0 - tau), 2)))
    _check_against_brute(kernel, arities, beta, float(rng.uniform(0.3, 1.5)), tau, p,
                         float(rng.uniform(0.05, 1.0)), min(4, m))


def test_adult_arities_frontier_matches_brute_force_at_d1_d2() -> None:
    """The acceptance configuration: Adult's arities, beta = 0.25, sigma = 1."""
    noise = HybridNoise(kernel="uniform-other", vocab_size=[9, 16, 7, 15, 6, 5, 2, 42], beta=0.25, sigma=1.0)
    bf = brute.BruteForce("uniform-other", ADULT, 0.25, 1.0)
    front = noise.frontier(0.999, tau=0.5)
    assert [d for d, _ in front] == [0, 1, 2][: len(front)] and len(front) >= 2
    for d, r in front[1:]:
        assert bf.worst_case(0.999, d, r) >= 0.5
        assert bf.worst_case(0.999, d, r + 1e-9) < 0.5


# -- the pruning (Lemma 2) and "at most d" (Lemma 1) ----------------------------------------------------------


def _apply(kernel_rows: list[list[Fraction]], law: list[Fraction]) -> list[Fraction]:
    return [sum((law[i] * kernel_rows[i][j] for i in range(3)), Fraction(0)) for j in range(3)]


def test_garbling_kernel_of_lemma_2_exists_whenever_claimed() -> None:
    """Where ``garbles`` says yes, the Markov kernel of the proof maps the strong experiment's laws exactly
    onto the weak one's (exact rationals), over many arities and betas of all three kernels."""
    claimed = 0
    for kernel in ("uniform-other", "uniform-all", "absorb"):
        for beta in (0.05, 0.25, 0.5, 0.75, 0.9, 0.97, 1.0):
            for v, w in itertools.permutations([2, 3, 4, 7, 16, 42], 2):
                weak = sorted(exact_position_masses(kernel, v, beta)[:2])
                strong = sorted(exact_position_masses(kernel, w, beta)[:2])
                if not garbles((weak[0], weak[1]), (strong[0], strong[1])):
                    continue
                claimed += 1
                (m2, b2), (m, b) = weak, strong
                if b2 == m2:
                    continue  # uninformative weak experiment: a constant kernel
                delta = (b2 - m2) / (b - m)
                r = 1 - m - b
                if m2 + b2 <= m + b:
                    y = ((m2 + b2) / (m + b) - delta) / 2
                    x, z = y + delta, Fraction(0)
                else:
                    x, y, z = (1 + delta) / 2, (1 - delta) / 2, (m2 + b2 - m - b) / (2 * r)
                rows = [[x, y, 1 - x - y], [y, x, 1 - x - y], [z, z, 1 - 2 * z]]  # from H, L, N
                assert all(0 <= q <= 1 for row in rows for q in row) and all(sum(row) == 1 for row in rows)
                assert _apply(rows, [m, b, r]) == [m2, b2, 1 - m2 - b2]  # clean law
                assert _apply(rows, [b, m, r]) == [b2, m2, 1 - m2 - b2]  # attacked law
    assert claimed > 100


@pytest.mark.parametrize("beta", [0.25, 0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("kernel", ["uniform-other", "uniform-all"])
def test_pruned_search_equals_every_choice(kernel: str, beta: float) -> None:
    """min over the pruned choices = min over every composition of d over the arity classes."""
    arities = [2, 2, 3, 5, 9, 40, 40]
    noise = HybridNoise(kernel, arities, beta, 1.0)  # type: ignore[arg-type]
    fields = noise.field_kernels
    assert fields is not None
    p = np.array([0.6, 0.9, 0.999, 1 - 1e-7])
    for d in range(1, 5):
        assert set(fields.choices(d)) <= set(fields.all_choices(d))
        full = np.min([noise._worst_case(_prepared_choice(fields, c), p.copy(), np.full(4, 0.3))
                       for c in fields.all_choices(d)], axis=0)
        np.testing.assert_array_equal(noise.worst_case(p, d, 0.3), full)


def test_at_most_d_and_the_cap_at_m() -> None:
    """Budgets beyond m are m; frontiers stop at m; p_adv does not increase with d (Lemma 1)."""
    noise = HybridNoise("uniform-other", [3, 7, 2], 0.2, 1.0)
    p = np.linspace(0.9, 1 - 1e-9, 20)
    wc = [noise.worst_case(p, d, 0.2) for d in range(6)]
    for a, b in itertools.pairwise(wc):
        assert (b <= a + 1e-15).all()
    np.testing.assert_array_equal(wc[3], wc[5])
    radii, _ = noise.frontier_radii(p, tau=0.5)
    assert radii.shape == (20, 4)
    assert (noise.certified_budget(p, 0.0, tau=0.01) <= 3).all()
    assert noise.describe()["vocab_size"] == [3, 7, 2]


@pytest.mark.parametrize(
    ("vocab", "needle"),
    [
        ([9, 1, 4], "vocab_size[1]: vocab_size too small for the uniform-other kernel"),
        ([], "vocab_size must list at least one field arity"),
        ([3, 2.5], "vocab_size[1]: vocab_size must be an integer"),
    ],
)
def test_bad_arities_name_the_field(vocab: list[object], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        HybridNoise("uniform-other", vocab, 0.3, 1.0)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_token_kernel_is_refused_for_fields() -> None:
    noise = HybridNoise("absorb", [3, 4], 0.5, 1.0)
    with pytest.raises(ValueError, match="one arity per field"):
        _ = noise.token_kernel
    assert isinstance(noise.field_kernels, FieldKernels) and noise.informative


# -- properties over random configurations (Hypothesis; CI/dev profiles in tests/conftest.py) ------------------

@pytest.mark.slow
@given(
    kernel=st.sampled_from(["uniform-other", "uniform-all", "absorb"]),
    arities=st.lists(st.sampled_from([2, 3, 4, 7, 16, 42]), min_size=2, max_size=6),
    beta=st.floats(0.05, 0.97),
    p=st.floats(0.5, 1 - 1e-9),
    eps=st.floats(0.0, 2.0),
)
def test_worst_case_is_the_minimum_over_every_choice_and_monotone(
    kernel: str, arities: list[int], beta: float, p: float, eps: float
) -> None:
    """The reported worst case is the minimum over every composition (pruning loses nothing), it does not grow
    with d, with eps, nor shrink with p_a (docs/theory.md §4, §9.1)."""
    noise = HybridNoise(kernel, arities, beta, 1.0)  # type: ignore[arg-type]
    fields = noise.field_kernels
    assert fields is not None
    prev = 1.0
    for d in range(min(len(arities), 4) + 1):
        wc = noise.worst_case(p, d, eps)
        every = min(float(noise._worst_case(_prepared_choice(fields, c), np.array([p]), np.array([eps]))[0])
                    for c in fields.all_choices(d)) if not fields.homogeneous else wc
        assert wc == every or abs(wc - every) <= 1e-12
        assert wc <= prev + 1e-12
        prev = wc
        assert noise.worst_case(p, d, eps + 0.1) <= wc + 1e-12
        assert noise.worst_case(min(1.0, p + 1e-3), d, eps) >= wc - 1e-12


def test_certify_config_takes_one_arity_per_field() -> None:
    """``hybridcert certify --jsonl`` rows (theory.batch) accept a list of arities."""
    from hybridcert.theory.batch import certify_config

    out = certify_config({"p_a": 0.9999, "vocab": [2, 5, 9], "beta": 0.3, "sigma": 0.5, "budget": 1, "radius": 0.1})
    noise = HybridNoise("uniform-other", [2, 5, 9], 0.3, 0.5)
    assert out["certified_radius"] == noise.certified_radius(0.9999, 1)
    assert [(f["budget"], f["radius"]) for f in out["frontier"]] == noise.frontier(0.9999)
    for bad in ([2, True], [2, 2.5], []):
        with pytest.raises(ValueError, match="field 'vocab' must be an integer"):
            certify_config({"p_a": 0.9, "vocab": bad, "beta": 0.3, "sigma": 0.5})
