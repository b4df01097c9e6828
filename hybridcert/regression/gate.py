"""The regression gate: compare two audits of one filter (before and after a model change).

Reads two ``results.json`` files (docs/results-format.md) and nothing else: no model, no sampling. Each file is
read with the one results reader (``hybridcert.results.reader``): an unsigned file's certificates are checked
exactly as ``verify --results``, ``report`` and ``verify-report`` check them (threshold derived from tau and the
side, counts within [0, n], p_a_lower at most the bound of its counts, no frontier above what the theory engine
recomputes, docs/theory.md §4-§6), so inflated radii, impossible bounds or flipped labels cannot pass the gate.
A signed folder is checked first: the DSSE envelope is decoded by ``hybridcert.reports.dsse`` and, with a trust
anchor, verified by ``hybridcert.reports.publish.verify_report``. Dataset statistics (certified at (d, eps),
rate intervals) come from ``hybridcert.results.stats``. For every
(d, eps) point of a grid it reports the certified rate before and after with two-sided Clopper-Pearson
intervals (docs/theory.md §5), the difference, and an exact McNemar test on the inputs present in both audits; it lists
the inputs that lost (or gained) a certificate; and it applies a gate (:class:`Gate`).

Certified at (d, eps) (docs/theory.md §4): the decision is correct and not ``abstain``, budget d is in the input's
frontier, and that entry's radius is >= eps. Frontier radii are already the minimum over d' <= d, so this
is "certified for every d' <= d"; a frontier with a gap or an increasing radius is refused as malformed.

Two audits are comparable only when their certificates mean the same thing (docs/theory.md §6): same kernel, V, beta,
sigma, pixel space, tau, alpha, threat model and dataset hash (:data:`COMPARABLE_FIELDS`).

The result is one JSON-serialisable dict, the "change history" section of a report (docs/report.md §12),
documented in docs/results-format.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binom

from hybridcert.reports import dsse
from hybridcert.reports.publish import verify_report
from hybridcert.results import reader, stats
from hybridcert.results.canonical import canonical_bytes, loads_strict, read_bounded
from hybridcert.results.reader import ResultsDocument

RESULTS_SCHEMA = "hybridcert/results/v1"
CHANGE_HISTORY_SCHEMA = "hybridcert/change-history/v1"
RESULTS_NAME = "results.json"
ATTESTATION_NAME = "attestation.dsse.json"

#: Fields whose values must be equal for two certificates to mean the same thing (docs/theory.md §6).
COMPARABLE_FIELDS: tuple[tuple[str, ...], ...] = (
    ("config", "noise", "kernel"),
    ("config", "noise", "vocab_size"),
    ("config", "noise", "beta"),
    ("config", "noise", "sigma"),
    ("config", "pixel_space"),
    ("config", "tau"),
    ("config", "alpha"),
    ("config", "threat_model"),
    ("dataset", "sha256"),
)


class IncomparableAudits(ValueError):
    """The two audits certify different things; ``differences`` names the fields."""

    def __init__(self, differences: Sequence[dict[str, Any]]) -> None:
        self.differences = list(differences)
        shown = "; ".join(
            f"{d['field']}: {_short(d['baseline'])} (baseline) != {_short(d['candidate'])} (candidate)"
            for d in self.differences
        )
        super().__init__(
            f"the audits are not comparable, these fields differ: {shown} (pass --allow-config-change to compare "
            "anyway)"
        )


class TamperedInput(ValueError):
    """A signed audit whose results.json does not match its attestation, or whose signature does not verify."""


# ------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audit:
    """One audit's results, parsed and checked against the results contract.

    ``radii[i, d]`` is input i's certified radius at budget d (``+inf`` for an infinite radius) when it is
    certified at (d, 0), and ``-inf`` when it is not (wrong decision, abstain, or d outside its frontier), so
    "certified at (d, eps)" is ``radii[i, d] >= eps`` for every eps >= 0.
    """

    path: Path
    sha256: str
    audit_id: str
    data: dict[str, Any]
    ids: tuple[str, ...]
    labels: tuple[Any, ...]
    decisions: tuple[str, ...]
    radii: NDArray[np.float64]
    budget_cap: int
    signature: str = "unsigned"

    @property
    def n_inputs(self) -> int:
        return len(self.ids)

    def certified(self, budget: int, radius: float) -> NDArray[np.bool_]:
        """Boolean per input: certified at (budget, radius)."""
        if budget >= self.radii.shape[1]:
            return np.zeros(self.n_inputs, dtype=bool)
        out: NDArray[np.bool_] = self.radii[:, budget] >= radius
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.audit_id,
            "path": str(self.path),
            "results_sha256": self.sha256,
            "created": self.data.get("created"),
            "model": self.data.get("model"),
            "dataset": self.data.get("dataset"),
            "n_inputs": self.n_inputs,
            "signature": self.signature,
        }


def results_path(path: str | Path) -> Path:
    """The results.json of an audit folder, or ``path`` itself when it is a file."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_NAME
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file (expected an audit folder or a {RESULTS_NAME})")
    return p


