"""Compatibility names for the audit side: the results model lives in ``hybridcert.results`` (one schema, one
reader, one writer; docs/results-format.md). Import from there in new code."""

from __future__ import annotations

from pathlib import Path

from hybridcert.results.canonical import canonical_dumps, write_json_atomic
from hybridcert.results.reader import ResultsError, read_results
from hybridcert.results.schema import (
    SCHEMA,
    TIMING_FIELDS_INPUT,
    TIMING_FIELDS_TOP,
    Aggregates,
    AuditConfig,
    AuditResults,
    CertifiedRate,
    Counts,
    DatasetInfo,
    Decision,
    DenoiserInfo,
    FrontierPoint,
    InputResult,
    ModelInfo,
    NoiseConfig,
    Side,
    ThreatModelConfig,
    ToolInfo,
    deterministic_view,
)
from hybridcert.results.stats import aggregate

__all__ = [
    "SCHEMA", "TIMING_FIELDS_INPUT", "TIMING_FIELDS_TOP", "Aggregates", "AuditConfig", "AuditResults",
    "CertifiedRate", "Counts", "DatasetInfo", "Decision", "DenoiserInfo", "FrontierPoint", "InputResult", "ModelInfo",
    "NoiseConfig", "ResultsError", "Side", "ThreatModelConfig", "ToolInfo", "aggregate", "canonical_dumps",
    "deterministic_view", "load_results", "read_results", "write_json_atomic",
]


def load_results(path: Path | str) -> AuditResults:
    """Read and check a results.json (``hybridcert.results.reader.read_results``); ValueError naming the file."""
    return read_results(path).results
