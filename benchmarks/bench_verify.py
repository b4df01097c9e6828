"""How long the verifier takes: interval proofs of a long frontier (float64 bracket + Newton witness against a
plain 45-digit bisection witness, measured in the same run), and each check of ``verify --quick``.

    python benchmarks/bench_verify.py
"""

from __future__ import annotations

import time
from fractions import Fraction

import mpmath
from mpmath import mp

from hybridcert.theory import HybridNoise
from hybridcert.verifier import interval
from hybridcert.verifier.reference import ExactAtoms, NoiseParams, exact_atoms
from hybridcert.verifier.runner import Grid, run_verification


def bisection_witness(atoms: ExactAtoms, j: int, p_a: Fraction, e: mpmath.mpf) -> mpmath.mpf:
    """The baseline: the level by bisection alone at 45 digits."""
    with mp.workdps(45):
        levels = [mp.log(mp.mpf(r.numerator) / r.denominator) for r in atoms.ratio]
        clean = [mp.mpf(c.numerator) / c.denominator for c in atoms.clean]
        c0 = mp.mpf(atoms.c0.numerator) / atoms.c0.denominator
        target = mp.mpf(p_a.numerator) / p_a.denominator
        offs = [(levels[j] - lk) / e + e / 2 for lk in levels]

        def f(t: mpmath.mpf) -> mpmath.mpf:
            return c0 + mp.fsum(c * mp.ncdf(t + o) for c, o in zip(clean, offs, strict=True)) - target

        return interval.root_of_increasing(f, mp.mpf(10) ** -40)


def time_frontier(max_budget: int) -> tuple[float, int, bool]:
    params = NoiseParams("uniform-other", 30000, 0.99, 1.0)
    noise = HybridNoise(params.kernel, params.vocab_size, params.beta, params.sigma)
    frontier = noise.frontier(0.999999, tau=0.5, max_budget=max_budget)
    for d, _ in frontier:
        exact_atoms(params.kernel, params.vocab_size, params.beta, d)  # warm the exact-atom cache
    start = time.perf_counter()
    proofs = interval.prove_frontier(params, 0.999999, 0.5, frontier)
    return time.perf_counter() - start, len(proofs), all(p.proved for p in proofs)


def main() -> None:
    for max_budget in (8, 32):
        fast, n, ok_fast = time_frontier(max_budget)
        original = interval._witness
        interval._witness = bisection_witness  # type: ignore[assignment]
        try:
            slow, _, ok_slow = time_frontier(max_budget)
        finally:
            interval._witness = original
        print(f"interval proofs, frontier d <= {max_budget} ({n} entries, V=30000): Newton witness {fast:.2f} s, "
              f"bisection witness {slow:.2f} s, ratio {slow / fast:.1f}x (all proved: {ok_fast and ok_slow})")
    report = run_verification(Grid.quick())
    for check in report.checks:
        print(f"verify --quick {check.name:<10} {check.seconds:6.1f} s  {check.cases:5d} cases  {check.verdict}")
    print(f"verify --quick total {report.seconds:.1f} s: {'PASS' if report.passed else 'FAIL'}")


if __name__ == "__main__":
    main()
