"""``hybridcert verify --results FILE``: prove every certificate in an audit's results.json (docs/results-format.md).

The verifier reads only what a proof needs: ``config.noise`` {kernel, vocab_size, beta, sigma} and, per input,
``id``, ``p_a_lower``, ``threshold`` (the tau the frontier was computed against) and ``frontier``
[{budget, radius, radius_infinite}]. Every other field is ignored. Each frontier entry (d, r) is proven with
``interval.prove_frontier``: p_adv(d', r) >= threshold for every d' <= d. An infinite radius (``radius`` null,
``radius_infinite`` true) is provable only when p_a_lower = 1 (exactly, in rational arithmetic).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridcert.verifier.interval import Proof, prove_frontier
from hybridcert.verifier.reference import NoiseParams

SCHEMA = "hybridcert/results/v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, strict=True)


class NoiseConfig(_Model):
    kernel: Literal["uniform-other", "uniform-all", "absorb"]
    vocab_size: int | list[int]  # a list: one arity per categorical field (docs/theory.md §9)
    beta: float = Field(gt=0.0, le=1.0)
    sigma: float = Field(gt=0.0)


class Config(_Model):
    noise: NoiseConfig


class FrontierEntry(_Model):
    budget: int = Field(ge=0)
    radius: float | None = Field(ge=0.0)
    radius_infinite: bool = False

    @model_validator(mode="after")
    def _null_means_infinite(self) -> FrontierEntry:
        if self.radius is None and not self.radius_infinite:
            raise ValueError("radius is null but radius_infinite is not true")
        if self.radius is not None and self.radius_infinite:
            raise ValueError("radius_infinite is true but radius is not null")
        return self


class BaselineRecord(_Model):
    """A unimodal baseline's certificate (``inputs[i].baselines[name]``, hybridcert/audits/baselines.py)."""

    p_a_lower: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(gt=0.0, lt=1.0)
    frontier: list[FrontierEntry]


class InputRecord(_Model):
    id: str | int | None = None
    p_a_lower: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(gt=0.0, lt=1.0)
    frontier: list[FrontierEntry]
    baselines: dict[str, BaselineRecord] | None = None

    @field_validator("baselines")
    @classmethod
    def _baseline_shapes(cls, v: dict[str, BaselineRecord] | None) -> dict[str, BaselineRecord] | None:
        """image-only certifies no token change (budget 0 only); text-only no image change (radius 0 only)."""
        for name, rec in (v or {}).items():
            if name == "image-only" and any(e.budget != 0 for e in rec.frontier):
                raise ValueError("the image-only baseline certifies budget 0 only")
            if name == "text-only" and any(e.radius != 0.0 for e in rec.frontier):
                raise ValueError("the text-only baseline certifies radius 0 only")
            if name not in ("image-only", "text-only"):
                raise ValueError(f"unknown baseline {name!r}")
        return v

    @field_validator("frontier")
    @classmethod
    def _distinct_budgets(cls, v: list[FrontierEntry]) -> list[FrontierEntry]:
        budgets = [e.budget for e in v]
        if len(set(budgets)) != len(budgets):
            raise ValueError(f"budgets repeat in the frontier: {budgets}")
        return v


class ResultsFile(_Model):
    schema_: str | None = Field(default=None, alias="schema")
    config: Config
    inputs: list[InputRecord]

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, v: str | None) -> str | None:
        if v is not None and v != SCHEMA:
            raise ValueError(f"unsupported schema {v!r}, expected {SCHEMA!r}")
        return v


def _where(loc: tuple[Any, ...], raw: Any) -> str:
    """'inputs[3] (id x0004).frontier[1].radius' from a pydantic error location."""
    parts: list[str] = []
    for i, key in enumerate(loc):
        if isinstance(key, int):
            parts[-1] = f"{parts[-1]}[{key}]" if parts else f"[{key}]"
            if i == 1 and loc[0] == "inputs":
                try:
                    ident = raw["inputs"][key].get("id")
                except (AttributeError, IndexError, KeyError, TypeError):
                    ident = None
                if ident is not None:
                    parts[-1] += f" (id {ident})"
        else:
            parts.append("schema" if key == "schema_" else str(key))
    return ".".join(parts) or "(top level)"


def parse_results(raw: Any, source: str = "results") -> ResultsFile:
    """Validate a decoded results.json; a ValueError names the input (index and id) and the field."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a JSON object at the top level")
    try:
        return ResultsFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(f"{source}: {_where(tuple(first['loc']), raw)}: {msg}{more}") from None


def load_results(path: Path) -> ResultsFile:
    """Read and validate a results.json file (clear ValueError on any problem)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, expected a results.json file") from None
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None

    def no_constants(name: str) -> float:
        raise ValueError(f"{path}: {name} is not allowed in results (use null plus a flag)")

    try:
        raw = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_results(raw, str(path))


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


def verify_results(results: ResultsFile, source: str = "results",
                   progress: Callable[[str], None] | None = None) -> ResultsVerification:
    """Prove every frontier entry of every input (THEORY 4, 6); nothing here trusts the file's numbers."""
    n = results.config.noise
    noise = NoiseParams(n.kernel, tuple(n.vocab_size) if isinstance(n.vocab_size, list) else n.vocab_size,
                        n.beta, n.sigma)
    out = ResultsVerification(source, noise)
    for index, record in enumerate(results.inputs):
        ident = str(record.id) if record.id is not None else f"#{index}"
        if progress:
            progress(f"input {index + 1}/{len(results.inputs)} ({ident}): {len(record.frontier)} certificates")
        entries = [(e.budget, math.inf if e.radius_infinite else float(e.radius or 0.0)) for e in record.frontier]
        for proof in prove_frontier(noise, record.p_a_lower, record.threshold, entries):
            out.certificates.append(CertificateProof(index, ident, proof))
        # unimodal baselines (issue 13): image-only entries are (0, r), where the token kernel plays no part
        # (Cohen); text-only entries are (d, 0), where sigma plays no part (the knapsack): the same proof applies
        for name, base in sorted((record.baselines or {}).items()):
            entries = [(e.budget, math.inf if e.radius_infinite else float(e.radius or 0.0)) for e in base.frontier]
            for proof in prove_frontier(noise, base.p_a_lower, base.threshold, entries):
                out.certificates.append(CertificateProof(index, f"{ident} ({name})", proof))
    return out
