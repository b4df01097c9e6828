"""The command line: "not certified" is never printed as a radius or budget, and the CLI's usability fixes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hybridcert.cli import app
from hybridcert.theory import HybridNoise
from hybridcert.theory.batch import certify_config

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def test_uncertified_budget_prints_not_certified_not_a_radius() -> None:
    code, text = _run("certify", "--p-a", "0.99", "--budget", "2")
    assert code == 0
    assert "certified radius at d=2: not certified" in text
    assert "0.0525" in text  # the worst case at eps = 0 that decided it, below tau = 0.5
    assert "d=2: 0" not in text

    code, text = _run("certify", "--p-a", "0.99", "--budget", "2", "--json")
    data = json.loads(text)
    assert data["certified"] is False and data["certified_radius"] is None
    assert data["worst_case_at_zero_radius"] < 0.5
    assert [row["budget"] for row in data["frontier"]] == [0]


def test_uncertified_radius_prints_not_certified_not_minus_one() -> None:
    code, text = _run("certify", "--radius", "0.1", "--p-a", "0.4")
    assert code == 0
    assert "certified budget at eps=0.1: not certified" in text and "-1" not in text
    code, text = _run("certify", "--radius", "0.1", "--p-a", "0.4", "--json")
    data = json.loads(text)
    assert data["certified"] is False and data["certified_budget"] is None and data["frontier"] == []


def test_certified_cases_keep_their_numbers() -> None:
    data = certify_config({"p_a": 0.99, "vocab": 30000, "beta": 0.25, "sigma": 1.0, "budget": 0, "radius": 1.0})
    noise = HybridNoise("uniform-other", 30000, 0.25, 1.0)
    assert data["certified"] is True
    assert data["certified_radius"] == noise.certified_radius(0.99, 0)
    assert data["certified_budget"] == 0


@pytest.mark.parametrize("p_a", [0.3, 0.5, 0.6, 0.9, 0.99, 0.999999])
@pytest.mark.parametrize("budget", [0, 1, 3])
def test_a_reported_radius_or_budget_is_always_a_certificate(p_a: float, budget: int) -> None:
    """Whatever certify reports is certified; whatever it leaves out is not (the engine decides both)."""
    noise = HybridNoise("uniform-other", 50, 0.5, 0.5)
    data = certify_config({"p_a": p_a, "vocab": 50, "beta": 0.5, "sigma": 0.5, "budget": budget, "radius": 0.1})
    at_zero = min(noise.worst_case(p_a, d, 0.0) for d in range(budget + 1)) >= 0.5
    assert (data["certified_radius"] is not None) == at_zero
    if data["certified_radius"] is not None:
        # the float lower bound at the boundary itself may sit 1 ulp under tau; just inside it must not
        assert noise.worst_case(p_a, budget, data["certified_radius"] * (1 - 1e-9)) >= 0.5
    at_radius = [noise.worst_case(p_a, d, 0.1) >= 0.5 for d in range(budget + 1)]
    assert data["certified"] == all(at_radius)
    if data["certified_budget"] is None:
        assert not at_radius[0]
    else:
        assert all(noise.worst_case(p_a, d, 0.1) >= 0.5 for d in range(data["certified_budget"] + 1))


def test_engine_zero_radius_is_not_a_certificate_at_eps_zero() -> None:
    """certified_radius returns 0.0 for an uncertified budget; the API's other answers tell it apart."""
    noise = HybridNoise("uniform-other", 30000, 0.25, 1.0)
    assert noise.certified_radius(0.99, 2) == 0.0
    assert noise.worst_case(0.99, 2, 0.0) < 0.5  # so (2, 0) is not certified
    assert noise.certified_budget(0.99, 0.0, max_budget=2) < 2
    assert 2 not in [d for d, _ in noise.frontier(0.99)]
    assert noise.certified_budget(0.4, 0.1) == -1
    radii, mask = noise.frontier_radii(np.array([0.99]), max_budget=2)
    assert mask[0].tolist() == [True, False, False] and radii[0, 2] == 0.0


# --------------------------------------------------------------------------------------------------------------
# demo, verify --results, help
# --------------------------------------------------------------------------------------------------------------

SMALL = ("--inputs", "3", "--n", "100", "--no-report")


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "demo-out"
    code, text = _run("demo", "--out", str(out), *SMALL)
    assert code == 0, text
    return out


def test_demo_ends_with_the_next_commands(small_demo: Path) -> None:
    code, text = _run("demo", "--out", str(small_demo.parent / "again"), *SMALL)
    assert code == 0, text
    assert "next:" in text and f"hybridcert verify --results {small_demo.parent / 'again'}" in text
    assert "writing the demo data" not in text and "certifying" not in text  # no progress off a terminal


def test_demo_refuses_a_non_empty_folder_naming_resume_and_force(small_demo: Path) -> None:
    before = (small_demo / "results.json").read_bytes()
    code, text = _run("demo", "--out", str(small_demo), *SMALL)
    assert code == 2 and "--resume" in text and "--force" in text
    assert (small_demo / "results.json").read_bytes() == before
    code, text = _run("demo", "--out", str(small_demo), "--resume", "--force", *SMALL)
    assert code == 2 and "not both" in text


def test_demo_resume_and_force(small_demo: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(small_demo, out)
    code, text = _run("demo", "--out", str(out), "--resume", *SMALL)
    assert code == 0, text
    assert json.loads((out / "results.json").read_text())["inputs"] == json.loads(
        (small_demo / "results.json").read_text())["inputs"]
    code, text = _run("demo", "--out", str(out), "--force", "--inputs", "2", "--n", "100", "--no-report")
    assert code == 0, text
    assert "--force: replacing" in text
    assert len(json.loads((out / "results.json").read_text())["inputs"]) == 2


def test_demo_folder_is_portable(small_demo: Path, tmp_path: Path) -> None:
    """audit.toml holds only paths relative to its folder, so a moved folder still audits."""
    import shutil
    import tomllib

    config = tomllib.loads((small_demo / "audit.toml").read_text())
    for path in (config["filter"]["weights"], config["dataset"]["manifest"], config["tokens"]["vocabulary"]):
        assert not Path(path).is_absolute(), path
    moved = tmp_path / "moved"
    shutil.copytree(small_demo, moved)
    code, text = _run("audit", "--config", str(moved / "audit.toml"), "--out", str(tmp_path / "rerun"), "--json")
    assert code == 0, text


def test_verify_results_accepts_an_audit_folder(small_demo: Path) -> None:
    code, text = _run("verify", "--results", str(small_demo))
    assert code == 0, text
    assert f"{small_demo / 'results.json'}:" in text and "0 not proved" in text


@pytest.mark.parametrize("command", [[], ["certify"], ["verify"], ["audit"], ["demo"], ["report"], ["compare"],
                                     ["verify-report"], ["keys", "init"], ["attack"], ["dataset", "curate"]])
def test_help_has_no_bool_type_and_keeps_brackets(command: list[str]) -> None:
    code, text = _run(*command, "--help")
    assert code == 0, text
    assert "<bool>" not in text
    if command == ["audit"]:
        assert "hybridcert[ray]" in text


def test_tabular_demo_force_never_deletes_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    """--force removes the folder it replaces, so it must refuse one that holds anything else."""
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    code, text = _run("demo", "--tabular", "--out", str(precious), "--force", "--no-report")
    assert code == 2 and "does not hold one" in text
    assert (precious / "thesis.tex").read_text() == "years of work"
