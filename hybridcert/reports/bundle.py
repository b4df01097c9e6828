"""The results bundle: a versioned pydantic schema for ``results.json`` and its canonical bytes (RFC 8785).

This module is the ONE place where the report side states what it reads from ``results.json`` (contract:
docs/results-format.md, schema ``hybridcert/results/v1``). When the audit runner's own models
(``hybridcert.audits.results``) are merged, point ``SCHEMAS`` at them or subclass them here; nothing else in
``hybridcert.reports`` parses results.json.

Guarantees of :func:`load_results`: the file is valid JSON with no NaN/infinity and no integer above 2^53
(so RFC 8785 canonical bytes exist), every field the report renders is present and in range, and each
input is internally consistent (decision vs. frontier, ``correct`` vs. label, frontier budgets contiguous
from 0 with non-increasing radii, THEORY 4; ``p_a_lower`` not above the confidence bound of its own counts,
THEORY 5; no frontier claiming more than ``HybridNoise.frontier`` recomputes from ``p_a_lower``, THEORY 6).
Unknown fields are kept (``extra="allow"``) and stay in the canonical bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import rfc8785
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

RESULTS_SCHEMA_V1 = "hybridcert/results/v1"
#: Largest integer allowed anywhere in results.json (RFC 8785 / I-JSON: exact in a float64).
MAX_SAFE_INT = 2**53


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Tool(_Model):
    name: str
    version: str
    revision: str | None = None


class Noise(_Model):
    kernel: Literal["uniform-other", "uniform-all", "absorb"]
    vocab_size: int | list[int]  # a list: one arity per categorical field (tabular, docs/theory.md §9)
    beta: float = Field(gt=0, le=1)
    sigma: float = Field(gt=0)

    @field_validator("vocab_size")
    @classmethod
    def _arities(cls, v: int | list[int]) -> int | list[int]:
        values = v if isinstance(v, list) else [v]
        if not values or any(x < 2 for x in values):
            raise ValueError(f"vocab_size must be >= 2 (each field's arity for a list), got {v!r}")
        return v


class ThreatModelConfig(_Model):
    kind: Literal["l0", "suffix-append", "suffix-inplace", "fields"]  # fields: tabular, any d categorical fields
    span: int | None = Field(default=None, ge=1)


class Config(_Model):
    noise: Noise
    threat_model: ThreatModelConfig
    pixel_space: str | None = None
    clamp: bool | None = None
    tau: float = Field(gt=0, lt=1)
    alpha: float = Field(gt=0, lt=1)
    n0: int = Field(ge=0)
    n: int = Field(ge=1)
    seed: str
    sampling: str
    max_budget: int | None = Field(default=None, ge=0)
    batch_size: int | None = Field(default=None, ge=1)
    confidence_bound: str
    multiple_testing: str

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_string(cls, v: Any) -> Any:
        # 64-bit seeds travel as strings; accept a (safe) integer too and keep it as its decimal string.
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v


def _check_sha256(v: str) -> str:
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ValueError(f"expected 64 lower-case hex digits (sha256), got {v!r}")
    return v


Sha256 = Annotated[str, AfterValidator(_check_sha256)]


class ModelInfo(_Model):
    name: str
    version: str
    sha256: Sha256
    intended_purpose: str | None = None


class Dataset(_Model):
    name: str
    version: str
    sha256: Sha256
    n_inputs: int = Field(ge=1)
    selection: str | None = None
    preprocessing: str | None = None
    out_of_scope: str | None = None


class Counts(_Model):
    n0: int = Field(ge=0)
    n: int = Field(ge=1)
    target: int = Field(ge=0)

    @model_validator(mode="after")
    def _target_le_n(self) -> Counts:
        if self.target > self.n:
            raise ValueError(f"counts.target ({self.target}) exceeds counts.n ({self.n})")
        return self


class FrontierPoint(_Model):
    budget: int = Field(ge=0)
    radius: float | None = Field(ge=0)
    radius_infinite: bool = False

    @model_validator(mode="after")
    def _infinite_flag(self) -> FrontierPoint:
        if (self.radius is None) != self.radius_infinite:
            raise ValueError("radius must be null exactly when radius_infinite is true")
        return self

    @property
    def value(self) -> float:
        """The radius as a float (+inf when flagged infinite)."""
        return math.inf if self.radius is None else self.radius


class InputRecord(_Model):
    id: str = Field(min_length=1)
    label: int | None = None
    group: str | None = None
    counts: Counts
    target_class: int
    side: Literal["flag", "no-flag"]
    threshold: float = Field(gt=0, le=1)
    p_a_lower: float = Field(ge=0, le=1)
    decision: Literal["flag", "no-flag", "abstain"]
    correct: bool
    frontier: list[FrontierPoint]
    seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> InputRecord:
        if (self.decision == "abstain") != (not self.frontier):
            raise ValueError("decision must be 'abstain' exactly when the frontier is empty (THEORY 4)")
        if self.decision != "abstain" and self.decision != self.side:
            raise ValueError(f"decision {self.decision!r} differs from the certified side {self.side!r}")
        expected = self.label is not None and (
            (self.decision == "flag" and self.label == 1) or (self.decision == "no-flag" and self.label == 0)
        )
        if self.correct != expected:
            raise ValueError(f"correct={self.correct} but decision={self.decision!r} and label={self.label!r}")
        for i, point in enumerate(self.frontier):
            if point.budget != i:
                raise ValueError(f"frontier budgets must be 0, 1, 2, ... without gaps, got {point.budget} at {i}")
            if i and point.value > self.frontier[i - 1].value:
                raise ValueError("frontier radii must be non-increasing in the budget (THEORY 4)")
        return self

    def radius_at(self, budget: int) -> float:
        """r*(budget) if certified at (budget, 0), else -1 (so ``radius_at(d) >= eps`` is the certificate test).

        Certified at (d, eps) needs a correct, non-abstaining decision (docs/results-format.md).
        """
        if not self.correct or self.decision == "abstain" or budget >= len(self.frontier):
            return -1.0
        return self.frontier[budget].value


class Aggregates(_Model):
    n_inputs: int = Field(ge=1)
    clean_rate: float | None = Field(default=None, ge=0, le=1)
    abstain: int | None = Field(default=None, ge=0)


class Environment(_Model):
    python: str
    platform: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    device: str | None = None
    cuda: str | None = None


class Criterion(_Model):
    """An acceptance criterion (REPORT.md 6): certified rate at (budget, radius) >= min_certified_rate.

    ``statistic`` "observed" compares the observed rate, "ci_lower" the lower end of its 95% interval.
    """

    id: str | None = None
    budget: int = Field(ge=0)
    radius: float = Field(ge=0)
    min_certified_rate: float = Field(ge=0, le=1)
    statistic: Literal["observed", "ci_lower"] = "observed"


class Delta(_Model):
    budget: int
    radius: float
    before: float | None = None
    after: float | None = None
    delta: float | None = None


class ChangeHistory(_Model):
    """Filled by the regression gate (``hybridcert compare``), REPORT.md 12."""

    previous_report_id: str | None = None
    deltas: list[Delta] = Field(default_factory=list)
    verdict: str | None = None


class ResultsV1(_Model):
    """``results.json`` as the reports read it (schema ``hybridcert/results/v1``)."""

    schema_: Literal["hybridcert/results/v1"] = Field(alias="schema")
    tool: Tool
    created: str
    config: Config
    model: ModelInfo
    dataset: Dataset
    inputs: list[InputRecord] = Field(min_length=1)
    aggregates: Aggregates
    environment: Environment
    acceptance: list[Criterion] | None = None
    change_history: ChangeHistory | None = None
    command: str | None = None

    @field_validator("created")
    @classmethod
    def _utc(cls, v: str) -> str:
        parse_utc(v)
        return v

    @model_validator(mode="after")
    def _whole(self) -> ResultsV1:
        if self.aggregates.n_inputs != len(self.inputs):
            raise ValueError(f"aggregates.n_inputs={self.aggregates.n_inputs} but there are {len(self.inputs)} inputs")
        ids = [r.id for r in self.inputs]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"input id {dup!r} appears more than once")
        mb = self.config.max_budget
        for r in self.inputs:
            if mb is not None and len(r.frontier) > mb + 1:
                raise ValueError(f"input {r.id!r}: frontier goes beyond config.max_budget={mb}")
        return self

    @property
    def created_at(self) -> datetime:
        return parse_utc(self.created)

    def max_budget(self) -> int:
        """Largest budget the report tabulates: config.max_budget, else the longest frontier's last budget."""
        if self.config.max_budget is not None:
            return self.config.max_budget
        return max(max(len(r.frontier) for r in self.inputs) - 1, 0)


