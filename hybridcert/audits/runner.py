"""Running an audit: prepare, count, certify, checkpoint, and write ``results.json`` (docs/theory.md §4, §5).

The parts live in their own modules, in the order data flows (no module imports a later one):

- ``preparation``: validate and build everything (dataset, filter, samplers, noise, resolved config) before
  anything runs or is written;
- ``counting``: noisy samples through the filter, class-1 counts per input (selection, estimation; sequential
  inputs through the theory's own stopping loop); ``executors`` run the work items here or on Ray;
- ``certification``: counts -> Clopper-Pearson bound (or the sequence's bound) -> frontier d -> r*(d);
- ``checkpoint``: the output folder's lock, the append-only log, resume.

Guarantee: with probability >= 1 - alpha over the sampling, each input's certificate holds for the smoothed
filter (docs/theory.md §5). Every sample is seeded by (seed, input id, stream, chunk), so a killed and resumed
audit, any batch size, wave size or executor give the same ``results.json`` apart from timing fields
(``results.deterministic_view``). ``results.json`` is written last, atomically.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridcert import __version__
from hybridcert.audits.baselines import with_baselines
from hybridcert.audits.certification import Certifier, budget_warnings
from hybridcert.audits.checkpoint import LOG_NAME, RESULTS_NAME, LogWriter, OutputLock, check_out_dir, start_locked
from hybridcert.audits.counting import Executor, count_wave
from hybridcert.audits.executors import make_executor
from hybridcert.audits.preparation import Audit, prepare
from hybridcert.results.canonical import write_json_atomic
from hybridcert.results.schema import AuditResults, Environment, InputResult, ToolInfo
from hybridcert.results.stats import aggregate

__all__ = ["Audit", "audit_from_file", "prepare", "run_audit", "summary_rows"]


def _revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def _environment(audit: Audit) -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "packages": {"torch": torch.__version__, "numpy": np.__version__},
            "device": str(audit.device), "batch_size": audit.batch_size, "amp": audit.spec.run.amp,
            "torch_threads": torch.get_num_threads()}


def rerun_command(config: Path, out_dir: Path, executor: str | None = None) -> str:
    """The command that reruns an audit (into a new folder, or this one with --overwrite)."""
    import shlex

    extra = f" --executor {executor}" if executor else ""
    return f"hybridcert audit --config {shlex.quote(str(config))} --out {shlex.quote(str(out_dir))}{extra}"


def audit_from_file(config: Path, out_dir: Path, resume: bool = False, overwrite: bool = False,
                    device: str | None = None, batch_size: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    executor: str | None = None, warn: Callable[[str], None] | None = None) -> AuditResults:
    """``hybridcert audit``: validate everything first (nothing is written on bad input), then run.
    ``executor`` overrides ``[run] executor`` (in-process or ray). ``warn`` receives, before the run, one line
    per side on which no budget d >= 1 can be certified (``certification.budget_warnings``).

    A ``.json`` configuration is a tabular audit (docs/tabular.md): ``tabular.tabular_audit_from_file``, with
    the same log, lock and resume."""
    from hybridcert.audits.config import load_spec

    if executor is not None and executor not in ("in-process", "ray"):
        raise ValueError(f"--executor must be in-process or ray, got {executor!r}")
    if Path(config).suffix.lower() == ".json":
        from hybridcert.audits.tabular import tabular_audit_from_file

        return tabular_audit_from_file(config, out_dir, resume=resume, overwrite=overwrite, device=device,
                                       batch_size=batch_size, executor=executor, progress=progress)
    check_out_dir(Path(out_dir), resume, overwrite)
    spec = load_spec(config)
    if (executor or spec.run.executor) != "ray":
        audit = prepare(spec, device=device, batch_size=batch_size)
        audit.command = rerun_command(config, out_dir)
        _warn(audit, warn)
        return run_audit(audit, out_dir, resume=resume, overwrite=overwrite, progress=progress, executor=executor)
    # Ray: the sampling device is the cluster's (a driver without a GPU can run a GPU cluster's audit)
    from hybridcert.audits.executors import ray_sampling_device, start_ray

    owned = start_ray(spec.run)  # a clear ValueError when Ray is not installed
    import ray as ray_module

    try:
        audit = prepare(spec, batch_size=batch_size, sampling_device=ray_sampling_device(device or spec.run.device))
        audit.command = rerun_command(config, out_dir, "ray")
        _warn(audit, warn)
        return run_audit(audit, out_dir, resume=resume, overwrite=overwrite, progress=progress, executor="ray")
    finally:
        if owned:
            ray_module.shutdown()


def torch_threads(audit: Audit) -> int | None:
    """CPU threads for torch in this process: ``[run] threads``, else 1 when sampling on the CPU (measured
    faster for small filters on a shared machine: docs/benchmarks.md), else None (torch's default)."""
    if audit.spec.run.threads is not None:
        return audit.spec.run.threads
    return 1 if audit.device.type == "cpu" else None


def _warn(audit: Audit, warn: Callable[[str], None] | None) -> None:
    if warn is not None:
        for line in budget_warnings(audit.noise, audit.spec.certify):
            warn(line)


def summary_rows(results: AuditResults) -> tuple[list[float], list[tuple[int, list[float]]]]:
    """(radii, [(budget, certified rate at each radius)]) from the aggregates, for a summary table."""
    radii = list(results.config.radii)
    rows: dict[int, list[float]] = {}
    for cell in results.aggregates.certified:
        rows.setdefault(cell.budget, []).append(cell.rate)
    return radii, sorted(rows.items())


def run_audit(
    audit: Audit,
    out_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    executor: str | None = None,
) -> AuditResults:
    """Certify every input, appending each to the log as it finishes; write ``results.json`` at the end.
    The counts come from ``executor`` (default ``[run] executor``; executors.py): results do not depend on it."""
    check_out_dir(Path(out_dir), resume, overwrite)
    threads = torch.get_num_threads()
    wanted = torch_threads(audit)
    if wanted is not None:
        torch.set_num_threads(wanted)
    runner = make_executor(audit, executor)
    try:
        certifier = Certifier(audit.noise, audit.spec.certify)  # this run's frontier rows
        return _run_audit(audit, Path(out_dir), resume, overwrite, progress, runner, certifier)
    finally:
        runner.close()
        torch.set_num_threads(threads)


def _run_audit(
    audit: Audit, out_dir: Path, resume: bool, overwrite: bool, progress: Callable[[int, int], None] | None,
    executor: Executor, certifier: Certifier,
) -> AuditResults:
    config_hash = audit.config_hash  # before anything is written: a config that cannot be hashed fails here
    with OutputLock(out_dir):  # one audit per folder, held until results.json is written (checkpoint.py)
        return _run_locked(audit, out_dir, resume, overwrite, progress, executor, certifier, config_hash)


def _run_locked(
    audit: Audit, out_dir: Path, resume: bool, overwrite: bool, progress: Callable[[int, int], None] | None,
    executor: Executor, certifier: Certifier, config_hash: str,
) -> AuditResults:
    log_path, results_path = out_dir / LOG_NAME, out_dir / RESULTS_NAME
    ids = [item.id for item in audit.dataset.inputs]
    done = start_locked(out_dir, resume, overwrite, config_hash, ids)
    todo = [item for item in audit.dataset.inputs if item.id not in done]
    index_of = {item.id: i for i, item in enumerate(audit.dataset.inputs)}
    total = len(ids)
    if progress:
        progress(len(done), total)
    with LogWriter(log_path, config_hash, audit.config.model_dump(mode="json")) as log:
        # Pipeline: the certificates of one wave are computed in a worker thread while the next wave is
        # sampled (the theory engine and the filter then use different cores); lines are logged in order.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="certify") as pool:
            pending: Future[list[InputResult]] | None = None
            for start in range(0, len(todo), audit.wave):
                counted = count_wave(audit, executor, [(index_of[item.id], item)
                                                        for item in todo[start:start + audit.wave]])
                if pending is not None:
                    log.write(with_baselines(audit, pending.result()), done, total, progress)
                pending = pool.submit(certifier.certify_counted, counted)
            if pending is not None:
                log.write(with_baselines(audit, pending.result()), done, total, progress)
    inputs = [done[i] for i in ids]
    results = AuditResults(
        tool=ToolInfo(version=__version__, revision=_revision()),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        config=audit.config, **_report_fields(audit), inputs=inputs,
        aggregates=aggregate(inputs, audit.spec.certify.max_budget, audit.spec.certify.radii),
        environment=Environment.model_validate({**_environment(audit), "executor": executor.name}),
    )
    write_json_atomic(results_path, results.to_json_obj())
    return results


def _report_fields(audit: Audit) -> dict[str, Any]:
    """model, dataset and command for results.json, with the ``[report]`` texts (docs/results-format.md)."""
    r = audit.spec.report
    model = {"intended_purpose": r.intended_purpose} if r.intended_purpose else {}
    data = {k: v for k, v in (("selection", r.input_selection), ("preprocessing", r.preprocessing),
                              ("out_of_scope", r.out_of_scope)) if v}
    fields: dict[str, Any] = {"model": audit.model.model_copy(update=model),
                              "dataset": audit.dataset_info.model_copy(update=data)}
    if audit.command:
        fields["command"] = audit.command
    return fields