def load_audit(path: str | Path, trust: str | Path | None = None, require_signed: bool | None = None) -> Audit:
    """Read and check one audit (a folder holding results.json, or the file itself).

    When the folder holds an attestation, the input is checked first by :func:`_verify_signed_input` (the
    digest always, the signature when ``trust`` is given): a tampered results.json raises
    :class:`TamperedInput`. ``require_signed`` (default: whether ``trust`` is given) refuses an unsigned audit.
    The bytes checked are the bytes parsed, by the one results reader.
    """
    rpath = results_path(path)
    try:
        raw = read_bounded(rpath)
    except OSError as exc:
        raise ValueError(f"{rpath}: cannot read ({exc.strerror})") from None
    signed = (rpath.parent / ATTESTATION_NAME).exists()
    if require_signed is None:
        require_signed = trust is not None
    signature = "unsigned"
    if signed or require_signed:
        signature = _verify_signed_input(rpath, trust, content=raw)
    return from_document(reader.parse_results(raw, str(rpath)), rpath, signature)


def parse_results(
    data: Any, where: str = RESULTS_NAME, sha256: str | None = None, path: Path | None = None,
    signature: str = "unsigned",
) -> Audit:
    """Check a results object (decoded JSON, or its bytes) with the one reader and build the radius table."""
    raw = data if isinstance(data, bytes) else json.dumps(data, allow_nan=False).encode("utf-8")
    doc = reader.parse_results(raw, where)
    return from_document(doc, path if path is not None else Path(where), signature, sha256)


def from_document(doc: ResultsDocument, path: Path, signature: str = "unsigned", sha256: str | None = None) -> Audit:
    """An :class:`Audit` from a checked results document (radii from ``hybridcert.results.stats``)."""
    res = doc.results
    return Audit(
        path=path,
        sha256=sha256 if sha256 is not None else doc.file_sha256,
        audit_id=doc.report_id,
        data=doc.raw,
        ids=tuple(r.id for r in res.inputs),
        labels=tuple(r.label for r in res.inputs),
        decisions=tuple(r.decision for r in res.inputs),
        radii=stats.radius_matrix(res.inputs),  # budgets up to the longest frontier (at least budget 0)
        budget_cap=res.config.max_budget,
        signature=signature,
    )


def report_id(data: dict[str, Any], file_sha256: str | None = None) -> str:
    """The report id of a results object: ``HCR-`` and the first 16 hex digits (upper case) of the sha256 of its
    RFC 8785 canonical JSON, the id ``hybridcert.reports`` gives the report made from it."""
    return "HCR-" + hashlib.sha256(canonical_bytes(data)).hexdigest()[:16].upper()


# ------------------------------------------------------------------------------------------------------
# Signed inputs
# ------------------------------------------------------------------------------------------------------


def _verify_signed_input(results_file: Path, trust: str | Path | None, content: bytes | None = None) -> str:
    """Check a signed audit before reading it; return ``"digest-checked"`` or ``"verified"``.

    1. When the folder holds ``attestation.dsse.json``: the sha256 of results.json must equal the in-toto
       statement's subject for results.json (the DSSE payload, base64). A mismatch is :class:`TamperedInput`.
    2. When ``trust`` (a certificate or public key) is given: the signature itself is verified by
       ``hybridcert.reports.verify_report(audit_dir, trust)``; a failed check is :class:`TamperedInput`.

    ``content``: the bytes of results.json already read (so that what is checked is what is parsed).
    """
    folder = results_file.parent
    attestation = folder / ATTESTATION_NAME
    if not attestation.exists():
        raise TamperedInput(f"{folder}: the audit is not signed (no {ATTESTATION_NAME}) but a signature is required")
    expected = _attested_digest(attestation, results_file.name)
    actual = hashlib.sha256(content if content is not None else results_file.read_bytes()).hexdigest()
    if actual != expected:
        raise TamperedInput(
            f"{results_file}: sha256 {actual} does not match the signed attestation ({expected}): the results "
            "were changed after signing"
        )
    if trust is None:
        return "digest-checked"
    trust_path = Path(trust)
    if not trust_path.is_file():
        raise FileNotFoundError(f"{trust_path}: no such trust certificate")
    checks = verify_report(folder, trust_path)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise TamperedInput(f"{folder}: signature verification failed: {', '.join(failed)}")
    return "verified"


