"""The regression gate: compare two audits of one filter (before and after a model change).

Reads two ``results.json`` files (docs/results-format.md) and nothing else: no model, no sampling. For every
(d, eps) point of a grid it reports the certified rate before and after with two-sided Clopper-Pearson
intervals (THEORY 5), the difference, and an exact McNemar test on the inputs present in both audits; it lists
the inputs that lost (or gained) a certificate; and it applies a gate (:class:`Gate`).

Certified at (d, eps) (THEORY 4): the decision is correct and not ``abstain``, budget d is in the input's
frontier, and that entry's radius is >= eps. Frontier radii are already the minimum over d' <= d, so this
is "certified for every d' <= d"; a frontier with a gap or an increasing radius is refused as malformed.

Two audits are comparable only when their certificates mean the same thing (THEORY 6): same kernel, V, beta,
sigma, pixel space, tau, alpha, threat model and dataset hash (:data:`COMPARABLE_FIELDS`).

The result is one JSON-serialisable dict, the "change history" section of a report (REPORT.md item 12),
documented in docs/results-format.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binom

from hybridcert.theory import MAX_AUTO_BUDGET, clopper_pearson_lower, clopper_pearson_upper

RESULTS_SCHEMA = "hybridcert/results/v1"
CHANGE_HISTORY_SCHEMA = "hybridcert/change-history/v1"
RESULTS_NAME = "results.json"
ATTESTATION_NAME = "attestation.dsse.json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

#: Fields whose values must be equal for two certificates to mean the same thing (THEORY 6).
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
_DECISIONS = ("flag", "no-flag", "abstain")


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
    """
    rpath = results_path(path)
    raw = rpath.read_bytes()
    signed = (rpath.parent / ATTESTATION_NAME).exists()
    if require_signed is None:
        require_signed = trust is not None
    signature = "unsigned"
    if signed or require_signed:
        signature = _verify_signed_input(rpath, trust, content=raw)
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{rpath}: not valid JSON ({exc})") from exc
    digest = hashlib.sha256(raw).hexdigest()
    return parse_results(data, where=str(rpath), sha256=digest, path=rpath, signature=signature)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in results.json (the contract writes null plus a flag)")


