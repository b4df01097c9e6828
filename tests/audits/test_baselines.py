"""Unimodal baselines (issue 13) on the real demo filter: in results.json per input, each from its own seeded
stream, identical across batch sizes and after a resume, proven by ``verify --results`` (and an inflated
baseline radius is caught), summarised as the paper's table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hybridcert.audits.baselines import mean_certified
from hybridcert.audits.checkpoint import LOG_NAME, RESULTS_NAME
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.results.schema import deterministic_view
from hybridcert.theory import clopper_pearson_lower
from hybridcert.verifier.results import load_results, parse_results, verify_results

BASE = {"certify": {"baselines": ["image-only", "text-only"], "max_budget": 3}}


@pytest.fixture(scope="module")
def with_baselines(tmp_path_factory: pytest.TempPathFactory, demo_base: Any) -> dict[str, Any]:
    from hybridcert.audits.config import parse_spec
    from tests.audits.conftest import _merge

    root, data = demo_base
    spec = parse_spec(_merge(data, BASE), root)
    out = tmp_path_factory.mktemp("baselines")
    run_audit(prepare(spec), out)
    return {"spec": spec, "out": out, "json": json.loads((out / RESULTS_NAME).read_text())}


def test_baselines_per_input_and_proven(with_baselines: dict[str, Any]) -> None:
    data = with_baselines["json"]
    assert data["config"]["baselines"] == ["image-only", "text-only"]
    alpha, n = data["config"]["alpha"], data["config"]["n"]
    for rec in data["inputs"]:
        img, txt = rec["baselines"]["image-only"], rec["baselines"]["text-only"]
        assert all(e["budget"] == 0 for e in img["frontier"]) and len(img["frontier"]) <= 1
        assert all(e["radius"] == 0.0 for e in txt["frontier"])
        assert [e["budget"] for e in txt["frontier"]] == list(range(len(txt["frontier"])))
        for base in (img, txt):
            assert base["p_a_lower"] == float(clopper_pearson_lower(base["counts"]["target"], n, alpha))
    # the baselines certify something on the demo (the image-only radius and the text-only budget)
    assert any(r["baselines"]["image-only"]["frontier"] for r in data["inputs"])
    assert any(len(r["baselines"]["text-only"]["frontier"]) > 1 for r in data["inputs"])
    verification = verify_results(load_results(with_baselines["out"] / RESULTS_NAME))
    assert verification.passed
    names = {c.input_id for c in verification.certificates}
    assert any(x.endswith("(image-only)") for x in names) and any(x.endswith("(text-only)") for x in names)


def test_inflated_baseline_is_caught(with_baselines: dict[str, Any]) -> None:
    data = json.loads(json.dumps(with_baselines["json"]))
    rec = next(r for r in data["inputs"] if r["baselines"]["image-only"]["frontier"])
    rec["baselines"]["image-only"]["frontier"][0]["radius"] *= 3
    verification = verify_results(parse_results(data))
    assert not verification.passed
    assert [c.input_id for c in verification.failed] == [f"{rec['id']} (image-only)"]
    txt = next(r for r in data["inputs"] if r["baselines"]["text-only"]["frontier"])
    txt["baselines"]["text-only"]["frontier"][0]["radius"] = 0.5
    with pytest.raises(ValueError, match="text-only baseline certifies radius 0 only"):
        parse_results(data)


@pytest.mark.slow
def test_baselines_same_across_batch_size_and_resume(with_baselines: dict[str, Any], tmp_path: Path) -> None:
    spec = with_baselines["spec"]
    out = tmp_path / "killed"
    run_audit(prepare(spec, batch_size=7), out)
    assert deterministic_view(json.loads((out / RESULTS_NAME).read_text())) == deterministic_view(
        with_baselines["json"])
    lines = (out / LOG_NAME).read_bytes().split(b"\n")
    (out / LOG_NAME).write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:50])  # 2 inputs + a torn line
    (out / RESULTS_NAME).unlink()
    run_audit(prepare(spec, batch_size=64), out, resume=True)
    assert deterministic_view(json.loads((out / RESULTS_NAME).read_text())) == deterministic_view(
        with_baselines["json"])


def test_config_refuses_repeated_or_unknown_baselines(make_spec: Callable[..., Any]) -> None:
    for bad in (["image-only", "image-only"], ["audio-only"]):
        with pytest.raises(ValueError, match="baselines"):
            make_spec(certify={"baselines": bad})


def test_the_papers_table() -> None:
    def rec(correct: bool, frontier: list[tuple[int, float]], baselines: dict[str, Any]) -> dict[str, Any]:
        return {"correct": correct, "decision": "flag" if correct else "no-flag", "baselines": baselines,
                "frontier": [{"budget": d, "radius": r} for d, r in frontier]}

    def base(frontier: list[tuple[int, float]]) -> dict[str, Any]:
        return {"correct": True, "decision": "flag", "frontier": [{"budget": d, "radius": r} for d, r in frontier]}

    inputs = [rec(True, [(0, 2.0), (1, 1.0), (2, 0.5)], {"image-only": base([(0, 3.0)]),
                                                         "text-only": base([(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0)])}),
              rec(False, [(0, 9.0), (1, 9.0)], {"image-only": base([(0, 1.0)]), "text-only": base([(0, 0.0)])})]
    table = mean_certified(inputs)
    assert table["hybrid (d = 1)"] == {"radius": 0.5, "budget": 1.0, "n_inputs": 2}
    assert table["image-only"]["radius"] == 2.0 and table["image-only"]["budget"] == 0.0
    assert table["text-only"]["budget"] == 1.5 and table["text-only"]["radius"] == 0.0
    assert "image-only" not in mean_certified([rec(True, [(0, 1.0)], {})])
    assert not math.isnan(table["text-only"]["budget"])