def _attested_digest(attestation: Path, name: str) -> str:
    """The sha256 that the in-toto statement inside the DSSE envelope records for the file ``name``; the
    envelope is decoded by ``hybridcert.reports.dsse`` (canonical base64, exactly one signature)."""
    try:
        _, payload, _, _ = dsse.parse_envelope(attestation.read_bytes())
        statement = loads_strict(payload, f"{attestation} payload")
    except (OSError, ValueError) as exc:
        raise TamperedInput(f"{attestation}: not a DSSE envelope of an in-toto statement ({exc})") from None
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list):
        raise TamperedInput(f"{attestation}: the in-toto statement has no subject list")
    for subject in subjects:
        if isinstance(subject, dict) and subject.get("name") == name:
            digest = subject.get("digest")
            value = digest.get("sha256") if isinstance(digest, dict) else None
            if not isinstance(value, str):
                raise TamperedInput(f"{attestation}: the subject {name!r} has no sha256 digest")
            return value.lower()
    raise TamperedInput(f"{attestation}: the attestation does not cover {name}")


# ------------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------------


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs b (lost) and c (gained).

    Under H0 (no change in the certified rate) b ~ Binomial(b + c, 1/2) given b + c; the two-sided p-value is
    min(1, 2 P[X <= min(b, c)]), which equals ``scipy.stats.binomtest(b, b + c).pvalue`` (the law is
    symmetric). 1 when there are no discordant pairs.
    """
    for name, v in (("b", b), ("c", c)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))


rate_interval = stats.rate_interval  # two-sided Clopper-Pearson, one place (hybridcert.results.stats)


# ------------------------------------------------------------------------------------------------------
# Gate and grid
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A certificate (d, eps): at most ``budget`` tokens and ``radius`` in l2."""

    budget: int
    radius: float

    def __post_init__(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 0:
            raise ValueError(f"budget must be an integer >= 0, got {self.budget!r}")
        if not (isinstance(self.radius, int | float) and math.isfinite(self.radius) and self.radius >= 0):
            raise ValueError(f"radius must be a finite number >= 0, got {self.radius!r}")
        object.__setattr__(self, "radius", float(self.radius))

    @classmethod
    def parse(cls, text: str) -> Point:
        """``"d:eps"``, for example ``"1:0.25"``."""
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"expected a point d:eps such as 1:0.25, got {text!r}")
        try:
            budget = int(parts[0])
            radius = float(parts[1])
        except ValueError as exc:
            raise ValueError(f"expected a point d:eps such as 1:0.25 (d an integer), got {text!r}") from exc
        return cls(budget, radius)


@dataclass(frozen=True)
class Gate:
    """When a comparison fails: at some gate point, drop > ``max_drop`` and (if ``alpha`` is given) the exact
    McNemar p-value < ``alpha``. drop = certified rate before - after; ``max_drop`` is compared exactly (as the
    decimal it was written as), so 1/50 is not above 0.02. ``points`` None means every point of the grid.
    """

    max_drop: Fraction = Fraction(0)
    alpha: float | None = None
    points: tuple[Point, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_drop", as_fraction("max_drop", self.max_drop))
        if not 0 <= self.max_drop <= 1:
            shown = str(self.max_drop) if abs(self.max_drop) < 10**6 else "a number above 1"
            raise ValueError(f"max_drop must lie in [0, 1], got {shown}")
        if self.alpha is not None and not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha!r}")

    def fails(self, drop: Fraction, p_value: float) -> bool:
        if drop <= self.max_drop:
            return False
        return self.alpha is None or p_value < self.alpha


