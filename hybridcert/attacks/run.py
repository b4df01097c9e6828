"""``hybridcert attack``: the adaptive attack over an audit's dataset, next to its certificates (docs/theory.md §10).

For every input and requested point (d, eps) the engine (``engine.py``) searches an attacked point inside the
threat model against the side the audit certified, then re-estimates it with fresh samples and the smoothed
decision rule (tau). Per point the run reports:

- the certified rate: inputs certified at (d, eps) by the audit (``InputResult.certified``) - a lower bound on
  robust accuracy, holding per input with probability >= 1 - alpha (docs/theory.md §5);
- the attacked robust rate: inputs whose clean smoothed decision (the audit's side) is the label and that the
  attack did not flip significantly - an upper bound on robust accuracy (evidence, not proof);
- both with a two-sided Clopper-Pearson 95% interval over the inputs;
- soundness alarms: inputs certified at (d, eps) whose attacked point flips the decision significantly. Each is
  a bug or the alpha event (the certificate's alpha plus the re-estimate's alpha); they are listed by id.

Files in ``OUT``: ``attack.log.jsonl`` (a header with the configuration hash, then one fsynced line per finished
(input, point); ``--resume`` continues a killed run from it), ``images/*.npy`` (each attacked image, its sha256
in the record) and, last and atomically, ``attack.json``. Without ``--results`` the audit itself is run (or
resumed) into ``OUT/audit``. Every noise draw is seeded per (method, input, point, stream, chunk), so the file
does not depend on batch sizes or on interruption (only ``created`` and per-record ``seconds`` vary).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridcert import __version__
from hybridcert.attacks.engine import (
    AttackSettings,
    Target,
    estimate,
    image_sha256,
    point_key,
    search,
)
from hybridcert.attacks.protocol import as_gradient_filter, check_consistency
from hybridcert.audits.certification import side_threshold
from hybridcert.audits.counting import budget_span, clean_tokens
from hybridcert.audits.preparation import Audit, prepare
from hybridcert.audits.runner import run_audit
from hybridcert.results.atomic import open_append_nofollow, open_rw_nofollow, write_bytes_atomic
from hybridcert.results.canonical import canonical_dumps, write_json_atomic
from hybridcert.results.reader import read_results
from hybridcert.results.schema import AuditResults, InputResult, deterministic_view
from hybridcert.theory import clopper_pearson_lower, clopper_pearson_upper

LOG_NAME = "attack.log.jsonl"
RESULTS_NAME = "attack.json"
SCHEMA = "hybridcert/attack/v1"
RATE_CONFIDENCE = 0.95
MAX_POINTS = 64

Point = tuple[int, float]


def parse_point(text: str) -> Point:
    """``"d:eps"`` -> (d, eps); ValueError naming the text."""
    d_text, sep, eps_text = text.partition(":")
    try:
        if not sep:
            raise ValueError
        d, eps = int(d_text), float(eps_text)
    except ValueError:
        raise ValueError(f"--points: expected d:eps (for example 1:0.25), got {text!r}") from None
    if not 0 <= d <= 256 or not (0.0 <= eps < float("inf")):
        raise ValueError(f"--points: need 0 <= d <= 256 and a finite eps >= 0, got {text!r}")
    return d, eps


def default_points(audit: Audit) -> list[Point]:
    """(0, largest radius), (1, middle radius), (max_budget, 0) of the audit's grid (``config.radii``)."""
    radii = sorted(audit.spec.certify.radii) or [0.0]
    pts = [(0, radii[-1]), (min(1, audit.spec.certify.max_budget), radii[len(radii) // 2]),
           (audit.spec.certify.max_budget, 0.0)]
    return list(dict.fromkeys(pts))


def rate_interval(count: int, total: int) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval at RATE_CONFIDENCE for a rate count / total over inputs."""
    if total == 0:
        return 0.0, 1.0
    a = (1.0 - RATE_CONFIDENCE) / 2
    return float(clopper_pearson_lower(count, total, a)), float(clopper_pearson_upper(count, total, a))


def check_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: an existing attack needs --resume (continue) or --overwrite (start again)."""
    if resume and overwrite:
        raise ValueError("give --resume or --overwrite, not both")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a folder")
    log = out_dir / LOG_NAME
    if resume and not log.is_file():
        raise ValueError(f"--resume: no attack log {log} to continue")
    if not resume and not overwrite and (log.exists() or (out_dir / RESULTS_NAME).exists()):
        raise ValueError(f"{out_dir} already holds an attack; pass --resume to continue it, --overwrite to start "
                         "again, or choose another --out")


def _matches(results: AuditResults, audit: Audit, source: str) -> None:
    if results.config.model_dump(mode="json") != audit.config.model_dump(mode="json"):
        raise ValueError(f"{source}: its config differs from this audit.toml's (another audit's results?)")
    if results.model.sha256 != audit.model.sha256:
        raise ValueError(f"{source}: model sha256 differs from the filter this audit.toml loads")
    if results.dataset.content_sha256 != audit.dataset_info.content_sha256:
        raise ValueError(f"{source}: dataset content differs from this audit.toml's manifest")
    if [r.id for r in results.inputs] != [x.id for x in audit.dataset.inputs]:
        raise ValueError(f"{source}: its inputs are not this dataset's")


def target_for(audit: Audit, item_index: int, result: InputResult, point: Point) -> Target:
    """The clean point, noised span and changeable positions of one input at (d, eps) (docs/theory.md §2)."""
    item = audit.dataset.inputs[item_index]
    d, eps = point
    tokens = clean_tokens(audit, item)
    full = audit.threat.noised_positions(len(item.tokens))
    per_budget = audit.spec.certify.sampling == "per-budget"
    span = budget_span(audit, full, min(d, full[1] - full[0])) if per_budget else full
    if audit.threat.kind == "suffix-append":
        positions = tuple(range(full[0], full[0] + min(d, full[1] - full[0])))
    else:
        positions = tuple(range(full[0], full[1]))
    image = torch.from_numpy(item.image).to(audit.device)
    return Target(item.id, tokens, image, span, positions, result.target_class, min(d, len(positions)), eps)


def _write_npy(path: Path, image: np.ndarray) -> None:
    """The image as .npy bytes through the project's one writer (atomic, fsynced, never through a link)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image, dtype=np.float32), allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())


def attack_one(audit: Audit, index: int, result: InputResult, point: Point, settings: AttackSettings,
               n: int, out_dir: Path) -> dict[str, Any]:
    """One (input, point): search, write the image, re-estimate; the record of attack.json."""
    start = time.perf_counter()
    c = audit.spec.certify
    d, eps = point
    record: dict[str, Any] = {
        "id": result.id, "budget": d, "radius": eps, "label": result.label, "side": result.target_class,
        "certified": result.certified(d, eps), "method": settings.method,
    }
    if result.target_class != result.label:
        # the clean smoothed decision is already wrong: not robust, nothing to attack
        return {**record, "attacked": False, "skipped": "clean decision differs from the label", "success": None,
                "alarm": False, "seconds": round(time.perf_counter() - start, 6)}
    target = target_for(audit, index, result, point)
    filt = as_gradient_filter(audit.filter)
    outcome = search(filt, audit.sampler, target, settings, int(audit.spec.seed))
    key = point_key(settings.method, result.id, d, eps)
    tokens = torch.tensor(outcome.tokens, dtype=torch.int64, device=audit.device)
    image = torch.from_numpy(outcome.image).to(audit.device)
    est = estimate(audit.filter, audit.sampler, key, tokens, image, target.span, n, c.alpha, audit.batch_size)
    success = est.flipped(result.target_class, c.tau)
    name = f"{hashlib.sha256(result.id.encode()).hexdigest()[:16]}-d{d}-e{eps!r}.npy"
    _write_npy(out_dir / "images" / name, outcome.image)
    return {**record, "attacked": True, "skipped": None, "tokens": outcome.tokens,
            "changed_positions": outcome.changed_positions, "image": f"images/{name}",
            "image_sha256": image_sha256(outcome.image), "l2": outcome.l2,
            "estimate": {"ones": est.ones, "n": est.n, "p": est.ones / est.n, "lower": est.lower, "upper": est.upper,
                         "confidence": 1.0 - c.alpha, "threshold": side_threshold(c.tau, result.target_class)},
            "success": success, "alarm": bool(success and record["certified"]), "queries": outcome.queries,
            "seconds": round(time.perf_counter() - start, 6)}


def summarise(records: list[dict[str, Any]], points: list[Point], n_inputs: int) -> list[dict[str, Any]]:
    """Per point: certified and attacked robust rates with intervals, successes, alarms (module docstring)."""
    rows = []
    for d, eps in points:
        mine = [r for r in records if r["budget"] == d and r["radius"] == eps]
        cert = sum(r["certified"] for r in mine)
        robust = sum(r["attacked"] and not r["success"] for r in mine)
        rows.append({
            "budget": d, "radius": eps, "n_inputs": n_inputs,
            "certified": {"count": cert, "rate": cert / n_inputs, "interval": list(rate_interval(cert, n_inputs))},
            "attacked_robust": {"count": robust, "rate": robust / n_inputs,
                                "interval": list(rate_interval(robust, n_inputs))},
            "attacked": sum(r["attacked"] for r in mine), "successes": sum(bool(r["success"]) for r in mine),
            "alarms": sorted(r["id"] for r in mine if r["alarm"]),
        })
    return rows


def _config(audit: Audit, settings: AttackSettings, points: list[Point], n: int,
            results: AuditResults) -> dict[str, Any]:
    """What the attack's records depend on (hashed into the log header): the audit, the certificates (their
    deterministic content), the settings and the points."""
    certs = deterministic_view(results.to_json_obj())
    return {"audit_config_hash": audit.config_hash, "settings": asdict(settings), "points": [list(p) for p in points],
            "n": n, "alpha": audit.spec.certify.alpha, "tau": audit.spec.certify.tau, "seed": str(audit.spec.seed),
            "query_budget": settings.query_budget, "rate_confidence": RATE_CONFIDENCE,
            "certificates_sha256": hashlib.sha256(canonical_dumps(certs).encode()).hexdigest()}


def _read_log(path: Path, config_hash: str, keys: set[tuple[str, int, float]]) -> dict[tuple[str, int, float], Any]:
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines[-1]:  # a torn last line (killed mid-write)
        with open_rw_nofollow(path) as fh:
            fh.truncate(len(data) - len(lines[-1]))
            fh.flush()
            os.fsync(fh.fileno())
    complete = lines[:-1]
    if not complete:
        return {}
    try:
        header = json.loads(complete[0])
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ValueError(f"{path}: the first line is not an attack log header")
    if header.get("config_hash") != config_hash:
        raise ValueError(f"{path} was written by another attack (config, points, settings or audit changed): use "
                         "a new --out")
    done: dict[tuple[str, int, float], Any] = {}
    for number, raw in enumerate(complete[1:], start=2):
        try:
            rec = json.loads(raw)["record"]
            key = (str(rec["id"]), int(rec["budget"]), float(rec["radius"]))
        except Exception:
            raise ValueError(f"{path}:{number}: corrupt log line") from None
        if key not in keys or key in done:
            raise ValueError(f"{path}:{number}: record {key!r} is not expected here or logged twice")
        done[key] = rec
    return done


def _certificates(audit: Audit, out_dir: Path, results_path: Path | None, resume: bool) -> tuple[AuditResults, str]:
    if results_path is not None:
        results = read_results(results_path).results
        _matches(results, audit, str(results_path))
        return results, str(results_path)
    audit_dir = out_dir / "audit"
    done = audit_dir / "results.json"
    if resume and done.is_file():
        results = read_results(done).results
        _matches(results, audit, str(done))
        return results, "audit/results.json"
    log_exists = (audit_dir / "results.log.jsonl").is_file()
    results = run_audit(audit, audit_dir, resume=resume and log_exists, overwrite=not (resume and log_exists))
    return results, "audit/results.json"


def run_attack(audit: Audit, out_dir: Path, points: list[Point] | None = None,
               settings: AttackSettings | None = None, results: AuditResults | None = None,
               results_path: Path | None = None, n: int | None = None, resume: bool = False,
               overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Attack every input at every point and write ``attack.json`` (module docstring). ``results`` (already
    loaded certificates for this audit) or ``results_path`` name the certificates; otherwise the audit is run
    into ``OUT/audit``."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, resume, overwrite)
    settings = settings or AttackSettings()
    points = list(dict.fromkeys(points or default_points(audit)))
    if len(points) > MAX_POINTS:
        raise ValueError(f"--points: at most {MAX_POINTS} points")
    n = n or audit.spec.certify.n
    filt = as_gradient_filter(audit.filter)  # everything is checked before anything is written
    first = audit.dataset.inputs[0]
    noisy_t, noisy_i = audit.sampler.draw("consistency", clean_tokens(audit, first),
                                          torch.from_numpy(first.image).to(audit.device),
                                          audit.threat.noised_positions(len(first.tokens)), 0, 0, 64)
    check_consistency(filt, noisy_t, noisy_i)
    if results is not None:
        _matches(results, audit, "results")
        source = "given"
    elif results_path is not None:
        results = read_results(results_path).results
        _matches(results, audit, str(results_path))
        source = str(results_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    if results is None:
        results, source = _certificates(audit, out_dir, None, resume)
    config = _config(audit, settings, points, n, results)
    config_hash = hashlib.sha256(canonical_dumps(config).encode()).hexdigest()
    log_path = out_dir / LOG_NAME
    keys = [(r.id, d, eps) for r in results.inputs for d, eps in points]
    done = _read_log(log_path, config_hash, set(keys)) if resume else {}
    if not resume:
        log_path.unlink(missing_ok=True)
        (out_dir / RESULTS_NAME).unlink(missing_ok=True)
    (out_dir / "images").mkdir(exist_ok=True)
    by_id = {r.id: (i, r) for i, r in enumerate(results.inputs)}
    threads = torch.get_num_threads()
    if audit.spec.run.threads is not None:
        torch.set_num_threads(audit.spec.run.threads)
    try:
        with open_append_nofollow(log_path) as fh:
            if fh.tell() == 0:
                _line(fh, {"type": "header", "schema": SCHEMA + "-log", "config_hash": config_hash, "config": config})
            if progress:
                progress(len(done), len(keys))
            for key in keys:
                if key in done:
                    continue
                index, result = by_id[key[0]]
                rec = attack_one(audit, index, result, (key[1], key[2]), settings, n, out_dir)
                _line(fh, {"type": "record", "record": rec})
                done[key] = rec
                if progress:
                    progress(len(done), len(keys))
    finally:
        torch.set_num_threads(threads)
    records = [done[k] for k in keys]
    summary = summarise(records, points, len(results.inputs))
    report = {"schema": SCHEMA, "tool": {"name": "hybridcert", "version": __version__},
              "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "config": config, "certificates": source,
              "model": audit.model.model_dump(mode="json"), "dataset": audit.dataset_info.model_dump(mode="json"),
              "summary": summary, "alarms": [{"id": r["id"], "budget": r["budget"], "radius": r["radius"]}
                                             for r in records if r["alarm"]],
              "records": records}
    write_json_atomic(out_dir / RESULTS_NAME, report)
    return report


def _line(fh: Any, obj: Any) -> None:
    fh.write(canonical_dumps(obj) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def attack_from_file(config: Path, out_dir: Path, points: list[Point] | None = None,
                     settings: AttackSettings | None = None, results_path: Path | None = None, n: int | None = None,
                     resume: bool = False, overwrite: bool = False, device: str | None = None,
                     batch_size: int | None = None, progress: Callable[[int, int], None] | None = None
                     ) -> dict[str, Any]:
    """``hybridcert attack``: validate everything (config, dataset, filter, protocol) first, then run."""
    from hybridcert.audits.config import load_spec

    check_out_dir(Path(out_dir), resume, overwrite)
    audit = prepare(load_spec(config), device=device, batch_size=batch_size)
    return run_attack(audit, Path(out_dir), points, settings, results_path=results_path, n=n, resume=resume,
                      overwrite=overwrite, progress=progress)
