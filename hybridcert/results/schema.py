"""``results.json`` as pydantic models (schema ``hybridcert/results/v1``, docs/results-format.md).

The ONE declaration of the results file: the audit runner builds these models, and every reader (``verify
--results``, ``report``, ``verify-report``, ``compare``) validates files against them with
``hybridcert.results.reader`` (strict types: JSON ``true`` is not a number, ``"0.9"`` is not a float).

Field-level checks here are the ones that need no other field; the cross-field rules of one input (decision
vs. frontier, ``correct`` vs. label, frontier budgets 0, 1, 2, ... with non-increasing radii, counts within
[0, n]) are model validators, so a model that exists is consistent. Rules that need the whole file or the
theory (threshold from tau and side, p_a_lower against the counts, the frontier against the engine) live in
the reader (docs/theory.md §4, §5, §6).

Everything except the timing and execution fields (``created``, per-input ``seconds``, ``environment``) is a
deterministic function of the configuration, the filter, the dataset and the seed: :func:`deterministic_view`
drops exactly those fields.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from hybridcert.theory import MAX_BUDGET, MAX_SIGMA

SCHEMA: Final = "hybridcert/results/v1"
TIMING_FIELDS_TOP = ("created", "environment", "command")  # command: names the folders it ran in
TIMING_FIELDS_INPUT = ("seconds",)

Side = Literal["flag", "no-flag"]
Decision = Literal["flag", "no-flag", "abstain"]
KERNEL_NAMES = ("uniform-other", "uniform-all", "absorb")
ThreatKind = Literal["l0", "suffix-append", "suffix-inplace", "fields"]  # fields: tabular, docs/theory.md §9

Budget = Annotated[int, Field(ge=0, le=MAX_BUDGET)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


def _check_sha256(v: str) -> str:
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ValueError(f"expected 64 lower-case hex digits (sha256), got {v[:80]!r}")
    return v


Sha256 = Annotated[str, AfterValidator(_check_sha256)]


class _Model(BaseModel):
    """Unknown fields are kept (and stay in the canonical bytes). Optional fields listed in ``_omit_none`` are
    not written when None, so that fields only some writers fill do not change the others' files."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    _omit_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _drop_unset_optionals(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in self._omit_none:
                if key in data and data[key] is None:
                    del data[key]
        return data


class NoiseConfig(_Model):
    kernel: str  # one of KERNEL_NAMES (checked; typed str so that callers holding a str need no cast)
    vocab_size: int | list[int]  # a list: one arity per categorical field (tabular, docs/theory.md §9)
    beta: float = Field(gt=0.0, le=1.0, allow_inf_nan=False)
    sigma: float = Field(gt=0.0, le=MAX_SIGMA, allow_inf_nan=False)
    mask_id: int | None = None
    alphabet_sha256: str | None = None

    @field_validator("kernel")
    @classmethod
    def _known_kernel(cls, v: str) -> str:
        if v not in KERNEL_NAMES:
            raise ValueError(f"unknown kernel {v[:40]!r}; expected one of {', '.join(KERNEL_NAMES)}")
        return v

    @field_validator("vocab_size")
    @classmethod
    def _arities(cls, v: int | list[int]) -> int | list[int]:
        values = v if isinstance(v, list) else [v]
        if not values or len(values) > 100_000 or any(x < 2 for x in values):
            raise ValueError(f"vocab_size must be >= 2 (each field's arity for a list), got {str(v)[:80]}")
        return v


class ThreatModelConfig(_Model):
    kind: ThreatKind
    span: int | None = Field(default=None, ge=1)
    pad_id: int | None = None


class AuditConfig(_Model):
    """The resolved parameters a certificate is meaningless without (docs/theory.md §6), plus the sampling plan."""

    noise: NoiseConfig
    threat_model: ThreatModelConfig
    pixel_space: str = "[0,1]"
    clamp: bool = False
    tau: float = Field(gt=0.0, lt=1.0)
    alpha: float = Field(gt=0.0, lt=1.0)
    n0: int = Field(ge=0)
    n: int = Field(ge=1)
    seed: str
    sampling: Literal["one-pass", "per-budget"] = "one-pass"
    max_budget: Budget
    target_class: int | None = None
    chunk_size: int = Field(default=1024, ge=1)
    sampling_device: str = "cpu"  # device type of the random streams: CPU and CUDA streams differ
    amp: bool = False  # mixed precision in the filter can change decisions
    confidence_bound: str = "clopper-pearson"
    multiple_testing: str
    radii: list[NonNegative] = Field(default_factory=list)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_string(cls, v: Any) -> Any:
        # 64-bit seeds travel as strings; a (safe) integer is accepted and kept as its decimal string.
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v


