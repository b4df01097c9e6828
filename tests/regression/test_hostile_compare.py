"""Issue 10 regressions for ``hybridcert compare``: unsigned files are checked by the one results reader, so
certificates at the wrong threshold, inflated radii, impossible bounds and flipped labels cannot pass the gate;
an absurd --max-drop is one line, exit 2."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hybridcert.cli import app
from tests.audits.compare_support import build_results, synthetic_specs, write_audit
from tests.results.hostile import at_wrong_threshold

runner = CliRunner()


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return build_results(synthetic_specs(20, seed=3))


def _run(tmp_path: Path, base: dict[str, Any], cand: dict[str, Any], *args: str) -> Any:
    a = write_audit(tmp_path / "a", base)
    b = write_audit(tmp_path / "b", cand)
    return runner.invoke(app, ["compare", str(a), str(b), *args])


def _inflate(r: dict[str, Any]) -> None:
    for rec in r["inputs"]:
        for e in rec["frontier"]:
            if e["radius"] is not None:
                e["radius"] *= 1.5


def _impossible(r: dict[str, Any]) -> None:
    rec = next(x for x in r["inputs"] if x["frontier"])
    rec["p_a_lower"] = 0.9999
    rec["counts"]["target"] = 969


def _flip(r: dict[str, Any]) -> None:
    for rec in r["inputs"]:
        if rec["decision"] != "abstain" and not rec["correct"]:
            rec["label"] = 1 - rec["label"]
            rec["correct"] = True


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (at_wrong_threshold, "threshold 0.01 is not the one config.tau=0.5 implies"),
        (_inflate, "exceeds the certified radius"),
        (_impossible, "exceeds the Clopper-Pearson bound"),
    ],
)
def test_hostile_unsigned_candidate_is_refused(tmp_path: Path, base: dict[str, Any], edit: Any, message: str) -> None:
    cand = copy.deepcopy(base)
    out = edit(cand)
    cand = out if isinstance(out, dict) else cand
    res = _run(tmp_path, base, cand)
    assert res.exit_code == 2 and message in res.stderr, res.output
    assert res.stderr.count("\n") == 1


def test_flipped_labels_do_not_pass_unnoticed(tmp_path: Path, base: dict[str, Any]) -> None:
    """Flipping a wrong input's label to make it "correct" changes what is certified: the files are no longer the
    same dataset (labels are part of the contract), and consistent flips are reported, not hidden."""
    cand = copy.deepcopy(base)
    _flip(cand)
    cand["inputs"][0]["correct"] = not cand["inputs"][0]["correct"]  # and one inconsistent flag
    res = _run(tmp_path, base, cand)
    assert res.exit_code == 2 and "correct=" in res.stderr, res.output


@pytest.mark.parametrize("edited", ["candidate", "baseline"])
def test_consistently_flipped_labels_are_refused(tmp_path: Path, base: dict[str, Any], edited: str) -> None:
    """QA of issue 10: labels flipped with correct edited to match were read as valid (the file is consistent),
    and an edited baseline made a worse candidate pass; one dataset hash means one label per input."""
    flipped = copy.deepcopy(base)
    for rec in flipped["inputs"]:
        rec["label"] = 1 - rec["label"]
        rec["correct"] = rec["decision"] == ("flag" if rec["label"] == 1 else "no-flag")
    pair = (base, flipped) if edited == "candidate" else (flipped, base)
    res = _run(tmp_path, *pair)
    assert res.exit_code == 2 and "different labels" in res.stderr, res.output
    assert res.stderr.count("\n") == 1


@pytest.mark.parametrize("value", ["1e309", "1e999999999", "-1", "nan", "inf"])
def test_absurd_max_drop_is_one_line(tmp_path: Path, base: dict[str, Any], value: str) -> None:
    res = _run(tmp_path, base, base, "--max-drop", value)
    assert res.exit_code == 2 and "max" in res.stderr.lower(), res.output
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