def as_fraction(name: str, value: Any) -> Fraction:
    """A decimal number read exactly as written ("0.03" and 0.03 both give 3/100)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        dec = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not dec.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if dec and not -60 <= dec.adjusted() <= 60:  # bounded work: Fraction(1e999999999) would not finish
        raise ValueError(f"{name} is out of range, got {str(value)[:40]}")
    return Fraction(dec)


def nice_radii(largest: float, steps: int = 5) -> list[float]:
    """0 and multiples of a round step (1, 2, 2.5 or 5 times a power of ten) up to ``largest``: between
    ``steps`` + 1 and 2 ``steps`` + 1 values."""
    if not largest > 0 or not math.isfinite(largest):
        return [0.0]
    raw = Decimal(repr(largest / steps))
    exponent = raw.adjusted()
    unit = Decimal(1).scaleb(exponent)
    step = max(m * unit for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5)) if m * unit <= raw)
    out, k = [], 0
    while k * step <= Decimal(repr(largest)):
        out.append(float(k * step))
        k += 1
    return out


def default_grid(baseline: Audit, candidate: Audit) -> tuple[list[int], list[float]]:
    """Budgets 0..D, D the largest budget both audits cover; radii 0 and round steps up to the largest finite
    radius at d = 0 in either audit."""
    seen = max(baseline.radii.shape[1], candidate.radii.shape[1]) - 1
    top = min(baseline.budget_cap, candidate.budget_cap, seen)
    budgets = list(range(max(top, 0) + 1))
    r0 = np.concatenate([baseline.radii[:, 0], candidate.radii[:, 0]])
    finite = r0[np.isfinite(r0)]
    return budgets, nice_radii(float(finite.max()) if finite.size else 0.0)


# ------------------------------------------------------------------------------------------------------
# Comparison
# ------------------------------------------------------------------------------------------------------


def config_differences(baseline: Audit, candidate: Audit) -> list[dict[str, Any]]:
    """The :data:`COMPARABLE_FIELDS` whose values differ, as {field, baseline, candidate}."""
    out = []
    for path in COMPARABLE_FIELDS:
        a, b = _get(baseline.data, path), _get(candidate.data, path)
        if path == ("config", "threat_model"):  # an absent span is span null
            a, b = ({"kind": x.get("kind"), "span": x.get("span")} for x in (a, b))
        if a != b or type(a) is not type(b) and not (_number(a) and _number(b)):
            out.append({"field": ".".join(path), "baseline": a, "candidate": b})
    return out


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _get(data: dict[str, Any], path: Iterable[str]) -> Any:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


@dataclass(frozen=True)
class GridRow:
    """One (budget, radius) point of the comparison (docs/results-format.md, change history)."""

    budget: int
    radius: float
    gated: bool
    before: float
    before_ci: tuple[float, float]
    before_certified: int
    after: float
    after_ci: tuple[float, float]
    after_certified: int
    delta: float
    n_paired: int
    lost: int
    gained: int
    p_value: float
    failed: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["before_ci"], out["after_ci"] = list(self.before_ci), list(self.after_ci)
        return out


@dataclass(frozen=True)
class ChangeEntry:
    """An input that lost (or gained) a certificate at one or more gate points, with its radii before/after."""

    id: str
    label: int | None
    decision_before: str
    decision_after: str
    at: tuple[Point, ...]
    radii_before: tuple[dict[str, Any], ...]
    radii_after: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "decision_before": self.decision_before,
                "decision_after": self.decision_after,
                "at": [{"budget": p.budget, "radius": p.radius} for p in self.at],
                "radii_before": [dict(r) for r in self.radii_before],
                "radii_after": [dict(r) for r in self.radii_after]}


@dataclass(frozen=True)
class Comparison:
    """The typed result of :func:`compare_audits`; :meth:`to_dict` is the change-history JSON
    (``hybridcert/change-history/v1``, docs/results-format.md). ``passed`` is the gate's verdict."""

    previous_report_id: str
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    config_changes: list[dict[str, Any]]
    allow_config_change: bool
    gate: Gate
    ci_level: float
    gate_points: tuple[Point, ...]
    grid: tuple[GridRow, ...]
    lost: tuple[ChangeEntry, ...]
    gained: tuple[ChangeEntry, ...]
    only_in_baseline: tuple[str, ...]
    only_in_candidate: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def verdict(self) -> str:
        return "fail" if self.reasons else "pass"

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def deltas(self) -> tuple[GridRow, ...]:
        """The gate points' rows."""
        return tuple(r for r in self.grid if r.gated)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CHANGE_HISTORY_SCHEMA,
            "previous_report_id": self.previous_report_id,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "config_changes": _jsonable(self.config_changes),
            "allow_config_change": self.allow_config_change,
            "gate": {
                "max_drop": float(self.gate.max_drop),
                "alpha": self.gate.alpha,
                "ci_level": self.ci_level,
                "points": [{"budget": p.budget, "radius": p.radius} for p in self.gate_points],
                "rule": "fail when, at some gate point, before - after > max_drop"
                + (" and the exact McNemar p-value < alpha" if self.gate.alpha is not None else ""),
            },
            "deltas": [r.to_dict() for r in self.deltas],
            "grid": [r.to_dict() for r in self.grid],
            "lost": [e.to_dict() for e in self.lost],
            "gained": [e.to_dict() for e in self.gained],
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_candidate": list(self.only_in_candidate),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }


