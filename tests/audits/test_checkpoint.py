"""One audit per output folder (a real second process is refused), and a failed start leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridcert.audits.checkpoint import LOCK_NAME, LOG_NAME, RESULTS_NAME, OutputLock
from hybridcert.audits.config import AuditSpec
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.cli import app

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def hold_lock(out: Path) -> subprocess.Popen[str]:
    """Another process holding the folder's lock until its stdin closes."""
    code = ("import sys; from pathlib import Path; from hybridcert.audits.checkpoint import OutputLock\n"
            f"with OutputLock(Path({str(out)!r})):\n    print('locked', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_audit_on_a_locked_folder_is_refused_naming_the_first(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config()
    out = tmp_path / "o"
    code = CliRunner().invoke(app, ["audit", "--config", str(config), "--out", str(out)]).exit_code
    assert code == 0
    log_before = (out / LOG_NAME).read_bytes()
    holder = hold_lock(out)
    try:
        for extra in (["--resume"], ["--overwrite"]):
            result = CliRunner().invoke(app, ["audit", "--config", str(config), "--out", str(out), *extra])
            assert result.exit_code == 2, result.stderr
            assert result.stderr.count("\n") == 1 and "is in use by another audit" in result.stderr
            assert f"pid {holder.pid} on " in result.stderr and "started 20" in result.stderr
        assert (out / LOG_NAME).read_bytes() == log_before and (out / RESULTS_NAME).is_file()
    finally:
        holder.communicate("")
    assert not (out / LOCK_NAME).exists()  # the holder removed its lock file
    # the lock is free again: a resume of the finished audit runs and logs nothing twice
    assert CliRunner().invoke(app, ["audit", "--config", str(config), "--out", str(out), "--resume"]).exit_code == 0
    assert (out / LOG_NAME).read_bytes() == log_before and not (out / LOCK_NAME).exists()


def test_the_lock_outlives_a_killed_holder_only_as_a_file(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path / "o")
    holder.kill()
    holder.wait()
    assert (tmp_path / "o" / LOCK_NAME).is_file()  # SIGKILL: no cleanup, but the kernel released the flock
    with OutputLock(tmp_path / "o"):
        info = json.loads((tmp_path / "o" / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid()
    assert list((tmp_path / "o").iterdir()) == []  # the lock file is gone (the folder was the killed run's)


def test_a_run_that_fails_before_any_input_is_logged_leaves_nothing(
    make_spec: Callable[..., AuditSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = prepare(make_spec())

    def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("the filter's output contains NaN")

    monkeypatch.setattr(audit, "filter", broken)
    with pytest.raises(ValueError, match="NaN"):
        run_audit(audit, tmp_path / "o")
    assert not (tmp_path / "o").exists()  # no folder, no log with a lone header, no lock, no temporary file
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError, match="NaN"):
        run_audit(audit, tmp_path / "kept")
    assert list((tmp_path / "kept").iterdir()) == []


@pytest.mark.slow
def test_two_real_audit_processes_on_one_folder(tmp_path: Path) -> None:
    """The issue's scenario: a second ``--resume`` while the first audit runs exits 2 and changes nothing."""
    from hybridcert.audits.demo.run import write_demo

    config = write_demo(tmp_path / "bench", n_inputs=2, n=400_000)  # runs far longer than the second's start
    config.write_text(config.read_text(encoding="utf-8").replace("wave = 50", "wave = 1"), encoding="utf-8")
    out = tmp_path / "o"
    first = subprocess.Popen([sys.executable, "-m", "hybridcert", "audit", "--config", str(config), "--out", str(out)],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOG_NAME).is_file() or not (out / LOG_NAME).read_bytes().endswith(b"\n"):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        before = (out / LOG_NAME).read_bytes()
        second = subprocess.run([sys.executable, "-m", "hybridcert", "audit", "--config", str(config), "--out",
                                 str(out), "--resume"], env=ENV, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first audit must still be running"
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid} on " in second.stderr and second.stderr.count("\n") == 1
        assert (out / LOG_NAME).read_bytes().startswith(before)  # the second wrote nothing
    finally:
        first.kill()
        first.wait()
    lines = (out / LOG_NAME).read_bytes().split(b"\n")
    assert json.loads(lines[0])["type"] == "header"
    ids = [json.loads(x)["result"]["id"] for x in lines[1:] if x]
    assert len(ids) == len(set(ids))


def test_resume_refuses_an_oversized_log_without_reading_it(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config()
    out = tmp_path / "o"
    out.mkdir()
    log = out / LOG_NAME
    log.write_bytes(b'{"type":"header"}\n')
    with log.open("r+b") as fh:
        fh.truncate(10 << 30)  # 10 GiB on paper (sparse): reading it whole would exhaust memory
    result = CliRunner().invoke(app, ["audit", "--config", str(config), "--out", str(out), "--resume"])
    assert result.exit_code == 2, result.stderr
    assert "more than a log of 6 inputs can hold" in result.stderr and result.stderr.count("\n") == 1
    assert log.stat().st_size == 10 << 30 and sorted(p.name for p in out.iterdir()) == [LOG_NAME]