class ToolInfo(_Model):
    name: str = "hybridcert"
    version: str
    revision: str | None = None


class DenoiserInfo(_Model):
    """The [denoiser] stage, part of the base filter (docs/theory.md §10)."""

    sha256: str
    timestep: int
    matched_level: float
    sigma: float
    pixel_space: str
    prediction_type: str = "epsilon"


class ModelInfo(_Model):
    _omit_none = ("intended_purpose", "denoiser")
    name: str
    version: str = "1"
    sha256: Sha256
    class_path: str | None = None
    type: str = "module"
    intended_purpose: str | None = None
    # the [denoiser] stage: its directory's sha256, the timestep t and its matched noise level
    denoiser: DenoiserInfo | None = None


class DatasetInfo(_Model):
    _omit_none = ("selection", "preprocessing", "out_of_scope")
    name: str
    version: str = "1"
    sha256: Sha256  # the manifest's bytes
    n_inputs: int = Field(ge=0)
    content_sha256: str | None = None  # the manifest plus every image file (dataset.load_manifest)
    selection: str | None = None
    preprocessing: str | None = None
    out_of_scope: str | None = None


class Counts(_Model):
    """Monte-Carlo counts of one input: every count lies in [0, its number of samples]."""

    n0: int = Field(ge=0)
    n: int = Field(ge=1)
    target: int = Field(ge=0)
    selection_target: int | None = Field(default=None, ge=0)
    target_per_budget: list[Annotated[int, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _within_n(self) -> Counts:
        if self.target > self.n:
            raise ValueError(f"counts.target ({self.target}) exceeds counts.n ({self.n})")
        if self.selection_target is not None and self.selection_target > self.n0:
            raise ValueError(f"counts.selection_target ({self.selection_target}) exceeds counts.n0 ({self.n0})")
        for d, k in enumerate(self.target_per_budget or []):
            if k > self.n:
                raise ValueError(f"counts.target_per_budget[{d}] ({k}) exceeds counts.n ({self.n})")
        return self


class FrontierPoint(_Model):
    """r*(budget); an infinite radius is ``radius: null`` with ``radius_infinite: true`` (never "inf")."""

    budget: Budget
    radius: NonNegative | None
    radius_infinite: bool = False

    @model_validator(mode="after")
    def _infinite_flag(self) -> FrontierPoint:
        if self.radius is None and not self.radius_infinite:
            raise ValueError("radius is null but radius_infinite is not true")
        if self.radius is not None and self.radius_infinite:
            raise ValueError("radius_infinite is true but radius is not null")
        return self

    @property
    def value(self) -> float:
        """The radius as a float (+inf when flagged infinite)."""
        return math.inf if self.radius is None else self.radius


class BaselineRecord(_Model):
    """A unimodal baseline's certificate (``inputs[i].baselines[name]``, hybridcert/audits/baselines.py): a
    smoothed filter of its own, estimated like the hybrid one. ``image-only`` certifies budget 0 only (Cohen),
    ``text-only`` radius 0 only (the knapsack)."""

    counts: Counts
    target_class: int
    side: Side
    threshold: float = Field(gt=0.0, lt=1.0)
    p_a_lower: Probability
    decision: Decision
    correct: bool
    frontier: list[FrontierPoint]


BASELINE_NAMES = ("image-only", "text-only")


class InputResult(_Model):
    """One input's certificate. Consistent by construction (docs/results-format.md, docs/theory.md §4):
    ``decision`` is ``abstain`` exactly when the frontier is empty and otherwise equals ``side``; ``correct``
    is the agreement of decision and label; frontier budgets are 0, 1, 2, ... with non-increasing radii and
    stop at ``max_budget``."""

    id: str = Field(min_length=1)
    label: int | None
    group: str | None = None
    counts: Counts
    target_class: int
    side: Side
    threshold: float = Field(gt=0.0, lt=1.0)
    p_a_lower: Probability
    p_a_lower_per_budget: list[Probability] | None = None
    decision: Decision
    correct: bool
    max_budget: Budget
    frontier: list[FrontierPoint]
    seconds: NonNegative = 0.0
    baselines: dict[str, BaselineRecord] | None = None

    _omit_none = ("baselines",)

    @field_validator("baselines")
    @classmethod
    def _baseline_shapes(cls, v: dict[str, BaselineRecord] | None) -> dict[str, BaselineRecord] | None:
        """image-only certifies no token change (budget 0 only); text-only no image change (radius 0 only)."""
        for name, rec in (v or {}).items():
            if name not in BASELINE_NAMES:
                raise ValueError(f"unknown baseline {name[:40]!r}")
            if name == "image-only" and any(e.budget != 0 for e in rec.frontier):
                raise ValueError("the image-only baseline certifies budget 0 only")
            if name == "text-only" and any(e.radius != 0.0 for e in rec.frontier):
                raise ValueError("the text-only baseline certifies radius 0 only")
            if (rec.decision == "abstain") != (not rec.frontier):
                raise ValueError(f"baseline {name}: decision must be 'abstain' exactly when the frontier is empty")
            if rec.decision != "abstain" and rec.decision != rec.side:
                raise ValueError(f"baseline {name}: decision differs from the certified side")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> InputResult:
        if (self.decision == "abstain") != (not self.frontier):
            raise ValueError("decision must be 'abstain' exactly when the frontier is empty (docs/theory.md §4)")
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
                raise ValueError("frontier radii must be non-increasing in the budget (docs/theory.md §4)")
        if len(self.frontier) > self.max_budget + 1:
            raise ValueError(f"the frontier goes beyond the input's max_budget {self.max_budget}")
        return self

    def certified(self, budget: int, radius: float) -> bool:
        """Certified at (budget, radius): correct, not abstain, budget in the frontier with radius >= eps."""
        return self.radius_at(budget) >= radius

    def radius_at(self, budget: int) -> float:
        """r*(budget) when certified at (budget, 0), +inf for an infinite radius, -inf when not certified
        (wrong decision, abstain, or budget outside the frontier): ``radius_at(d) >= eps`` is the test."""
        if not self.correct or self.decision == "abstain" or budget >= len(self.frontier):
            return -math.inf
        return self.frontier[budget].value


class CertifiedRate(_Model):
    budget: int
    radius: float
    rate: float
    count: int


class Aggregates(_Model):
    n_inputs: int = Field(ge=0)
    clean_rate: float = Field(ge=0.0, le=1.0)
    abstain: int = Field(ge=0)
    certified: list[CertifiedRate] = Field(default_factory=list)


class Criterion(_Model):
    """An acceptance criterion (docs/report.md §6): certified rate at (budget, radius) >= min_certified_rate.

    ``statistic`` "observed" compares the observed rate, "ci_lower" the lower end of its 95% interval."""

    id: str | None = None
    budget: Budget
    radius: NonNegative
    min_certified_rate: Probability
    statistic: Literal["observed", "ci_lower"] = "observed"


class Delta(_Model):
    budget: int
    radius: float
    before: float | None = None
    after: float | None = None
    delta: float | None = None


class ChangeHistory(_Model):
    """Filled by the regression gate (``hybridcert compare``), docs/report.md §12."""

    previous_report_id: str | None = None
    deltas: list[Delta] = Field(default_factory=list)
    verdict: str | None = None


class Environment(_Model):
    """Execution settings (not part of the deterministic view). Written exactly as the runner gave them."""

    python: str | None = None
    platform: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    device: str | None = None
    cuda: str | None = None

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to what the runner recorded (``environment["device"]``)."""
        data: dict[str, Any] = self.model_dump()
        return data[key]

    @model_serializer(mode="wrap")
    def _only_given(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k in self.model_fields_set or k in (self.model_extra or {})}
        return data


class AuditResults(_Model):
    """The whole results file."""

    _omit_none = ("acceptance", "change_history", "command")
    schema_: Literal["hybridcert/results/v1"] = Field(default=SCHEMA, alias="schema")
    tool: ToolInfo
    created: str
    config: AuditConfig
    model: ModelInfo
    dataset: DatasetInfo
    inputs: list[InputResult]
    aggregates: Aggregates
    environment: Environment = Field(default_factory=Environment)
    acceptance: list[Criterion] | None = None
    change_history: ChangeHistory | None = None
    command: str | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)

    @field_validator("created")
    @classmethod
    def _utc(cls, v: str) -> str:
        parse_utc(v)
        return v

    @property
    def created_at(self) -> datetime:
        return parse_utc(self.created)

    def to_json_obj(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return data

    def max_budget(self) -> int:
        """Largest budget tabulated: ``config.max_budget``."""
        return self.config.max_budget


def parse_utc(value: str) -> datetime:
    """Parse an ISO 8601 UTC timestamp ending in 'Z' (e.g. 2026-11-25T16:00:00Z)."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError(f"created must be an ISO 8601 UTC time ending in 'Z', got {value!r}")
    try:
        dt = datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError as exc:
        raise ValueError(f"created is not an ISO 8601 time: {value!r}") from exc
    return dt.astimezone(UTC)


def deterministic_view(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (a results.json object) without the timing and execution fields."""
    out = {k: v for k, v in obj.items() if k not in TIMING_FIELDS_TOP}
    out["inputs"] = [{k: v for k, v in item.items() if k not in TIMING_FIELDS_INPUT} for item in obj["inputs"]]
    return out
