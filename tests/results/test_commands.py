"""Issue 10 regressions, per command: ``verify --results`` and ``certify --jsonl`` refuse hostile files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridcert.cli import app
from tests.results.builders import make_results
from tests.results.hostile import at_wrong_threshold

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def _write(tmp_path: Path, raw: object) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_verify_results_refuses_certificates_at_the_wrong_threshold(tmp_path: Path) -> None:
    good = make_results([None, 0.97, 0.8])
    code, out, _ = run("verify", "--results", str(_write(tmp_path, good)))
    assert code == 0, out
    code, out, err = run("verify", "--results", str(_write(tmp_path, at_wrong_threshold(good))))
    assert code == 2 and "threshold 0.01" in err and "config.tau=0.5" in err, out + err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["inputs"][1].update(p_a_lower=0.9999, counts={**r["inputs"][1]["counts"], "target": 969}),
         "exceeds the Clopper-Pearson bound"),
        (lambda r: r["inputs"][0]["counts"].update(target=1500), "exceeds counts.n"),
        (lambda r: r["inputs"][0]["counts"].update(target=-1), "counts.target"),
        (lambda r: r["inputs"][1].update(id="x0000"), "duplicate id"),
        (lambda r: r["inputs"][0].update(p_a_lower=True), "p_a_lower"),
        (lambda r: r["inputs"][0]["frontier"].append({"budget": 1, "radius": 0.0}) or
         r["inputs"][0]["frontier"].__setitem__(slice(None), [{"budget": 100000, "radius": 0.0}]), "budget"),
    ],
)
def test_verify_results_checks_the_file_itself(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    raw = make_results([None, 0.97, 0.8])
    edit(raw)
    code, out, err = run("verify", "--results", str(_write(tmp_path, raw)))
    assert code == 2 and message in err, out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"p_a": true, "vocab": 10, "beta": 0.5, "sigma": 0.5}', "'p_a' must be a finite number"),
        ('{"p_a": [0.9, 0.99], "vocab": 10, "beta": 0.5, "sigma": 0.5}', "'p_a' must be a finite number"),
        ('{"p_a": 0.9, "vocab": true, "beta": 0.5, "sigma": 0.5}', "'vocab' must be an integer"),
        ('{"p_a": 0.9, "vocab": 10, "beta": 0.5, "sigma": 0.5, "budget": 12000}', "at most 1024"),
        ("[" * 100000, "nested too deeply"),
    ],
)
def test_certify_jsonl_strict_types(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    code, out, err = run("certify", "--jsonl", str(path))
    assert code == 2 and message in err and f"{path}:1:" in err, out + err
    assert len(err.strip().splitlines()) == 1


def test_certify_budget_above_the_limit(tmp_path: Path) -> None:
    code, _, err = run("certify", "--p-a", "0.9", "--vocab", "10", "--beta", "0.5", "--sigma", "0.5",
                       "--budget", "12000")
    assert code == 2 and "MAX_BUDGET" in err
