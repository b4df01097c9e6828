"""``results.json`` as pydantic models (schema ``hybridcert/results/v1``, docs/results-format.md).

Everything except the timing and execution fields (``created``, per-input ``seconds``, ``environment``) is a
deterministic function of the configuration, the filter, the dataset and the seed: ``deterministic_view``
drops exactly those fields. Files are written canonically (sorted keys, no NaN, no infinity).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hybridcert.results.atomic import write_bytes_atomic

SCHEMA = "hybridcert/results/v1"
TIMING_FIELDS_TOP = ("created", "environment", "command")  # command: names the folders it ran in
TIMING_FIELDS_INPUT = ("seconds",)

Side = Literal["flag", "no-flag"]
Decision = Literal["flag", "no-flag", "abstain"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=False)


class NoiseConfig(_Model):
    kernel: str
    vocab_size: int | list[int]  # a list: one arity per categorical field (tabular, docs/theory.md §9)
    beta: float
    sigma: float
    mask_id: int | None = None
    alphabet_sha256: str | None = None


class ThreatModelConfig(_Model):
    kind: str
    span: int | None = None
    pad_id: int | None = None


class AuditConfig(_Model):
    """The resolved parameters a certificate is meaningless without (THEORY 6), plus the sampling plan."""

    noise: NoiseConfig
    threat_model: ThreatModelConfig
    pixel_space: str = "[0,1]"
    clamp: bool = False
    tau: float
    alpha: float
    n0: int
    n: int
    seed: str
    sampling: Literal["one-pass", "per-budget"] = "one-pass"
    max_budget: int
    target_class: int | None = None
    chunk_size: int = 1024
    sampling_device: str = "cpu"  # device type of the random streams: CPU and CUDA streams differ
    amp: bool = False  # mixed precision in the filter can change decisions
    confidence_bound: str = "clopper-pearson"
    multiple_testing: str
    radii: list[float] = Field(default_factory=list)


class ToolInfo(_Model):
    name: str = "hybridcert"
    version: str
    revision: str | None = None


class DenoiserInfo(_Model):
    sha256: str
    timestep: int
    matched_level: float
    sigma: float
    pixel_space: str
    prediction_type: str = "epsilon"


class ModelInfo(_Model):
    name: str
    version: str = "1"
    sha256: str
    class_path: str | None = None
    type: str = "module"
    # issue 12: the [denoiser] stage, part of the base filter: its directory's sha256, the timestep t and the
    # matched noise level (std in [0, 1] pixel space) of that timestep, next to the sigma it was chosen for
    denoiser: DenoiserInfo | None = None


class DatasetInfo(_Model):
    name: str
    version: str = "1"
    sha256: str  # the manifest's bytes
    n_inputs: int
    content_sha256: str | None = None  # the manifest plus every image file (dataset.load_manifest)


class Counts(_Model):
    n0: int
    n: int
    target: int
    selection_target: int | None = None
    target_per_budget: list[int] | None = None


class FrontierPoint(_Model):
    budget: int
    radius: float | None
    radius_infinite: bool = False


class InputResult(_Model):
    id: str
    label: int
    group: str | None = None
    counts: Counts
    target_class: int
    side: Side
    threshold: float
    p_a_lower: float
    p_a_lower_per_budget: list[float] | None = None
    decision: Decision
    correct: bool
    max_budget: int
    frontier: list[FrontierPoint]
    seconds: float = 0.0

    def certified(self, budget: int, radius: float) -> bool:
        """The contract's definition: correct, not abstain, budget in the frontier with radius >= eps."""
        if not self.correct or self.decision == "abstain":
            return False
        for point in self.frontier:
            if point.budget == budget:
                return point.radius_infinite or (point.radius is not None and point.radius >= radius)
        return False


class CertifiedRate(_Model):
    budget: int
    radius: float
    rate: float
    count: int


class Aggregates(_Model):
    n_inputs: int
    clean_rate: float
    abstain: int
    certified: list[CertifiedRate] = Field(default_factory=list)


class AuditResults(_Model):
    schema_: str = Field(default=SCHEMA, alias="schema")
    tool: ToolInfo
    created: str
    config: AuditConfig
    model: ModelInfo
    dataset: DatasetInfo
    inputs: list[InputResult]
    aggregates: Aggregates
    environment: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json_obj(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return data


def aggregate(inputs: list[InputResult], max_budget: int, radii: list[float]) -> Aggregates:
    """Clean rate, abstentions and the certified rate at every (d, eps) of the grid budgets x radii."""
    total = len(inputs)
    rates = []
    for d in range(max_budget + 1):
        for eps in radii:
            count = sum(r.certified(d, eps) for r in inputs)
            rates.append(CertifiedRate(budget=d, radius=eps, rate=count / total if total else 0.0, count=count))
    return Aggregates(
        n_inputs=total,
        clean_rate=sum(r.correct for r in inputs) / total if total else 0.0,
        abstain=sum(r.decision == "abstain" for r in inputs),
        certified=rates,
    )


def canonical_dumps(obj: Any) -> str:
    """Sorted keys, compact separators, no NaN/infinity: the bytes that ``write_json`` writes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` canonically to ``path`` (``hybridcert.results.atomic.write_bytes_atomic``: exclusive,
    atomic, fsynced, mode 0644, never through a planted link)."""
    write_bytes_atomic(Path(path), (canonical_dumps(obj) + "\n").encode("utf-8"))


def load_results(path: Path) -> AuditResults:
    """Read and validate a results.json (ValueError naming the file when it is not one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read results ({exc})") from exc
    try:
        return AuditResults.model_validate(data)
    except Exception as exc:
        raise ValueError(f"{path}: not a hybridcert results file: {str(exc).splitlines()[0]}") from exc


def deterministic_view(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (a results.json object) without the timing and execution fields."""
    out = {k: v for k, v in obj.items() if k not in TIMING_FIELDS_TOP}
    out["inputs"] = [{k: v for k, v in item.items() if k not in TIMING_FIELDS_INPUT} for item in obj["inputs"]]
    return out
