"""The results bundle the reports render: ``results.json`` read through the one reader (``hybridcert.results``).

Nothing in ``hybridcert.reports`` parses results.json itself: :func:`parse_results` / :func:`load_results` are
``hybridcert.results.reader`` (strict JSON types, bounded input, the threshold derived from tau and the side,
counts within [0, n], ``p_a_lower`` at most the confidence bound of its counts, no frontier above what the theory
engine recomputes; docs/results-format.md, docs/theory.md §4-§6) plus what a report needs on top: at least one
input (every rate has a denominator). :class:`Bundle` is ``hybridcert.results.reader.ResultsDocument``: the
model, the raw object, the exact bytes and the RFC 8785 canonical bytes (whose sha256 gives the report id).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from hybridcert.results.canonical import canonical_bytes, loads_strict, read_bounded
from hybridcert.results.reader import ResultsDocument, ResultsError, read_results
from hybridcert.results.reader import parse_results as _parse_results
from hybridcert.results.schema import SCHEMA, AuditResults, ChangeHistory, Criterion, Delta, parse_utc

__all__ = [
    "RESULTS_SCHEMA_V1", "Bundle", "ChangeHistory", "Criterion", "Delta", "ResultsError", "ResultsV1",
    "canonical_bytes", "load_criteria", "load_results", "parse_results", "parse_utc",
]

RESULTS_SCHEMA_V1 = SCHEMA
Bundle = ResultsDocument
ResultsV1 = AuditResults


def _needs_inputs(doc: ResultsDocument) -> ResultsDocument:
    if not doc.results.inputs:
        raise ResultsError(f"{doc.source}: inputs: a report needs at least one input")
    return doc


def parse_results(data: bytes, source: str = "results.json") -> Bundle:
    """Validate the bytes of a results file for a report (module docstring)."""
    return _needs_inputs(_parse_results(data, source))


def load_results(path: Path) -> Bundle:
    """Read and validate ``results.json`` (a file, or a folder holding one)."""
    return _needs_inputs(read_results(path))


def load_criteria(path: Path) -> list[Criterion]:
    """Read acceptance criteria from a JSON file: a list of criteria, or {"acceptance": [...]} (strict types)."""
    path = Path(path)
    try:
        raw = loads_strict(read_bounded(path, 16 * 2**20), str(path))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    if isinstance(raw, dict):
        raw = raw.get("acceptance")
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of criteria or an object with an 'acceptance' list")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(Criterion.model_validate(item, strict=True))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{path}: criterion {i}: {loc}: {first['msg']}") from None
    return out
