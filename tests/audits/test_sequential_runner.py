"""Sequential certification in the audit runner (issue 7): every input stops by the confidence sequence's rule,
its certificate follows from the bound at the stopping time, and the results do not depend on batching, waves,
resumption or the executor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hybridcert.audits.certification import sequential_rule
from hybridcert.audits.checkpoint import LOG_NAME, RESULTS_NAME
from hybridcert.audits.config import AuditSpec
from hybridcert.audits.counting import WorkItem, count_class_one
from hybridcert.audits.executors import InProcessExecutor, split_chunks
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.audits.samplers import ESTIMATE
from hybridcert.results.canonical import canonical_dumps
from hybridcert.results.schema import deterministic_view
from hybridcert.theory import HybridNoise, cs_lower
from hybridcert.theory.sequential import decide

SpecMaker = Callable[..., AuditSpec]
CAP = 1500
CHUNK = 128
SEQ = {"certify": {"stopping": "sequential", "requested": [[0, 0.25], [1, 0.1]], "n": CAP, "chunk_size": CHUNK}}


def run(spec: AuditSpec, out: Path, **kwargs: object) -> dict:
    run_audit(prepare(spec, batch_size=kwargs.pop("batch_size", None)), out, **kwargs)  # type: ignore[arg-type]
    return json.loads((out / RESULTS_NAME).read_text(encoding="utf-8"))


def same(a: dict, b: dict) -> bool:
    return canonical_dumps(deterministic_view(a)) == canonical_dumps(deterministic_view(b))


@pytest.fixture(scope="module")
def seq_results(tmp_path_factory: pytest.TempPathFactory, demo_base: tuple[Path, dict]) -> dict:
    from hybridcert.audits.config import parse_spec
    from tests.audits.conftest import _merge

    root, data = demo_base
    out = tmp_path_factory.mktemp("seq") / "out"
    return run(parse_spec(_merge(data, SEQ), root), out) | {"_out": str(out)}


def test_each_input_stops_by_the_rule_and_its_certificate_follows_from_the_bound(
    seq_results: dict, make_spec: SpecMaker
) -> None:
    res = seq_results
    cfg = res["config"]
    assert cfg["confidence_bound"] == "beta-mixture-cs" and cfg["n"] == CAP
    seq = cfg["sequential"]
    assert seq["n_max"] == CAP and seq["chunk"] == CHUNK and seq["alpha"] == cfg["alpha"]
    assert [(p["budget"], p["radius"]) for p in seq["points"]] == [(0, 0.25), (1, 0.1)]
    noise = HybridNoise(cfg["noise"]["kernel"], cfg["noise"]["vocab_size"], cfg["noise"]["beta"],
                        cfg["noise"]["sigma"])
    audit = prepare(make_spec(**SEQ))
    for item in res["inputs"]:
        n, k = item["counts"]["n"], item["counts"]["target"]
        assert n == CAP or (n % CHUNK == 0 and 0 < n < CAP)
        p_lower = float(cs_lower(k, n, cfg["alpha"]))
        assert item["p_a_lower"] == p_lower
        rule = sequential_rule(audit.noise, audit.spec.certify, item["target_class"])
        assert rule.threshold == item["threshold"]
        # the rule stops here, with the reason written, and not one look earlier (recount the earlier chunks)
        dec = decide(k, n, rule)
        assert bool(dec.stop) and str(dec.status) == item["stopped"]
        if n > CHUNK:
            index = next(i for i, x in enumerate(audit.dataset.inputs) if x.id == item["id"])
            inp = audit.dataset.inputs[index]
            span = audit.threat.noised_positions(len(inp.tokens))
            ones = count_class_one(audit, inp, ESTIMATE, (n - 1) // CHUNK * CHUNK, span)
            before = ones if item["target_class"] == 1 else (n - 1) // CHUNK * CHUNK - ones
            assert str(decide(before, (n - 1) // CHUNK * CHUNK, rule).status) == "continue"
        expected = noise.frontier(p_lower, tau=item["threshold"], max_budget=cfg["max_budget"])
        assert [(p["budget"], p["radius"]) for p in item["frontier"]] == expected
        if item["stopped"] == "certified":
            assert all(any(p["budget"] == d and (p["radius_infinite"] or p["radius"] >= e) for p in item["frontier"])
                       for d, e in SEQ["certify"]["requested"])
    used = [item["counts"]["n"] for item in res["inputs"]]
    # the demo's clear inputs stop long before the cap
    assert sum(u < CAP // 4 for u in used) >= 3, used


def test_the_verifier_proves_every_sequential_certificate(seq_results: dict) -> None:
    from typer.testing import CliRunner

    from hybridcert.cli import app

    assert any(item["frontier"] for item in seq_results["inputs"])
    result = CliRunner().invoke(app, ["verify", "--results", str(Path(seq_results["_out"]) / RESULTS_NAME)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "0 not proved" in result.stdout


def test_batch_size_and_wave_do_not_change_sequential_results(
    seq_results: dict, make_spec: SpecMaker, tmp_path: Path
) -> None:
    base = {k: v for k, v in seq_results.items() if k != "_out"}
    a = run(make_spec(**SEQ), tmp_path / "a", batch_size=50)
    b = run(make_spec(**SEQ, run={"wave": 1}), tmp_path / "b", batch_size=1000)
    assert same(base, a) and same(base, b)


def test_sequential_resume_after_a_torn_log(seq_results: dict, make_spec: SpecMaker, tmp_path: Path) -> None:
    base = {k: v for k, v in seq_results.items() if k != "_out"}
    log = (Path(seq_results["_out"]) / LOG_NAME).read_text(encoding="utf-8").splitlines(keepends=True)
    assert all(json.loads(line)["result"]["stopped"] for line in log[1:])
    part = tmp_path / "part"
    part.mkdir()
    (part / LOG_NAME).write_text("".join(log[:3]) + log[3][:50], encoding="utf-8")
    assert same(base, run(make_spec(**SEQ), part, resume=True))


def test_chunk_work_items_add_up_to_the_whole_range(make_spec: SpecMaker) -> None:
    """What the Ray executor relies on: per-chunk counts, computed separately, sum to the range's count."""
    audit = prepare(make_spec(certify={"chunk_size": 40}))
    inp = audit.dataset.inputs[2]
    span = audit.threat.noised_positions(len(inp.tokens))
    whole = WorkItem(2, ESTIMATE, span, 0, 230)
    pieces = split_chunks(whole, 40)
    assert [p.count for p in pieces] == [40] * 5 + [30] and [p.first_chunk for p in pieces] == list(range(6))
    per_piece = [k for k, _ in InProcessExecutor().count(audit, pieces)]
    assert sum(per_piece) == count_class_one(audit, inp, ESTIMATE, 230, span)
    # a range starting at chunk 2 is the tail of the whole range
    assert sum(per_piece[2:]) == count_class_one(audit, inp, ESTIMATE, 150, span, first_chunk=2)


@pytest.mark.parametrize(
    ("certify", "fragment"),
    [
        ({"requested": [[0, 0.1]]}, "requested applies to stopping = \"sequential\" only"),
        ({"stopping": "sequential"}, "needs requested"),
        ({"stopping": "sequential", "requested": [[9, 0.1]]}, "requested budget 9"),
        ({"stopping": "sequential", "requested": [[0, -1.0]]}, "requested radius -1.0"),
        ({"stopping": "sequential", "requested": [[0, 0.1]], "sampling": "per-budget"}, "needs sampling"),
    ],
)
def test_bad_sequential_config(make_spec: SpecMaker, certify: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match="field certify") as info:
        make_spec(certify=certify)
    assert fragment in str(info.value)


def test_ray_missing_is_a_clear_error(make_spec: SpecMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if hybridcert[ray] were not installed
    with pytest.raises(ValueError, match=r"hybridcert\[ray\]"):
        run_audit(prepare(make_spec()), tmp_path / "o", executor="ray")
    assert not (tmp_path / "o" / LOG_NAME).exists()
