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
from hybridcert.audits.results import AuditResults, canonical_dumps, deterministic_view
from hybridcert.audits.runner import prepare, run_audit

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