#: schema id -> model. Point this at the runner's models when they land.
SCHEMAS: dict[str, type[ResultsV1]] = {RESULTS_SCHEMA_V1: ResultsV1}


class Bundle(BaseModel):
    """A validated results file: the parsed model, the raw JSON object, its exact bytes and canonical bytes."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    results: ResultsV1
    raw: dict[str, Any]
    file_bytes: bytes
    canonical: bytes

    @property
    def file_sha256(self) -> str:
        return hashlib.sha256(self.file_bytes).hexdigest()

    @property
    def canonical_sha256(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()

    @property
    def report_id(self) -> str:
        """Deterministic report id: derived from the canonical results (same results -> same id)."""
        return "HCR-" + self.canonical_sha256[:16].upper()


def parse_utc(value: str) -> datetime:
    """Parse an ISO 8601 UTC timestamp ending in 'Z' (e.g. 2026-11-25T16:00:00Z)."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError(f"created must be an ISO 8601 UTC time ending in 'Z', got {value!r}")
    try:
        dt = datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError as exc:
        raise ValueError(f"created is not an ISO 8601 time: {value!r}") from exc
    return dt.astimezone(UTC)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in results.json (use null plus a flag)")


def _check_numbers(obj: Any, where: str = "$") -> None:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, int):
        if abs(obj) > MAX_SAFE_INT:
            raise ValueError(f"{where}: integer {obj} is above 2^53 (write it as a string)")
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{where}: {obj} is not allowed (use null plus a flag)")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_numbers(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_numbers(v, f"{where}[{i}]")


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes; ValueError on NaN, infinity or integers above 2^53."""
    _check_numbers(obj)
    try:
        return bytes(rfc8785.dumps(obj))
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise ValueError(f"cannot canonicalise: {exc}") from exc


def parse_results(data: bytes, source: str = "results.json") -> Bundle:
    """Validate the bytes of a results file (see the module docstring for what is guaranteed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a JSON object")
    schema = raw.get("schema")
    model = SCHEMAS.get(schema) if isinstance(schema, str) else None
    if model is None:
        raise ValueError(f"{source}: unsupported schema {schema!r} (supported: {', '.join(SCHEMAS)})")
    try:
        canonical = canonical_bytes(raw)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    try:
        results = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{source}: {loc or 'top level'}: {first['msg']}") from None
    _check_bounds(results, source)
    _check_frontiers(results, source)
    return Bundle(results=results, raw=raw, file_bytes=data, canonical=canonical)


def load_results(path: Path) -> Bundle:
    """Read and validate ``results.json`` (a file, or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    return parse_results(path.read_bytes(), str(path))


def _check_bounds(results: ResultsV1, source: str) -> None:
    """Soundness cross-check (THEORY 5): p_a_lower may not exceed the lower confidence bound of its own counts,
    recomputed with the method the file names: Clopper-Pearson (fixed n) or the Beta-mixture confidence sequence
    (sequential audits, ``config.sequential.prior``). Other methods are not cross-checked.
    """
    import numpy as np

    from hybridcert.theory import clopper_pearson_lower
    from hybridcert.theory.sequential import DEFAULT_PRIOR, METHOD, cs_lower

    cfg = results.config
    target = np.array([r.counts.target for r in results.inputs], dtype=float)
    n = np.array([r.counts.n for r in results.inputs], dtype=float)
    if cfg.confidence_bound == "clopper-pearson":
        name, bound = "Clopper-Pearson", clopper_pearson_lower(target, n, cfg.alpha)
    elif cfg.confidence_bound == METHOD:
        seq = (cfg.model_extra or {}).get("sequential")
        prior_raw = seq.get("prior") if isinstance(seq, dict) else None
        try:
            prior = (float(prior_raw["a"]), float(prior_raw["b"])) if prior_raw is not None else DEFAULT_PRIOR
            name, bound = "confidence-sequence", cs_lower(target, n, cfg.alpha, prior)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: config.sequential.prior must be {{'a': float, 'b': float}} ({exc})") from None
    else:
        return
    for rec, b in zip(results.inputs, bound, strict=True):
        if rec.p_a_lower > float(b) * (1 + 1e-9) + 1e-15:
            raise ValueError(
                f"{source}: input {rec.id!r}: p_a_lower={rec.p_a_lower} exceeds the {name} bound "
                f"{float(b):.6g} of its counts ({rec.counts.target}/{rec.counts.n} at alpha={cfg.alpha})"
            )


#: Relative slack when comparing a stored radius with the recomputed one (float64 noise between engine versions).
FRONTIER_RTOL = 1e-9


def _check_frontiers(results: ResultsV1, source: str) -> None:
    """Soundness cross-check (THEORY 4, 6): no stored frontier may claim more than ``HybridNoise.frontier``
    gives for the stored ``p_a_lower`` and threshold: not more budgets, and no radius above the recomputed one
    (beyond FRONTIER_RTOL). The report signs what results.json says only if the theory engine agrees.
    """
    import numpy as np

    from hybridcert.theory import HybridNoise

    nz = results.config.noise
    noise = HybridNoise(kernel=nz.kernel, vocab_size=nz.vocab_size, beta=nz.beta, sigma=nz.sigma)
    recs = [r for r in results.inputs if r.frontier]
    top = max((len(r.frontier) - 1 for r in recs), default=0)
    for t in sorted({r.threshold for r in recs}):
        group = [r for r in recs if r.threshold == t]
        p = np.array([r.p_a_lower for r in group])
        radii, mask = noise.frontier_radii(p, tau=t, max_budget=top)
        for i, rec in enumerate(group):
            for point in rec.frontier:
                d = point.budget
                if not mask[i, d]:
                    raise ValueError(f"{source}: input {rec.id!r}: budget {d} is in the frontier but p_a_lower="
                                     f"{rec.p_a_lower} does not certify it (THEORY 4)")
                exact = float(radii[i, d])
                if point.value > exact * (1 + FRONTIER_RTOL) + 1e-12:
                    raise ValueError(f"{source}: input {rec.id!r}: radius {point.value} at budget {d} exceeds "
                                     f"the certified radius {exact!r} recomputed from p_a_lower (THEORY 4)")


def load_criteria(path: Path) -> list[Criterion]:
    """Read acceptance criteria from a JSON file: a list of criteria, or {"acceptance": [...]}."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(raw, dict):
        raw = raw.get("acceptance")
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of criteria or an object with an 'acceptance' list")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(Criterion.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{path}: criterion {i}: {loc}: {first['msg']}") from None
    return out