def compare_audits(
    baseline: Audit,
    candidate: Audit,
    gate: Gate | None = None,
    budgets: Sequence[int] | None = None,
    radii: Sequence[float] | None = None,
    ci_level: float = 0.95,
    allow_config_change: bool = False,
) -> Comparison:
    """Compare two audits and apply ``gate``; return the typed :class:`Comparison` (its ``to_dict()`` is the
    change-history JSON, docs/results-format.md).

    Raises :class:`IncomparableAudits` when a certificate field differs and ``allow_config_change`` is false,
    and ValueError for a grid or gate point beyond a budget either audit covers.
    """
    gate = gate if gate is not None else Gate()
    differences = config_differences(baseline, candidate)
    if differences and not allow_config_change:
        raise IncomparableAudits(differences)
    rate_interval(0, 1, ci_level)  # checks the level
    grid_budgets, grid_radii = default_grid(baseline, candidate)
    if budgets is not None:
        grid_budgets = sorted(set(budgets))
    if radii is not None:
        grid_radii = sorted(set(float(r) for r in radii))
    grid = [Point(d, r) for d in grid_budgets for r in grid_radii]
    gate_points = list(dict.fromkeys(gate.points)) if gate.points is not None else list(grid)
    cap = min(baseline.budget_cap, candidate.budget_cap)
    for p in grid + gate_points:
        if p.budget > cap:
            raise ValueError(
                f"budget {p.budget} is above the largest budget the audits cover (config.max_budget {cap})"
            )
    all_points = sorted(set(grid) | set(gate_points), key=lambda p: (p.budget, p.radius))
    gated = set(gate_points)

    common = sorted(set(baseline.ids) & set(candidate.ids))
    index_b = {ident: i for i, ident in enumerate(baseline.ids)}
    index_c = {ident: i for i, ident in enumerate(candidate.ids)}
    _check_labels_agree(baseline, candidate, common, index_b, index_c)
    rows_b = np.array([index_b[i] for i in common], dtype=np.int64)
    rows_c = np.array([index_c[i] for i in common], dtype=np.int64)

    rows: list[GridRow] = []
    lost_at: dict[str, list[Point]] = {}
    gained_at: dict[str, list[Point]] = {}
    reasons: list[str] = []
    for p in all_points:
        cert_b = baseline.certified(p.budget, p.radius)
        cert_c = candidate.certified(p.budget, p.radius)
        k_b, k_c = int(cert_b.sum()), int(cert_c.sum())
        pb, pc = cert_b[rows_b], cert_c[rows_c]
        lost = pb & ~pc
        gained = ~pb & pc
        b, c = int(lost.sum()), int(gained.sum())
        p_value = exact_mcnemar(b, c)
        before = Fraction(k_b, baseline.n_inputs) if baseline.n_inputs else Fraction(0)
        after = Fraction(k_c, candidate.n_inputs) if candidate.n_inputs else Fraction(0)
        drop = before - after
        is_gated = p in gated
        failed = is_gated and gate.fails(drop, p_value)
        if is_gated:
            for j in np.flatnonzero(lost):
                lost_at.setdefault(common[j], []).append(p)
            for j in np.flatnonzero(gained):
                gained_at.setdefault(common[j], []).append(p)
        if failed:
            why = f"drop {float(drop):.4g} > max drop {float(gate.max_drop):.4g}"
            if gate.alpha is not None:
                why += f" and McNemar p = {p_value:.3g} < {gate.alpha:g}"
            reasons.append(
                f"d={p.budget}, eps={p.radius:g}: certified rate {float(before):.4g} -> {float(after):.4g} ({why})"
            )
        rows.append(GridRow(
            budget=p.budget, radius=p.radius, gated=is_gated, before=float(before),
            before_ci=rate_interval(k_b, baseline.n_inputs, ci_level), before_certified=k_b, after=float(after),
            after_ci=rate_interval(k_c, candidate.n_inputs, ci_level), after_certified=k_c,
            delta=float(after - before), n_paired=len(common), lost=b, gained=c, p_value=p_value, failed=failed,
        ))

    gate_budgets = sorted({p.budget for p in gate_points})
    return Comparison(
        previous_report_id=baseline.audit_id,
        baseline=baseline.summary(),
        candidate=candidate.summary(),
        config_changes=differences,
        allow_config_change=bool(allow_config_change),
        gate=gate,
        ci_level=ci_level,
        gate_points=tuple(gate_points),
        grid=tuple(rows),
        lost=tuple(_change_entry(ident, lost_at[ident], baseline, candidate, index_b, index_c, gate_budgets)
                   for ident in sorted(lost_at)),
        gained=tuple(_change_entry(ident, gained_at[ident], baseline, candidate, index_b, index_c, gate_budgets)
                     for ident in sorted(gained_at)),
        only_in_baseline=tuple(sorted(set(baseline.ids) - set(candidate.ids))),
        only_in_candidate=tuple(sorted(set(candidate.ids) - set(baseline.ids))),
        reasons=tuple(reasons),
    )


