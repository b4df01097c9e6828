"""The one reader of ``results.json``: strict parsing plus every check the file allows on its own.

Every command that reads results (``verify --results``, ``report``, ``verify-report``, ``compare``) goes through
:func:`parse_results` / :func:`read_results`, so they accept and refuse exactly the same files. A file is
refused (:class:`ResultsError`, a ValueError whose message is one line naming the file, the input and the
field) unless:

1. it is bounded, strict JSON (``hybridcert.results.canonical.loads_strict``: UTF-8, no NaN/Infinity, no
   duplicate keys, depth and size bounded, integers <= 2^53) and RFC 8785 canonical bytes exist for it;
2. it validates against ``hybridcert.results.schema`` in strict mode: JSON ``true`` is not a number, a string
   is not a number, an array is not a scalar; budgets at most ``hybridcert.theory.MAX_BUDGET``;
3. per input (docs/results-format.md): ids are unique; ``side`` agrees with ``target_class``; ``threshold``
   is exactly the one the configuration implies, ``tau`` on the flag side and ``numpy.nextafter(1 - tau, 2)``
   on the no-flag side (docs/theory.md §4: a certificate at another threshold certifies another decision);
   counts lie in [0, n] with ``n`` the configured sample size (at most it, for a sequential audit);
   ``p_a_lower`` (and each ``p_a_lower_per_budget[d]``) is at most the lower confidence bound recomputed
   from the counts with the file's own rule (one-sided Clopper-Pearson at ``alpha``, split over the budgets
   in per-budget mode, or the Beta-mixture confidence sequence of a sequential audit, docs/theory.md §5);
   an unknown confidence rule is refused, not skipped;
4. with ``check_frontiers`` (the default): no stored frontier claims more than ``HybridNoise.frontier``
   recomputes from the stored ``p_a_lower`` and the derived threshold (no extra budget, no radius above it:
   the engine rounds radii down, so equality is the most a sound file can claim, docs/theory.md §6). The
   verifier turns this off because it proves each entry itself, by interval arithmetic, and reports the
   failures one by one.

Distinct (count, n) and (p_a_lower, threshold) pairs are computed once, vectorised: repeated rows cost nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from hybridcert.results.canonical import canonical_bytes, loads_strict, read_bounded
from hybridcert.results.schema import SCHEMA, AuditResults, BaselineRecord, InputResult
from hybridcert.theory import HybridNoise, KernelName, clopper_pearson_lower, cohen_radius
from hybridcert.theory.sequential import DEFAULT_PRIOR, cs_lower
from hybridcert.theory.sequential import METHOD as SEQUENTIAL_METHOD

__all__ = [
    "ResultsDocument",
    "ResultsError",
    "check_results",
    "expected_threshold",
    "parse_results",
    "read_results",
    "results_file",
]

RESULTS_NAME = "results.json"
CONFIDENCE_BOUNDS = ("clopper-pearson", SEQUENTIAL_METHOD)


class ResultsError(ValueError):
    """A results file that is malformed or claims more than its own numbers allow (one line)."""


@dataclass(frozen=True)
class ResultsDocument:
    """A validated results file: the model, the raw JSON object, its exact bytes and (computed when first asked
    for: ``verify --results`` never needs them) its RFC 8785 canonical bytes."""

    results: AuditResults
    raw: dict[str, Any]
    file_bytes: bytes
    source: str

    @cached_property
    def canonical(self) -> bytes:
        try:
            return canonical_bytes(self.raw)
        except ValueError as exc:
            raise ResultsError(f"{self.source}: {exc}") from None

    @property
    def file_sha256(self) -> str:
        return hashlib.sha256(self.file_bytes).hexdigest()

    @property
    def canonical_sha256(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()

    @property
    def report_id(self) -> str:
        """Deterministic report id: ``HCR-`` and 16 hex digits of the canonical sha256 (docs/results-format.md)."""
        return "HCR-" + self.canonical_sha256[:16].upper()


def expected_threshold(tau: float, side: str) -> float:
    """The threshold a frontier must be computed against (docs/theory.md §4, "the other side"): ``tau`` on the
    flag side; the smallest float strictly above ``1 - tau`` on the no-flag side, so that ``>= threshold``
    means ``> 1 - tau``."""
    return float(tau) if side == "flag" else float(np.nextafter(1.0 - float(tau), 2.0))


def results_file(path: Path | str) -> Path:
    """``path`` itself, or the results.json inside it when it is a folder."""
    p = Path(path)
    return p / RESULTS_NAME if p.is_dir() else p


def read_results(path: Path | str, *, check_frontiers: bool = True) -> ResultsDocument:
    """Read and check a results file (or the results.json of a folder); :class:`ResultsError` on any problem."""
    p = results_file(path)
    try:
        data = read_bounded(p)
    except ValueError as exc:
        raise ResultsError(str(exc)) from None
    except FileNotFoundError:
        raise ResultsError(f"{p}: no such file (no results file at {p})") from None
    except IsADirectoryError:
        raise ResultsError(f"{p}: is a directory, expected a results.json file") from None
    except OSError as exc:
        raise ResultsError(f"{p}: cannot read ({exc.strerror})") from None
    return parse_results(data, str(p), check_frontiers=check_frontiers)


def parse_results(data: bytes, source: str = RESULTS_NAME, *, check_frontiers: bool = True) -> ResultsDocument:
    """Check the bytes of a results file (module docstring, steps 1-4)."""
    try:
        raw = loads_strict(data, source)
    except ValueError as exc:
        raise ResultsError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ResultsError(f"{source}: expected a JSON object at the top level")
    schema = raw.get("schema")
    if schema != SCHEMA:
        raise ResultsError(f"{source}: unsupported schema {str(schema)[:80]!r}, expected {SCHEMA!r}")
    results = validate_model(raw, source)
    check_results(results, source, check_frontiers=check_frontiers)
    return ResultsDocument(results=results, raw=raw, file_bytes=bytes(data), source=source)


def validate_model(raw: dict[str, Any], source: str, model: type[AuditResults] = AuditResults) -> AuditResults:
    """Strict pydantic validation; the first error as one line naming the input (index and id) and field."""
    try:
        return model.model_validate(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ResultsError(f"{source}: {where(tuple(first['loc']), raw)}: {msg}{more}"[:600]) from None


def where(loc: tuple[Any, ...], raw: Any) -> str:
    """'inputs[3] (id x0004).frontier[1].radius' from a pydantic error location."""
    parts: list[str] = []
    for i, key in enumerate(loc):
        if isinstance(key, int):
            parts[-1:] = [f"{parts[-1]}[{key}]" if parts else f"[{key}]"]
            if i == 1 and loc[0] == "inputs":
                try:
                    ident = raw["inputs"][key].get("id")
                except (AttributeError, IndexError, KeyError, TypeError):
                    ident = None
                if isinstance(ident, str) and ident:
                    parts[-1] += f" (id {ident[:80]})"
        else:
            parts.append("schema" if key == "schema_" else str(key))
    return ".".join(parts) or "(top level)"


def _fail(source: str, index: int, rec: InputResult, message: str) -> ResultsError:
    return ResultsError(f"{source}: inputs[{index}] (id {rec.id[:80]}): {message}")


def check_results(results: AuditResults, source: str, *, check_frontiers: bool = True) -> None:
    """The whole-file checks (module docstring, steps 3 and 4) on a validated model."""
    cfg = results.config
    inputs = results.inputs
    seen: set[str] = set()
    for i, rec in enumerate(inputs):
        if rec.id in seen:
            raise _fail(source, i, rec, "duplicate id: it appears more than once")
        seen.add(rec.id)
        side = "flag" if rec.target_class == 1 else "no-flag"
        if rec.side != side:
            raise _fail(source, i, rec, f"side {rec.side!r} does not match target_class {rec.target_class}")
        want = expected_threshold(cfg.tau, rec.side)
        if rec.threshold != want:
            raise _fail(source, i, rec, f"threshold {rec.threshold!r} is not the one config.tau={cfg.tau!r} "
                                        f"implies on the {rec.side} side ({want!r}, docs/results-format.md)")
        if rec.max_budget > cfg.max_budget:
            raise _fail(source, i, rec, f"max_budget {rec.max_budget} is above config.max_budget {cfg.max_budget}")
        _check_counts_shape(source, i, rec, cfg.sampling, cfg.n, cfg.confidence_bound)
        for name, base in sorted((rec.baselines or {}).items()):
            _check_baseline(results, source, i, rec, name, base, check_frontiers)
    if results.aggregates.n_inputs != len(inputs):
        raise ResultsError(f"{source}: aggregates.n_inputs is {results.aggregates.n_inputs} but there are "
                           f"{len(inputs)} inputs")
    _check_bounds(results, source)
    if check_frontiers:
        _check_frontiers(results, source)


def _check_baseline(results: AuditResults, source: str, i: int, rec: InputResult, name: str, base: BaselineRecord,
                    check_frontiers: bool) -> None:
    """A unimodal baseline (hybridcert/audits/baselines.py) obeys the same rules: threshold from tau and its side,
    counts within [0, config.n], p_a_lower at most the Clopper-Pearson bound of its counts at alpha, and (with
    ``check_frontiers``) no radius above Cohen's (image-only) nor budget above the knapsack's (text-only)."""
    cfg = results.config
    where = f"baselines.{name}"
    if base.side != ("flag" if base.target_class == 1 else "no-flag"):
        raise _fail(source, i, rec, f"{where}: side {base.side!r} does not match target_class {base.target_class}")
    want = expected_threshold(cfg.tau, base.side)
    if base.threshold != want:
        raise _fail(source, i, rec, f"{where}: threshold {base.threshold!r} is not the one config.tau={cfg.tau!r} "
                                    f"implies on the {base.side} side ({want!r})")
    if base.counts.n != cfg.n:
        raise _fail(source, i, rec, f"{where}: counts.n {base.counts.n} differs from config.n {cfg.n}")
    bound = float(clopper_pearson_lower(base.counts.target, base.counts.n, cfg.alpha))
    if base.p_a_lower > bound:
        raise _fail(source, i, rec, f"{where}: p_a_lower={base.p_a_lower!r} exceeds the Clopper-Pearson bound "
                                    f"{bound!r} of its counts ({base.counts.target}/{base.counts.n})")
    if not check_frontiers or not base.frontier:
        return
    if name == "image-only":
        exact = float(cohen_radius(base.p_a_lower, cfg.noise.sigma, base.threshold))
        if base.frontier[0].value > exact:
            raise _fail(source, i, rec, f"{where}: radius {base.frontier[0].value!r} exceeds Cohen's radius {exact!r}")
    else:
        nz = cfg.noise
        noise = HybridNoise(kernel=cast(KernelName, nz.kernel), vocab_size=nz.vocab_size, beta=nz.beta,
                            sigma=nz.sigma)
        top = base.frontier[-1].budget
        got = int(noise.certified_budget(base.p_a_lower, 0.0, tau=base.threshold, max_budget=top))
        if got < top or base.p_a_lower < base.threshold:
            raise _fail(source, i, rec, f"{where}: budget {top} is not certified by p_a_lower={base.p_a_lower!r}")


def _check_counts_shape(source: str, i: int, rec: InputResult, sampling: str, n: int, bound: str) -> None:
    c = rec.counts
    if bound == SEQUENTIAL_METHOD:
        if c.n > n:
            raise _fail(source, i, rec, f"counts.n {c.n} is above the sequential cap config.n {n}")
    elif c.n != n:
        raise _fail(source, i, rec, f"counts.n {c.n} differs from config.n {n}")
    per_budget = sampling == "per-budget"
    if per_budget:
        ks, ps = c.target_per_budget, rec.p_a_lower_per_budget
        if ks is None or ps is None or len(ks) != len(ps) or len(ks) != rec.max_budget + 1:
            raise _fail(source, i, rec, "per-budget sampling needs counts.target_per_budget and p_a_lower_per_budget "
                                        f"with max_budget + 1 = {rec.max_budget + 1} entries each")
        if ks[0] != c.target or ps[0] != rec.p_a_lower:
            raise _fail(source, i, rec, "counts.target and p_a_lower must be pass 0's (target_per_budget[0], "
                                        "p_a_lower_per_budget[0])")
    elif c.target_per_budget is not None or rec.p_a_lower_per_budget is not None:
        raise _fail(source, i, rec, "per-budget counts in a one-pass audit")


def _bound_function(results: AuditResults, source: str) -> tuple[str, Any]:
    cfg = results.config
    if cfg.confidence_bound == "clopper-pearson":
        alpha = cfg.alpha if cfg.sampling == "one-pass" else cfg.alpha / (cfg.max_budget + 1)
        return f"Clopper-Pearson bound at alpha={alpha!r}", lambda k, n: clopper_pearson_lower(k, n, alpha)
    if cfg.confidence_bound == SEQUENTIAL_METHOD:
        if cfg.sampling != "one-pass":
            raise ResultsError(f"{source}: config.sampling: a sequential audit samples in one pass")
        prior = _prior(cfg.model_extra or {}, source)
        return (f"confidence-sequence bound at alpha={cfg.alpha!r}",
                lambda k, n: cs_lower(k, n, cfg.alpha, prior))
    raise ResultsError(f"{source}: config.confidence_bound: unknown rule {cfg.confidence_bound[:80]!r}; expected one "
                       f"of {', '.join(CONFIDENCE_BOUNDS)} (p_a_lower cannot be checked against the counts)")


def _prior(extra: dict[str, Any], source: str) -> tuple[float, float]:
    seq = extra.get("sequential")
    if seq is None:
        return DEFAULT_PRIOR
    prior = seq.get("prior") if isinstance(seq, dict) else None
    if prior is None and isinstance(seq, dict):
        return DEFAULT_PRIOR
    ok = isinstance(prior, dict) and all(
        isinstance(prior.get(k), int | float) and not isinstance(prior.get(k), bool) and prior[k] > 0 for k in "ab")
    if not ok:
        raise ResultsError(f"{source}: config.sequential.prior must be {{'a': number > 0, 'b': number > 0}}")
    assert isinstance(prior, dict)
    return float(prior["a"]), float(prior["b"])


def _check_bounds(results: AuditResults, source: str) -> None:
    """p_a_lower (and per-budget bounds) at most the bound of the counts, one vectorised call per distinct pair."""
    if not results.inputs:
        return
    name, bound = _bound_function(results, source)
    rows: list[tuple[int, int, int, float, str]] = []  # (input, k, n, claimed, field)
    for i, rec in enumerate(results.inputs):
        rows.append((i, rec.counts.target, rec.counts.n, rec.p_a_lower, "p_a_lower"))
        if rec.p_a_lower_per_budget is not None and rec.counts.target_per_budget is not None:
            for d, (k, p) in enumerate(zip(rec.counts.target_per_budget, rec.p_a_lower_per_budget, strict=True)):
                if d:
                    rows.append((i, k, rec.counts.n, p, f"p_a_lower_per_budget[{d}]"))
    pairs = np.array([(k, n) for _, k, n, _, _ in rows], dtype=np.int64)
    distinct, inverse = np.unique(pairs, axis=0, return_inverse=True)
    exact: NDArray[np.float64] = np.asarray(bound(distinct[:, 0], distinct[:, 1]), dtype=np.float64)
    limit = exact[inverse.reshape(-1)]
    claimed = np.array([p for _, _, _, p, _ in rows])
    bad = np.flatnonzero(claimed > limit)
    if bad.size:
        j = int(bad[0])
        i, k, n, p, field = rows[j]
        raise _fail(source, i, results.inputs[i], f"{field}={p!r} exceeds the {name} of its counts "
                                                  f"({k}/{n}): {float(limit[j])!r} (docs/theory.md §5)")


def _check_frontiers(results: AuditResults, source: str) -> None:
    """No frontier claims more than the engine recomputes (docs/theory.md §4, §6); distinct rows once."""
    nz = results.config.noise
    kernel = cast(KernelName, nz.kernel)  # checked against the known kernels by the schema
    noise = HybridNoise(kernel=kernel, vocab_size=nz.vocab_size, beta=nz.beta, sigma=nz.sigma)
    # every (input, budget d, p used for d): one-pass audits use p_a_lower for all d; per-budget ones pass d's
    claims: dict[tuple[float, float], list[tuple[int, int]]] = {}
    for i, rec in enumerate(results.inputs):
        for point in rec.frontier:
            d = point.budget
            p = rec.p_a_lower if rec.p_a_lower_per_budget is None else rec.p_a_lower_per_budget[d]
            claims.setdefault((rec.threshold, p), []).append((i, d))
    for t in sorted({t for t, _ in claims}):
        ps = sorted({p for tt, p in claims if tt == t})
        top = max(d for (tt, p), lst in claims.items() if tt == t for _, d in lst)
        radii, mask = noise.frontier_radii(np.array(ps), tau=t, max_budget=top)
        for row, p in enumerate(ps):
            for i, d in claims[(t, p)]:
                rec = results.inputs[i]
                point = rec.frontier[d]
                if not mask[row, d]:
                    raise _fail(source, i, rec, f"budget {d} is in the frontier but p_a_lower={p!r} does not "
                                                "certify it (docs/theory.md §4)")
                exact = float(radii[row, d])
                if point.value > exact:
                    raise _fail(source, i, rec, f"radius {point.value!r} at budget {d} exceeds the certified radius "
                                                f"{exact!r} recomputed from p_a_lower (docs/theory.md §4)")
