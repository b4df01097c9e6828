"""A real ``hybridcert attack`` process killed (SIGKILL) mid-run and resumed loses and repeats nothing: its
attack.json equals an uninterrupted run's (apart from timing), and each (input, point) is logged once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--points", "0:1.5", "--points", "1:0.25", "--steps", "3", "--samples", "8", "--candidates", "4"]


def _attack(config: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hybridcert", "attack", "--config", str(config), "--out", str(out),
                             *ARGS, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _records(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(path.read_text())["records"]]


@pytest.mark.slow
def test_sigkill_mid_attack_then_resume(demo_config: Any, tmp_path: Path) -> None:
    config = demo_config[0]
    whole = _attack(config, tmp_path / "whole")
    assert whole.wait(timeout=600) == 0, whole.stderr.read() if whole.stderr else ""
    killed = _attack(config, tmp_path / "killed")
    log = tmp_path / "killed" / "attack.log.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline:
        if log.exists() and log.read_bytes().count(b"\n") >= 4:  # header + 3 of the 8 records
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    lines = log.read_bytes().count(b"\n")
    assert 4 <= lines < 9, "the kill must land mid-run"
    assert not (tmp_path / "killed" / "attack.json").exists()
    resumed = _attack(config, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read() if resumed.stderr else ""
    assert _records(tmp_path / "killed" / "attack.json") == _records(tmp_path / "whole" / "attack.json")
    logged = [json.loads(x)["record"] for x in log.read_text().splitlines()[1:]]
    assert len(logged) == 8 and len({(r["id"], r["budget"], r["radius"]) for r in logged}) == 8
