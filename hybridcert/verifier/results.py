"""``hybridcert verify --results FILE``: prove every certificate in an audit's results.json (docs/results-format.md).

The file is read with the one results reader (``hybridcert.results.reader``, strict types): the threshold of
every input must be the one ``config.tau`` and its side imply, counts lie in [0, n], ``p_a_lower`` is at most the
confidence bound of its counts under the file's own rule, ids are unique and budgets at most
``hybridcert.theory.MAX_BUDGET`` (a malformed file exits 2 with one line). The engine cross-check of the reader is
turned off here: each frontier entry (d, r) is proven with ``interval.prove_frontier`` instead, p_adv(d', r) >=
threshold for every d' <= d, in interval arithmetic that does not use ``hybridcert.theory`` (docs/theory.md §4,
§6). An infinite radius (``radius`` null, ``radius_infinite`` true) is provable only when p_a_lower = 1 exactly.
In per-budget mode entry d is proven from pass d's bound ``p_a_lower_per_budget[d]``.

Distinct rows are proven once: inputs with the same (p_a_lower, threshold, frontier) share one proof, so a
file of 10^5 inputs with n = 1000 costs at most a few thousand proofs (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridcert.results import reader
from hybridcert.results.reader import read_results
from hybridcert.results.schema import AuditResults, FrontierPoint, InputResult
from hybridcert.verifier.interval import Proof, prove_frontier
from hybridcert.verifier.reference import NoiseParams

SCHEMA = "hybridcert/results/v1"
ResultsFile = AuditResults


def parse_results(raw: Any, source: str = "results") -> AuditResults:
    """Check a decoded results object (or its bytes) with the one reader, as :func:`load_results` does."""
    data = raw if isinstance(raw, bytes) else json.dumps(raw, allow_nan=False).encode("utf-8")
    return reader.parse_results(data, source, check_frontiers=False).results


def load_results(path: Path) -> AuditResults:
    """Read and check a results.json file with the one reader (ValueError, one line, on any problem)."""
    return read_results(path, check_frontiers=False).results


@dataclass
class CertificateProof:
    index: int
    input_id: str
    proof: Proof

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.input_id, **self.proof.to_dict()}


@dataclass
class ResultsVerification:
    """Every certificate of a results file with its proof; ``passed`` only if all are proven."""

    source: str
    noise: NoiseParams
    certificates: list[CertificateProof] = field(default_factory=list)

    @property
    def failed(self) -> list[CertificateProof]:
        return [c for c in self.certificates if not c.proof.proved]

    @property
    def passed(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "hybridcert/verify-results/v1",
            "source": self.source,
            "noise": {"kernel": self.noise.kernel, "vocab_size": self.noise.vocab_size, "beta": self.noise.beta,
                      "sigma": self.noise.sigma},
            "passed": self.passed,
            "n_certificates": len(self.certificates),
            "n_failed": len(self.failed),
            "certificates": [c.to_dict() for c in self.certificates],
        }


#: One proof job: (p_a_lower, threshold, ((budget, radius), ...)) -> the proofs of those entries.
ProofKey = tuple[float, float, tuple[tuple[int, float], ...]]


def _entries(frontier: list[FrontierPoint]) -> tuple[tuple[int, float], ...]:
    return tuple((e.budget, math.inf if e.radius_infinite else float(e.radius or 0.0)) for e in frontier)


def proof_jobs(record: InputResult) -> list[tuple[str, ProofKey]]:
    """The proofs one input needs, each with the label its certificates are listed under: one job for its
    frontier (one-pass) or one per entry (per-budget), plus one per unimodal baseline. Image-only baseline
    entries are (0, r), where the token kernel plays no part (Cohen); text-only entries are (d, 0), where sigma
    plays no part (the knapsack): the same proof applies (docs/theory.md §4)."""
    entries = _entries(record.frontier)
    jobs: list[tuple[str, ProofKey]]
    if record.p_a_lower_per_budget is None:
        jobs = [(record.id, (record.p_a_lower, record.threshold, entries))] if entries else []
    else:
        jobs = [(record.id, (record.p_a_lower_per_budget[d], record.threshold, ((d, r),))) for d, r in entries]
    for name, base in sorted((record.baselines or {}).items()):
        if base.frontier:
            jobs.append((f"{record.id} ({name})", (base.p_a_lower, base.threshold, _entries(base.frontier))))
    return jobs


def verify_results(results: AuditResults, source: str = "results",
                   progress: Callable[[int, int], None] | None = None) -> ResultsVerification:
    """Prove every frontier entry of every input (docs/theory.md §4, §6); nothing here trusts the file's numbers.

    Distinct jobs are proven once and shared by every input that needs them; ``progress(done, total)`` is called
    after each distinct job."""
    n = results.config.noise
    noise = NoiseParams(n.kernel, tuple(n.vocab_size) if isinstance(n.vocab_size, list) else n.vocab_size,
                        n.beta, n.sigma)
    out = ResultsVerification(source, noise)
    jobs = [proof_jobs(record) for record in results.inputs]
    distinct = list(dict.fromkeys(key for keys in jobs for _, key in keys))
    proven: dict[ProofKey, list[Proof]] = {}
    for done, key in enumerate(distinct, start=1):
        p_a, tau, entries = key
        proven[key] = prove_frontier(noise, p_a, tau, list(entries))
        if progress:
            progress(done, len(distinct))
    for index, keys in enumerate(jobs):
        for label, key in keys:
            for proof in proven[key]:
                out.certificates.append(CertificateProof(index, label, proof))
    return out