def parse_results(
    data: Any, where: str = RESULTS_NAME, sha256: str | None = None, path: Path | None = None,
    signature: str = "unsigned",
) -> Audit:
    """Check a parsed results.json against the contract and build the per-input radius table."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object at the top level")
    if data.get("schema") != RESULTS_SCHEMA:
        raise ValueError(f"{where}: schema must be {RESULTS_SCHEMA!r}, got {data.get('schema')!r}")
    for key in ("config", "dataset"):
        if not isinstance(data.get(key), dict):
            raise ValueError(f"{where}: {key} must be an object")
    config = data["config"]
    if not isinstance(config.get("noise"), dict):
        raise ValueError(f"{where}: config.noise must be an object")
    for path_ in COMPARABLE_FIELDS:
        if _get(data, path_) is None and path_ != ("config", "threat_model"):
            raise ValueError(f"{where}: {'.'.join(path_)} is missing (a certificate is meaningless without it)")
    if not isinstance(config.get("threat_model"), dict):
        raise ValueError(f"{where}: config.threat_model must be an object")
    cap = _budget_cap(config.get("max_budget"), where)
    inputs = data.get("inputs")
    if not isinstance(inputs, list):
        raise ValueError(f"{where}: inputs must be a list")
    ids: list[str] = []
    labels: list[Any] = []
    decisions: list[str] = []
    frontiers: list[list[float]] = []
    seen: set[str] = set()
    for i, item in enumerate(inputs):
        here = f"{where}: inputs[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{here}: expected an object")
        ident = item.get("id")
        if not isinstance(ident, str) or not ident:
            raise ValueError(f"{here}.id: expected a non-empty string, got {ident!r}")
        here = f"{where}: inputs[{i}] (id {ident!r})"
        if ident in seen:
            raise ValueError(f"{here}: duplicate id")
        seen.add(ident)
        decision, radii = _parse_input(item, here, cap)
        ids.append(ident)
        labels.append(item.get("label"))
        decisions.append(decision)
        frontiers.append(radii)
    width = max([len(r) for r in frontiers] + [1])
    table = np.full((len(ids), width), -np.inf)
    for i, radii in enumerate(frontiers):
        table[i, : len(radii)] = radii
    digest = sha256 if sha256 is not None else hashlib.sha256(_canonical(data)).hexdigest()
    return Audit(
        path=path if path is not None else Path(where),
        sha256=digest,
        audit_id=report_id(data, digest),
        data=data,
        ids=tuple(ids),
        labels=tuple(labels),
        decisions=tuple(decisions),
        radii=table,
        budget_cap=cap,
        signature=signature,
    )


def report_id(data: dict[str, Any], file_sha256: str) -> str:
    """The report id of a results file: ``HCR-`` and the first 16 hex digits (upper case) of the sha256 of its
    RFC 8785 canonical JSON, the id ``hybridcert.reports`` gives the report made from it. Without the
    ``rfc8785`` package (the ``report`` extra): ``results-sha256:`` and the sha256 of the file's bytes.
    """
    try:
        import rfc8785
    except ImportError:
        return f"results-sha256:{file_sha256}"
    try:
        canonical = bytes(rfc8785.dumps(data))
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise ValueError(f"results cannot be canonicalised (RFC 8785): {exc}") from exc
    return "HCR-" + hashlib.sha256(canonical).hexdigest()[:16].upper()


def _budget_cap(value: Any, where: str) -> int:
    if value is None:
        return MAX_AUTO_BUDGET
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: config.max_budget must be an integer >= 0 or null, got {value!r}")
    return value


def _parse_input(item: dict[str, Any], here: str, cap: int) -> tuple[str, list[float]]:
    """Return the decision and the certified radii r*(0..k) of one input (empty when it certifies nothing)."""
    decision = item.get("decision")
    if decision not in _DECISIONS:
        raise ValueError(f"{here}.decision: expected one of {', '.join(_DECISIONS)}, got {decision!r}")
    correct = item.get("correct")
    if not isinstance(correct, bool):
        raise ValueError(f"{here}.correct: expected true or false, got {correct!r}")
    label = item.get("label")
    if decision == "abstain" and correct:
        raise ValueError(f"{here}: correct is true for an abstention (abstain counts as not correct)")
    if decision != "abstain" and label in (0, 1) and not isinstance(label, bool):
        expected = (decision == "flag") == (label == 1)
        if correct != expected:
            raise ValueError(f"{here}.correct: is {str(correct).lower()} but decision {decision!r} and label {label}")
    frontier = item.get("frontier")
    if not isinstance(frontier, list):
        raise ValueError(f"{here}.frontier: expected a list")
    radii: list[float] = []
    for j, entry in enumerate(frontier):
        at = f"{here}.frontier[{j}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{at}: expected an object")
        budget = entry.get("budget")
        if budget != j or isinstance(budget, bool):
            raise ValueError(
                f"{at}.budget: expected {j} (the frontier lists budgets 0, 1, ... without gaps), got {budget!r}"
            )
        if budget > cap:
            raise ValueError(f"{at}.budget: {budget} is above config.max_budget {cap}")
        radius = entry.get("radius")
        if radius is None:
            if entry.get("radius_infinite", item.get("radius_infinite")) is not True:
                raise ValueError(f"{at}.radius: null without radius_infinite: true")
            r = math.inf
        elif isinstance(radius, bool) or not isinstance(radius, int | float) or not radius >= 0:
            raise ValueError(f"{at}.radius: expected a number >= 0 or null, got {radius!r}")
        else:
            r = float(radius)
        if radii and r > radii[-1]:
            raise ValueError(
                f"{at}.radius: {r} is above the radius at budget {j - 1} ({radii[-1]}); frontier radii are the "
                "minimum over smaller budgets, so they never increase"
            )
        radii.append(r)
    if decision == "abstain" and radii:
        raise ValueError(f"{here}: an abstention must have an empty frontier")
    # certified needs a correct, non-abstaining decision (docs/results-format.md)
    return decision, (radii if correct else [])


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
    try:
        from hybridcert.reports.publish import verify_report
    except ImportError as exc:
        raise ValueError(
            "signature verification needs hybridcert.reports.verify_report, which this installation does not have"
        ) from exc
    checks = verify_report(folder, trust_path)
    failed = [_check_name(c) for c in checks if not _check_passed(c)]
    if failed:
        raise TamperedInput(f"{folder}: signature verification failed: {', '.join(failed)}")
    return "verified"


def _check_passed(check: Any) -> bool:
    for key in ("ok", "passed", "valid"):
        value = check.get(key) if isinstance(check, dict) else getattr(check, key, None)
        if isinstance(value, bool):
            return value
    raise ValueError(f"cannot read the outcome of the verification check {check!r}")


def _check_name(check: Any) -> str:
    for key in ("name", "check", "detail", "message"):
        value = check.get(key) if isinstance(check, dict) else getattr(check, key, None)
        if isinstance(value, str) and value:
            return value
    return repr(check)


def _attested_digest(attestation: Path, name: str) -> str:
    """The sha256 that the in-toto statement inside the DSSE envelope records for the file ``name``."""
    try:
        envelope = json.loads(attestation.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TamperedInput(f"{attestation}: not valid JSON ({exc})") from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str):
        raise TamperedInput(f"{attestation}: not a DSSE envelope (no payload)")
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise TamperedInput(f"{attestation}: payloadType must be {IN_TOTO_PAYLOAD_TYPE!r}")
    payload = envelope["payload"]
    padded = payload + "=" * (-len(payload) % 4)  # DSSE accepts standard and URL-safe base64
    try:
        altchars = b"-_" if ("-" in padded or "_" in padded) else None
        statement = json.loads(base64.b64decode(padded, altchars=altchars, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise TamperedInput(f"{attestation}: the payload is not base64 of a JSON in-toto statement") from exc
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list):
        raise TamperedInput(f"{attestation}: the in-toto statement has no subject list")
    for subject in subjects:
        if isinstance(subject, dict) and isinstance(subject.get("name"), str):
            if subject["name"] == name or subject["name"].rsplit("/", 1)[-1] == name:
                digest = subject.get("digest")
                value = digest.get("sha256") if isinstance(digest, dict) else None
                if not isinstance(value, str):
                    raise TamperedInput(f"{attestation}: the subject {subject['name']!r} has no sha256 digest")
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


def rate_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for a rate k / n at confidence ``level`` (THEORY 5).

    Each side is the one-sided bound at (1 - level) / 2, rounded outwards by ``hybridcert.theory``; (0, 1)
    when n = 0.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level!r}")
    if n == 0:
        return (0.0, 1.0)
    # (1 - level) / 2 from the decimal the level was written as, rounded down: the interval never narrows
    a = float(np.nextafter(float((1 - Decimal(repr(float(level)))) / 2), 0.0))
    return (float(clopper_pearson_lower(k, n, a)), float(clopper_pearson_upper(k, n, a)))


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
            raise ValueError(f"max_drop must lie in [0, 1], got {float(self.max_drop)}")
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


def compare_audits(
    baseline: Audit,
    candidate: Audit,
    gate: Gate | None = None,
    budgets: Sequence[int] | None = None,
    radii: Sequence[float] | None = None,
    ci_level: float = 0.95,
    allow_config_change: bool = False,
) -> dict[str, Any]:
    """Compare two audits and apply ``gate``; return the change-history dict (docs/results-format.md).

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
    rows_b = np.array([index_b[i] for i in common], dtype=np.int64)
    rows_c = np.array([index_c[i] for i in common], dtype=np.int64)

    rows: list[dict[str, Any]] = []
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
        rows.append({
            "budget": p.budget,
            "radius": p.radius,
            "gated": is_gated,
            "before": float(before),
            "before_ci": list(rate_interval(k_b, baseline.n_inputs, ci_level)),
            "before_certified": k_b,
            "after": float(after),
            "after_ci": list(rate_interval(k_c, candidate.n_inputs, ci_level)),
            "after_certified": k_c,
            "delta": float(after - before),
            "n_paired": len(common),
            "lost": b,
            "gained": c,
            "p_value": p_value,
            "failed": failed,
        })

    gate_budgets = sorted({p.budget for p in gate_points})
    verdict = "fail" if reasons else "pass"
    return {
        "schema": CHANGE_HISTORY_SCHEMA,
        "previous_report_id": baseline.audit_id,
        "baseline": baseline.summary(),
        "candidate": candidate.summary(),
        "config_changes": _jsonable(differences),
        "allow_config_change": bool(allow_config_change),
        "gate": {
            "max_drop": float(gate.max_drop),
            "alpha": gate.alpha,
            "ci_level": ci_level,
            "points": [{"budget": p.budget, "radius": p.radius} for p in gate_points],
            "rule": "fail when, at some gate point, before - after > max_drop"
            + (" and the exact McNemar p-value < alpha" if gate.alpha is not None else ""),
        },
        "deltas": [r for r in rows if r["gated"]],
        "grid": rows,
        "lost": [
            _change_entry(ident, lost_at[ident], baseline, candidate, index_b, index_c, gate_budgets)
            for ident in sorted(lost_at)
        ],
        "gained": [
            _change_entry(ident, gained_at[ident], baseline, candidate, index_b, index_c, gate_budgets)
            for ident in sorted(gained_at)
        ],
        "only_in_baseline": sorted(set(baseline.ids) - set(candidate.ids)),
        "only_in_candidate": sorted(set(candidate.ids) - set(baseline.ids)),
        "verdict": verdict,
        "reasons": reasons,
    }


