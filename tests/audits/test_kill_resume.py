"""A real audit process killed mid-run (SIGKILL) and resumed loses and repeats nothing, and its results equal
an uninterrupted run's; the full demo runs from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from hybridcert.audits.checkpoint import LOG_NAME, RESULTS_NAME
from hybridcert.audits.config import load_spec
from hybridcert.audits.demo.run import write_demo
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.results.canonical import canonical_dumps
from hybridcert.results.schema import AuditResults, deterministic_view

ROOT = Path(__file__).resolve().parents[2]


def hybridcert(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "hybridcert", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def log_lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n") if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_audit_then_resume(tmp_path: Path) -> None:
    config = write_demo(tmp_path / "bench", n_inputs=12, n=300)
    text = config.read_text(encoding="utf-8").replace("wave = 50", "wave = 1")
    config.write_text(text, encoding="utf-8")
    assert tomllib.loads(text)["run"]["wave"] == 1
    out = tmp_path / "killed"
    proc = hybridcert("audit", "--config", str(config), "--out", str(out))
    deadline = time.monotonic() + 120
    while len([x for x in log_lines(out / LOG_NAME) if x]) < 3:  # header + 2 inputs
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = (out / LOG_NAME).read_bytes()
    finished_before = [json.loads(x)["result"]["id"] for x in before.split(b"\n")[1:] if x.endswith(b"}")]
    assert 2 <= len(finished_before) < 12, "the audit must be killed mid-run"
    assert not (out / RESULTS_NAME).exists()

    resumed = hybridcert("audit", "--config", str(config), "--out", str(out), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()

    after = (out / LOG_NAME).read_bytes()
    lines = after.split(b"\n")
    ids = [json.loads(x)["result"]["id"] for x in lines[1:] if x]
    assert len(ids) == 12 and len(set(ids)) == 12  # nothing lost, nothing repeated
    assert ids[: len(finished_before)] == finished_before  # the finished inputs were kept, not redone
    assert after.startswith(b"\n".join(before.split(b"\n")[: len(finished_before) + 1]))

    full = tmp_path / "full"
    run_audit(prepare(load_spec(config)), full)
    a = json.loads((out / RESULTS_NAME).read_text(encoding="utf-8"))
    b = json.loads((full / RESULTS_NAME).read_text(encoding="utf-8"))
    assert canonical_dumps(deterministic_view(a)) == canonical_dumps(deterministic_view(b))


@pytest.mark.slow
def test_demo_command_runs_the_whole_audit(demo_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr
    results = AuditResults.model_validate_json((out / RESULTS_NAME).read_text(encoding="utf-8"))
    assert results.dataset.n_inputs == 100 and len(results.inputs) == 100
    assert results.config.noise.vocab_size == 32 and results.config.n == 1000
    assert len(results.dataset.sha256) == 64 and results.model.name == "demo-digit-filter"
    # the bundled filter is accurate and robust enough that the demo shows certificates beyond d = 0
    assert results.aggregates.clean_rate >= 0.9
    rates = {(c.budget, c.radius): c.rate for c in results.aggregates.certified}
    assert rates[(1, 0.1)] >= 0.5 and rates[(2, 0.0)] >= 0.3
    summary = proc.stdout
    assert "certified rate" in summary and "d=1" in summary and "eps=0.1" in summary
    # the written audit.toml reproduces the run's configuration
    assert prepare(load_spec(out / "audit.toml")).config == results.config


@pytest.mark.slow
def test_tabular_audit_sigkill_then_resume_and_a_second_run_refused(tmp_path: Path) -> None:
    """hybridcert tabular-audit (issue 14): a second run on the folder is refused by the lock (exit 2) while the
    first runs; the first is killed (SIGKILL) mid-run; --resume keeps every logged record, repeats none, and
    gives the results of an uninterrupted run with another batch size."""
    from dataclasses import replace

    from hybridcert.audits.tabular import load_tabular_config, run_tabular_audit
    from tests.audits.test_tabular import _small_audit

    rows = 40
    audit = _small_audit(tmp_path, rows=rows, n=2000)
    config = tmp_path / "audit.json"
    config.write_text(json.dumps({"data": "data.csv", "schema": "schema.json", "model": "model.skops",
                                  "beta": audit.beta, "sigma": audit.sigma, "n0": audit.n0, "n": audit.n,
                                  "radii": list(audit.radii), "batch_size": 300}), encoding="utf-8")
    out = tmp_path / "killed"
    proc = hybridcert("tabular-audit", "--config", str(config), "--out", str(out))
    deadline = time.monotonic() + 120
    while len([x for x in log_lines(out / LOG_NAME) if x]) < 3:  # header + 2 records
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)  # still holding the lock, mid-run whatever the machine's speed
    try:
        second = hybridcert("tabular-audit", "--config", str(config), "--out", str(out), "--resume")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and b"in use by another audit" in err, err.decode()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = (out / LOG_NAME).read_bytes()
    finished_before = [json.loads(x)["result"]["id"] for x in before.split(b"\n")[1:] if x.endswith(b"}")]
    assert 2 <= len(finished_before) < rows, "the audit must be killed mid-run"
    assert not (out / RESULTS_NAME).exists()

    resumed = hybridcert("tabular-audit", "--config", str(config), "--out", str(out), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    after = (out / LOG_NAME).read_bytes()
    ids = [json.loads(x)["result"]["id"] for x in after.split(b"\n")[1:] if x]
    assert ids == [f"row-{i}" for i in range(1, rows + 1)]  # nothing lost, nothing repeated, in order
    assert after.startswith(b"\n".join(before.split(b"\n")[: len(finished_before) + 1]))

    full = tmp_path / "full"
    run_tabular_audit(replace(load_tabular_config(config), batch_size=4096), full)
    a = json.loads((out / RESULTS_NAME).read_text(encoding="utf-8"))
    b = json.loads((full / RESULTS_NAME).read_text(encoding="utf-8"))
    assert a["environment"]["batch_size"] == 300 and b["environment"]["batch_size"] == 4096
    assert canonical_dumps(deterministic_view(a)) == canonical_dumps(deterministic_view(b))
