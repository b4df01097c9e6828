"""A pytest plugin that records the CPU time of every test, for sizing the test suite on a shared machine.

Wall-clock times on a machine shared with other jobs are inflated and noisy; CPU time is not. For each test
(setup + call + teardown, so a session fixture counts towards the first test that uses it) this records the
wall time, the CPU time of the pytest process (all its threads) and the CPU time of child processes that
finished meanwhile (Chromium, pdftoppm, subprocess CLIs, Ray workers once they exit).

    PYTHONPATH=$PWD .venv/bin/python -m pytest -q -p benchmarks.pytest_cputime --cputime-json times.json

prints a per-directory summary at the end and, with ``--cputime-json``, writes every test's figures.
"""

from __future__ import annotations

import json
import resource
import time
from collections import defaultdict
from collections.abc import Generator
from typing import Any

import pytest

_RECORDS: list[dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cputime-json", default=None, help="write per-test wall/CPU times to this JSON file")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    yield
    _RECORDS.append(
        {
            "nodeid": item.nodeid,
            "slow": item.get_closest_marker("slow") is not None,
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "children": _children_cpu() - children,
        }
    )


def _directory(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return path.rsplit("/", 1)[0] if "/" in path else "."


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _RECORDS:
        return
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for rec in _RECORDS:
        for key in (_directory(rec["nodeid"]), "TOTAL"):
            row = totals[key]
            row[0] += 1
            row[1] += rec["wall"]
            row[2] += rec["cpu"]
            row[3] += rec["children"]
    write = terminalreporter.write_line
    write("")
    write(f"{'directory':<24}{'tests':>7}{'wall s':>10}{'cpu s':>10}{'child cpu s':>13}")
    for key in sorted(totals, key=lambda k: (k == "TOTAL", k)):
        n, wall, cpu, children = totals[key]
        write(f"{key:<24}{int(n):>7}{wall:>10.1f}{cpu:>10.1f}{children:>13.1f}")
    path = config.getoption("--cputime-json")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(_RECORDS, fh, indent=1)
