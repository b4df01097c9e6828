"""``hybridcert verify --results``: proofs of every certificate, a tampered radius caught, bad files rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridcert.cli import app
from hybridcert.verifier.results import load_results, verify_results

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_untouched_results_are_all_proved(results_path: Path) -> None:
    verification = verify_results(load_results(results_path))
    assert len(verification.certificates) >= 6  # three certified inputs with several budgets each
    assert verification.passed
    code, out, _ = run("verify", "--results", str(results_path))
    assert code == 0, out
    assert "0 not proved" in out


def test_radius_raised_by_a_tenth_of_a_percent_is_named(results_path: Path) -> None:
    data = json.loads(results_path.read_text())
    data["inputs"][1]["frontier"][1]["radius"] *= 1.001
    results_path.write_text(json.dumps(data))
    code, out, _ = run("verify", "--results", str(results_path))
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("NOT PROVED")]
    assert len(failed) == 1 and "input x0001" in failed[0] and "budget 1" in failed[0]
    code, out, _ = run("verify", "--results", str(results_path), "--json")
    report = json.loads(out)
    assert code == 1 and report["n_failed"] == 1
    assert [c["id"] for c in report["certificates"] if not c["proved"]] == ["x0001"]


def test_budget_claimed_beyond_the_frontier_is_caught(results_path: Path) -> None:
    data = json.loads(results_path.read_text())
    frontier = data["inputs"][2]["frontier"]
    frontier.append({"budget": frontier[-1]["budget"] + 1, "radius": frontier[-1]["radius"]})
    results_path.write_text(json.dumps(data))
    code, out, _ = run("verify", "--results", str(results_path))
    assert code == 1 and "input x0002" in out


def test_infinite_radius_needs_p_a_one(results_path: Path) -> None:
    data = json.loads(results_path.read_text())
    data["inputs"][0]["frontier"][0] = {"budget": 0, "radius": None, "radius_infinite": True}
    results_path.write_text(json.dumps(data))
    code, out, _ = run("verify", "--results", str(results_path))
    assert code == 1 and "infinite" in out and "p_a_lower = 1" in out
    # p_a_lower = 1 is what no Clopper-Pearson bound of finite counts gives (issue 10): refused, exit 2
    data["inputs"][0]["p_a_lower"] = 1.0
    data["inputs"][0]["frontier"] = [{"budget": 0, "radius": None, "radius_infinite": True}]
    results_path.write_text(json.dumps(data))
    code, _, err = run("verify", "--results", str(results_path))
    assert code == 2 and "exceeds the Clopper-Pearson bound" in err and len(err.strip().splitlines()) == 1


def test_html_report_for_results(results_path: Path, tmp_path: Path) -> None:
    page = tmp_path / "v.html"
    code, _, _ = run("verify", "--results", str(results_path), "--html", str(page))
    assert code == 0
    html = page.read_text()
    assert "x0000" in html and "proved" in html and "<style>" in html and "http" not in html.split("<body>")[1]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["inputs"][1].pop("p_a_lower"), "inputs[1] (id x0001).p_a_lower"),
        (lambda d: d["inputs"][2]["frontier"][0].update(radius=-1.0), "inputs[2] (id x0002).frontier[0].radius"),
        (lambda d: d["inputs"][0]["frontier"][0].update(radius=None), "radius_infinite is not true"),
        (lambda d: d["inputs"][0].update(threshold=1.5), "inputs[0] (id x0000).threshold"),
        (lambda d: d["inputs"][3].update(p_a_lower="0.9"), "inputs[3] (id x0003).p_a_lower"),
        (lambda d: d["config"]["noise"].update(kernel="gaussian"), "config.noise.kernel"),
        (lambda d: d["config"]["noise"].pop("sigma"), "config.noise.sigma"),
        (lambda d: d.update(inputs="none"), "inputs"),
        (lambda d: d.update(schema="hybridcert/results/v9"), "unsupported schema"),
        (lambda d: d["inputs"][0]["frontier"].append(dict(d["inputs"][0]["frontier"][0])), "without gaps"),
    ],
)
def test_malformed_results_give_one_clear_line(results_path: Path, mutate, expected: str) -> None:
    data = json.loads(results_path.read_text())
    mutate(data)
    results_path.write_text(json.dumps(data))
    code, out, err = run("verify", "--results", str(results_path))
    assert code == 2
    assert expected in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{not json", "not valid JSON"), ('{"inputs": [], "config": {"noise": NaN}}', "NaN is not allowed"),
     ("[1, 2]", "expected a JSON object")],
)
def test_unreadable_results(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(text)
    code, _, err = run("verify", "--results", str(path))
    assert code == 2 and expected in err


def test_missing_file_and_option_clash(tmp_path: Path) -> None:
    code, _, err = run("verify", "--results", str(tmp_path / "absent.json"))
    assert code == 2 and "no such file" in err
    code, _, err = run("verify", "--quick", "--full")
    assert code == 2