def _check_labels_agree(
    baseline: Audit, candidate: Audit, common: list[str], index_b: dict[str, int], index_c: dict[str, int],
) -> None:
    """Two audits of one dataset (equal ``dataset.sha256``) must give every shared input the same label: the
    reader cannot see labels flipped consistently in an unsigned file (correct and decision edited to match),
    and a baseline so edited would make any candidate look like an improvement."""
    sha_b = _get(baseline.data, ("dataset", "sha256"))
    if sha_b is None or sha_b != _get(candidate.data, ("dataset", "sha256")):
        return
    differ = [i for i in common if baseline.labels[index_b[i]] != candidate.labels[index_c[i]]]
    if differ:
        first = differ[0]
        raise ValueError(
            f"both audits claim dataset sha256 {str(sha_b)[:16]}..., yet {len(differ)} shared input(s) have "
            f"different labels (first: {first!r}, label {baseline.labels[index_b[first]]} in {baseline.path}, "
            f"{candidate.labels[index_c[first]]} in {candidate.path}); one of the files was edited"
        )


def _change_entry(
    ident: str, points: list[Point], baseline: Audit, candidate: Audit,
    index_b: dict[str, int], index_c: dict[str, int], budgets: list[int],
) -> ChangeEntry:
    i, j = index_b[ident], index_c[ident]
    return ChangeEntry(
        id=ident, label=baseline.labels[i], decision_before=baseline.decisions[i],
        decision_after=candidate.decisions[j], at=tuple(points),
        radii_before=tuple(_radius_entry(baseline.radii[i], d) for d in budgets),
        radii_after=tuple(_radius_entry(candidate.radii[j], d) for d in budgets),
    )


def _radius_entry(row: NDArray[np.float64], budget: int) -> dict[str, Any]:
    """Certified radius at ``budget``: a number, null when not certified, null + radius_infinite for +inf."""
    r = float(row[budget]) if budget < row.shape[0] else -math.inf
    if r == math.inf:
        return {"budget": budget, "radius": None, "radius_infinite": True}
    return {"budget": budget, "radius": None if r < 0 else r, "radius_infinite": False}


def _jsonable(obj: Any) -> Any:
    """Copy of ``obj`` with non-finite floats replaced by null (the contract has no NaN or infinity)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:12] + "..." + text[-8:]


def compare_paths(
    baseline: str | Path,
    candidate: str | Path,
    gate: Gate | None = None,
    trust: str | Path | None = None,
    **kwargs: Any,
) -> Comparison:
    """Load two audits, checking signed ones first (:func:`load_audit`), and compare them.

    With ``trust`` the baseline must be signed (it is the stored artefact a regression is measured against);
    the candidate is verified when it is signed and reported as ``unsigned`` otherwise (typically it was just
    produced by the same CI job).
    """
    base = load_audit(baseline, trust, require_signed=trust is not None)
    cand = load_audit(candidate, trust, require_signed=False)
    return compare_audits(base, cand, gate, **kwargs)