def _change_entry(
    ident: str, points: list[Point], baseline: Audit, candidate: Audit,
    index_b: dict[str, int], index_c: dict[str, int], budgets: list[int],
) -> dict[str, Any]:
    i, j = index_b[ident], index_c[ident]
    return {
        "id": ident,
        "label": baseline.labels[i],
        "decision_before": baseline.decisions[i],
        "decision_after": candidate.decisions[j],
        "at": [{"budget": p.budget, "radius": p.radius} for p in points],
        "radii_before": [_radius_entry(baseline.radii[i], d) for d in budgets],
        "radii_after": [_radius_entry(candidate.radii[j], d) for d in budgets],
    }


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


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:12] + "..." + text[-8:]


def compare_paths(
    baseline: str | Path,
    candidate: str | Path,
    gate: Gate | None = None,
    trust: str | Path | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Load two audits, checking signed ones first (:func:`load_audit`), and compare them.

    With ``trust`` the baseline must be signed (it is the stored artefact a regression is measured against);
    the candidate is verified when it is signed and reported as ``unsigned`` otherwise (typically it was just
    produced by the same CI job).
    """
    base = load_audit(baseline, trust, require_signed=trust is not None)
    cand = load_audit(candidate, trust, require_signed=False)
    return compare_audits(base, cand, gate, **kwargs)
