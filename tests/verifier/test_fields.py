"""The verifier on per-field arities (docs/theory.md §9): the high-precision check enumerates every subset of
fields and every raw outcome, the interval proof must hold for every choice of fields; both pass on the theory
and catch a theory that searches the wrong choice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hybridcert.theory import HybridNoise
from hybridcert.theory.certificate import _prepared_choice
from hybridcert.theory.fields import FieldKernels
from hybridcert.verifier.highprec import FieldSubsetSolver, check_highprec, random_field_cases
from hybridcert.verifier.impl import Implementation
from hybridcert.verifier.interval import prove_budget, prove_frontier, prove_worst_case
from hybridcert.verifier.reference import NoiseParams, choice_atoms, field_choices, group_atoms, raw_field_outcomes

ADULT = (9, 16, 7, 15, 6, 5, 2, 42)


class LeastInformativeFieldsNoise(HybridNoise):
    """Broken: assumes the attacker changes the least informative fields (the last classes) only."""

    def _choices(self, budget: int) -> list[Any]:
        fields = self.field_kernels
        if fields is None:
            return super()._choices(budget)
        assert isinstance(fields, FieldKernels)
        left = min(budget, fields.size)
        counts = []
        for _, n in reversed(fields.classes):
            k = min(n, left)
            counts.append(k)
            left -= k
        return [_prepared_choice(fields, tuple(reversed(counts)))]


BROKEN = Implementation(name="least-informative-fields", noise=LeastInformativeFieldsNoise)


def test_choice_atoms_equal_raw_outcomes_grouped() -> None:
    """The table-based atoms of a choice equal the raw category tuples grouped by exact ratio."""
    for kernel in ("uniform-other", "uniform-all", "absorb"):
        parts = ((2, 1), (3, 2), (4, 1))
        raw = group_atoms(raw_field_outcomes(kernel, (2, 3, 3, 4), 0.35), 4)
        assert choice_atoms(kernel, 0.35, parts) == raw
    assert len(field_choices(ADULT, 3)) == 56 and len(field_choices((3, 3, 5), 2)) == 2


def test_highprec_passes_on_theory_for_fields() -> None:
    from hybridcert.verifier.highprec import Case

    noise = NoiseParams("uniform-other", (2, 3), 0.4, 0.7)
    result = check_highprec([Case(noise, 0.995, 1, 0.4, 0.5)])  # radii: the slow test below
    assert result.passed, result.failures


@pytest.mark.slow
def test_highprec_passes_on_theory_for_random_fields() -> None:
    from hybridcert.verifier.highprec import Case

    result = check_highprec(random_field_cases(np.random.default_rng(3), 2, 2)
                            + [Case(NoiseParams("uniform-other", (2, 3), 0.4, 0.7), 0.995, 1, None, 0.1)])
    assert result.passed, result.failures


def test_highprec_catches_the_wrong_choice() -> None:
    noise = NoiseParams("uniform-other", (2, 4), 0.3, 0.8)
    from hybridcert.verifier.highprec import Case

    result = check_highprec([Case(noise, 0.99, 1, 0.3, 0.5)], BROKEN)
    assert not result.passed and "ABOVE the exact" in " ".join(result.failures)
    solver = FieldSubsetSolver(noise, 1)
    assert len(solver.solvers) == 3  # the empty set and each of the two fields


@pytest.mark.slow
def test_adult_frontier_is_proved_for_every_choice_and_a_nudge_is_not() -> None:
    noise = HybridNoise("uniform-other", list(ADULT), 0.25, 1.0)
    params = NoiseParams("uniform-other", ADULT, 0.25, 1.0)
    front = noise.frontier(0.99999, tau=0.5)
    proofs = prove_frontier(params, 0.99999, 0.5, front)
    assert len(proofs) == len(front) >= 3 and all(p.proved for p in proofs)
    d, r = front[2]
    bad = prove_worst_case(params, 0.99999, d, r + 1e-6, 0.5)
    assert not bad.proved and "fields changed" in bad.reason
    budget = noise.certified_budget(0.99999, radius=0.5 * r, tau=0.5)
    assert prove_budget(params, 0.99999, 0.5 * r, budget, 0.5).proved
    assert not prove_budget(params, 0.99999, 0.5 * r, budget + 1, 0.5).proved


def test_small_tabular_frontier_is_proved_for_every_choice() -> None:
    for kernel in ("uniform-other", "absorb"):
        noise = HybridNoise(kernel, [3, 5, 2], 0.3, 0.6)  # type: ignore[arg-type]
        params = NoiseParams(kernel, (3, 5, 2), 0.3, 0.6)
        front = noise.frontier(0.9999, tau=0.2)
        assert len(front) >= 2
        assert all(p.proved for p in prove_frontier(params, 0.9999, 0.2, front))
        d, r = front[-1]
        assert not prove_worst_case(params, 0.9999, d, r * (1 + 1e-6) + 1e-9, 0.2).proved


def test_interval_proof_catches_the_wrong_choice() -> None:
    broken = LeastInformativeFieldsNoise("uniform-other", list(ADULT), 0.25, 1.0)
    params = NoiseParams("uniform-other", ADULT, 0.25, 1.0)
    proofs = prove_frontier(params, 0.99999, 0.5, broken.frontier(0.99999, tau=0.5))
    assert not all(p.proved for p in proofs)


@pytest.mark.parametrize("bad", [(), (3, 1), (2, True)])
def test_bad_field_arities_are_refused(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="vocab_size must list integers >= 2"):
        NoiseParams("uniform-other", bad, 0.3, 1.0)


def test_verifier_prunes_only_with_its_own_exact_kernels() -> None:
    """The verifier's pruned choices are a subset of every choice, each kernel it relies on maps both laws
    exactly, and on Adult's arities the pruned search is much smaller (one choice per d at beta = 0.25)."""
    from hybridcert.verifier.reference import garbling_kernel, position_masses

    assert [len(field_choices(ADULT, d, "uniform-other", 0.25)) for d in range(9)] == [1] * 9
    for beta in (0.25, 0.7, 0.95):
        for d in range(9):
            assert set(field_choices(ADULT, d, "uniform-other", beta)) <= set(field_choices(ADULT, d))
    found = 0
    for kernel in ("uniform-other", "uniform-all", "absorb"):
        for beta in (0.3, 0.7, 0.95):
            for v in (2, 3, 7, 42):
                for w in (2, 3, 7, 42):
                    k = garbling_kernel(position_masses(kernel, v, beta), position_masses(kernel, w, beta))
                    if k is not None:
                        found += 1
                        assert all(sum(row) == 1 and min(row) >= 0 for row in k)
    assert found > 40


def test_pruned_and_full_interval_proofs_agree() -> None:
    """A frontier proven with the pruned choices is also proven when every choice is searched."""
    from hybridcert.verifier import interval

    noise = HybridNoise("uniform-other", [2, 3, 7], 0.7, 0.6)
    params = NoiseParams("uniform-other", (2, 3, 7), 0.7, 0.6)
    front = noise.frontier(0.999, tau=0.5)
    assert all(p.proved for p in prove_frontier(params, 0.999, 0.5, front))
    for d, r in front:
        for parts in field_choices((2, 3, 7), d):
            atoms = choice_atoms("uniform-other", 0.7, parts)
            assert interval._prove_atoms(atoms, params, 0.999, d, r, 0.5, interval.DPS).proved
