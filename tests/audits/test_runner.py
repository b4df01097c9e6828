"""The certify loop: sound certificates from the counts, results independent of batching and of resumption."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hybridcert.audits.certification import side_threshold
from hybridcert.audits.checkpoint import LOG_NAME, RESULTS_NAME
from hybridcert.audits.config import AuditSpec
from hybridcert.audits.counting import count_class_one
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.audits.samplers import ESTIMATE
from hybridcert.results.canonical import canonical_dumps
from hybridcert.results.reader import read_results
from hybridcert.results.schema import AuditResults, deterministic_view
from hybridcert.theory import HybridNoise, clopper_pearson_lower

SpecMaker = Callable[..., AuditSpec]


def run(spec: AuditSpec, out: Path, **kwargs: object) -> dict:
    run_audit(prepare(spec, batch_size=kwargs.pop("batch_size", None)), out, **kwargs)  # type: ignore[arg-type]
    return json.loads((out / RESULTS_NAME).read_text(encoding="utf-8"))


def same(a: dict, b: dict) -> bool:
    return canonical_dumps(deterministic_view(a)) == canonical_dumps(deterministic_view(b))


def test_results_follow_the_contract_and_the_certificates_follow_from_the_counts(
    make_spec: SpecMaker, tmp_path: Path
) -> None:
    spec = make_spec()
    res = run(spec, tmp_path / "a")
    parsed = AuditResults.model_validate(res)
    assert res["schema"] == "hybridcert/results/v1" and res["config"]["seed"] == str(spec.seed)
    assert res["dataset"]["n_inputs"] == len(res["inputs"]) == 6 and len(res["dataset"]["sha256"]) == 64
    assert len(res["model"]["sha256"]) == 64
    assert res["config"]["sampling"] == "one-pass" and "one sampling pass" in res["config"]["multiple_testing"]
    cfg = res["config"]
    noise = HybridNoise(cfg["noise"]["kernel"], cfg["noise"]["vocab_size"], cfg["noise"]["beta"],
                        cfg["noise"]["sigma"])
    assert cfg["noise"]["vocab_size"] == 32
    for item in res["inputs"]:
        # recompute everything downstream of the counts with the theory engine
        counts = item["counts"]
        assert counts["n"] == cfg["n"] and 0 <= counts["target"] <= counts["n"]
        side_flag = counts["selection_target"] is not None and item["target_class"] == 1
        assert item["side"] == ("flag" if item["target_class"] == 1 else "no-flag")
        p_sel_one = (counts["selection_target"] if side_flag else cfg["n0"] - counts["selection_target"]) / cfg["n0"]
        assert (p_sel_one >= cfg["tau"]) == (item["target_class"] == 1)
        p_lower = float(clopper_pearson_lower(counts["target"], cfg["n"], cfg["alpha"]))
        assert item["p_a_lower"] == p_lower
        threshold = cfg["tau"] if item["side"] == "flag" else float(np.nextafter(1 - cfg["tau"], 2))
        assert item["threshold"] == threshold
        expected = noise.frontier(p_lower, tau=threshold, max_budget=cfg["max_budget"])
        assert [(p["budget"], p["radius"]) for p in item["frontier"]] == expected
        assert item["decision"] == (item["side"] if expected else "abstain")
        flagged = item["decision"] == "flag"
        assert item["correct"] == (item["decision"] != "abstain" and flagged == (item["label"] == 1))
        radii = [p["radius"] for p in item["frontier"]]
        assert radii == sorted(radii, reverse=True)
    agg = parsed.aggregates
    assert agg.n_inputs == 6 and agg.clean_rate == sum(i.correct for i in parsed.inputs) / 6
    for cell in agg.certified:
        assert cell.count == sum(i.certified(cell.budget, cell.radius) for i in parsed.inputs)
    # the demo filter is accurate: most small-demo inputs are decided correctly
    assert agg.clean_rate >= 0.5


def test_counts_are_the_filter_decisions_on_the_seeded_samples(make_spec: SpecMaker) -> None:
    """count_class_one equals a hand-rolled loop over the chunks, calling the filter one sample at a time."""
    audit = prepare(make_spec(certify={"chunk_size": 50}))
    item = audit.dataset.inputs[0]
    span = audit.threat.noised_positions(len(item.tokens))
    import torch

    tokens = torch.tensor(item.tokens)
    image = torch.from_numpy(item.image)
    expected = 0
    for chunk, size in [(0, 50), (1, 50), (2, 20)]:
        toks, imgs = audit.sampler.draw(item.id, tokens, image, span, ESTIMATE, chunk, size)
        expected += sum(int(audit.filter(toks[i:i + 1], imgs[i:i + 1]).item()) for i in range(size))
    assert count_class_one(audit, item, ESTIMATE, 120, span) == expected


def test_batch_size_does_not_change_the_results(make_spec: SpecMaker, tmp_path: Path) -> None:
    spec = make_spec(certify={"chunk_size": 64})
    results = [run(spec, tmp_path / f"b{bs}", batch_size=bs) for bs in (17, 64, 1000)]
    assert same(results[0], results[1]) and same(results[1], results[2])
    assert results[0]["environment"]["batch_size"] == 17


def test_resume_after_a_torn_log_equals_an_uninterrupted_run(make_spec: SpecMaker, tmp_path: Path) -> None:
    spec = make_spec()
    full = run(spec, tmp_path / "full")
    log = (tmp_path / "full" / LOG_NAME).read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(log) == 7 and json.loads(log[0])["type"] == "header"
    part = tmp_path / "part"
    part.mkdir()
    # header, two finished inputs, and half of a third line (the process died mid-write)
    (part / LOG_NAME).write_text("".join(log[:3]) + log[3][:40], encoding="utf-8")
    resumed = run(spec, part, resume=True)
    assert same(full, resumed)
    lines = (part / LOG_NAME).read_text(encoding="utf-8").splitlines()
    ids = [json.loads(x)["result"]["id"] for x in lines[1:]]
    assert sorted(ids) == sorted(i["id"] for i in full["inputs"]) and len(ids) == len(set(ids))
    # the two logged inputs were not recomputed: their timings come from the first run's log
    first_two = {json.loads(x)["result"]["id"]: json.loads(x)["result"]["seconds"] for x in log[1:3]}
    for item in resumed["inputs"]:
        if item["id"] in first_two:
            assert item["seconds"] == first_two[item["id"]]


def test_resume_of_a_finished_audit_rewrites_the_same_results(make_spec: SpecMaker, tmp_path: Path) -> None:
    spec = make_spec()
    first = run(spec, tmp_path / "o")
    again = run(spec, tmp_path / "o", resume=True)
    assert same(first, again)
    assert [i["seconds"] for i in first["inputs"]] == [i["seconds"] for i in again["inputs"]]


def test_resume_refuses_another_audits_log(make_spec: SpecMaker, tmp_path: Path) -> None:
    run(make_spec(), tmp_path / "o")
    (tmp_path / "o" / RESULTS_NAME).unlink()
    before = (tmp_path / "o" / LOG_NAME).read_bytes()
    with pytest.raises(ValueError, match="different audit"):
        run(make_spec(certify={"alpha": 0.01}), tmp_path / "o", resume=True)
    assert (tmp_path / "o" / LOG_NAME).read_bytes() == before
    assert not (tmp_path / "o" / RESULTS_NAME).exists()


def test_an_existing_audit_is_not_overwritten_by_accident(make_spec: SpecMaker, tmp_path: Path) -> None:
    spec = make_spec()
    run(spec, tmp_path / "o")
    with pytest.raises(ValueError, match="already holds an audit"):
        run(spec, tmp_path / "o")
    with pytest.raises(ValueError, match="no audit log"):
        run(spec, tmp_path / "fresh", resume=True)
    res = run(spec, tmp_path / "o", overwrite=True)
    assert len(res["inputs"]) == 6


def test_a_different_seed_gives_different_counts(make_spec: SpecMaker, tmp_path: Path) -> None:
    a = run(make_spec(seed=1), tmp_path / "s1")
    b = run(make_spec(seed=2), tmp_path / "s2")
    assert [i["counts"] for i in a["inputs"]] != [i["counts"] for i in b["inputs"]]


def test_fixed_target_class_and_no_selection_samples(make_spec: SpecMaker, tmp_path: Path) -> None:
    res = run(make_spec(certify={"n0": 0, "target_class": 1}), tmp_path / "t")
    for item in res["inputs"]:
        assert item["side"] == "flag" and item["threshold"] == 0.5 and item["counts"]["n0"] == 0
        assert item["decision"] in ("flag", "abstain")
        # label-0 inputs are rarely flagged: on the flag side they mostly abstain
        if item["decision"] == "flag":
            assert item["p_a_lower"] >= 0.5


def test_per_budget_mode_splits_alpha_and_says_so(make_spec: SpecMaker, tmp_path: Path) -> None:
    spec = make_spec(certify={"sampling": "per-budget", "max_budget": 2},
                     threat_model={"kind": "suffix-inplace", "span": 4})
    res = run(spec, tmp_path / "p")
    cfg = res["config"]
    assert "Bonferroni" in cfg["multiple_testing"] and "alpha / 3" in cfg["multiple_testing"]
    noise = HybridNoise(cfg["noise"]["kernel"], 32, cfg["noise"]["beta"], cfg["noise"]["sigma"])
    for item in res["inputs"]:
        targets = item["counts"]["target_per_budget"]
        assert len(targets) == 3 and item["counts"]["target"] == targets[0]
        lowers = [float(clopper_pearson_lower(k, cfg["n"], cfg["alpha"] / 3)) for k in targets]
        assert item["p_a_lower_per_budget"] == lowers and item["p_a_lower"] == lowers[0]
        threshold = side_threshold(cfg["tau"], item["target_class"])
        prev = np.inf
        for point in item["frontier"]:
            d = point["budget"]
            r = noise.frontier_radii(lowers[d], tau=threshold, max_budget=d)[0][d]
            prev = min(prev, float(r))
            assert point["radius"] == prev


def test_suffix_append_noises_only_the_pad(make_spec: SpecMaker, tmp_path: Path) -> None:
    spec = make_spec(threat_model={"kind": "suffix-append", "span": 3}, tokens={"pad_id": 10},
                     certify={"max_budget": 5})
    audit = prepare(spec)
    item = audit.dataset.inputs[0]
    import torch

    span = audit.threat.noised_positions(len(item.tokens))
    assert span == (len(item.tokens), len(item.tokens) + 3)
    clean = torch.tensor(list(item.tokens) + [10, 10, 10])
    toks, _ = audit.sampler.draw(item.id, clean, torch.from_numpy(item.image), span, ESTIMATE, 0, 256)
    assert (toks[:, : len(item.tokens)] == clean[: len(item.tokens)]).all()
    assert (toks[:, span[0]:] != 10).any()
    res = run(spec, tmp_path / "sa")
    # the budget cannot exceed the pad span
    assert all(item["max_budget"] == 3 for item in res["inputs"])
    assert all(p["budget"] <= 3 for item in res["inputs"] for p in item["frontier"])


def test_results_file_is_canonical(make_spec: SpecMaker, tmp_path: Path) -> None:
    run(make_spec(), tmp_path / "c")
    raw = (tmp_path / "c" / RESULTS_NAME).read_text(encoding="utf-8")
    assert raw == canonical_dumps(json.loads(raw)) + "\n"
    assert read_results(tmp_path / "c" / RESULTS_NAME).results.config.n == 200
    assert not list((tmp_path / "c").glob(".results.json.*"))


def test_cli_audit_json_and_device_auto(write_config: Callable[..., Path], tmp_path: Path) -> None:
    import torch
    from typer.testing import CliRunner

    from hybridcert.audits.preparation import run_device as resolve_device
    from hybridcert.cli import app

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    config = write_config(run={"device": "auto"})
    result = CliRunner().invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "o"), "--json",
                                      "--batch-size", "100"])
    assert result.exit_code == 0, result.stderr
    agg = json.loads(result.stdout)
    res = read_results(tmp_path / "o" / RESULTS_NAME).results
    assert agg == res.aggregates.model_dump(mode="json") and agg["n_inputs"] == 6
    assert res.environment["batch_size"] == 100 and res.environment["device"] == str(resolve_device("auto"))
    result = CliRunner().invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "already holds an audit" in result.stderr


def test_a_torn_header_is_started_again(make_spec: SpecMaker, tmp_path: Path) -> None:
    spec = make_spec()
    full = run(spec, tmp_path / "full")
    part = tmp_path / "part"
    part.mkdir()
    (part / LOG_NAME).write_bytes(b'{"type":"hea')  # killed while writing the header
    resumed = run(spec, part, resume=True)
    assert same(full, resumed)
    lines = (part / LOG_NAME).read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["type"] == "header" and len(lines) == 7


def test_any_split_of_the_inputs_gives_the_same_per_input_results(
    make_spec: SpecMaker, demo_base: tuple[Path, dict], tmp_path: Path
) -> None:
    root, _ = demo_base
    full = run(make_spec(), tmp_path / "full")
    lines = (root / "data" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    # a shard holding inputs 4, 1 (in another order), as another worker would get them
    shard = root / "data" / f"shard-{tmp_path.name}.jsonl"
    shard.write_text(lines[4] + "\n" + lines[1] + "\n", encoding="utf-8")
    part = run(make_spec(dataset={"manifest": str(shard)}), tmp_path / "shard")
    by_id = {i["id"]: i for i in full["inputs"]}
    assert [i["id"] for i in part["inputs"]] == [json.loads(lines[4])["id"], json.loads(lines[1])["id"]]
    for item in part["inputs"]:
        a = {k: v for k, v in item.items() if k != "seconds"}
        b = {k: v for k, v in by_id[item["id"]].items() if k != "seconds"}
        assert a == b


def test_the_independent_verifier_proves_every_certificate_of_an_audit(make_spec: SpecMaker, tmp_path: Path) -> None:
    """results.json meets its contract with ``hybridcert verify --results`` (interval-arithmetic proofs)."""
    from typer.testing import CliRunner

    from hybridcert.cli import app

    res = run(make_spec(), tmp_path / "v")
    assert any(item["frontier"] for item in res["inputs"])
    result = CliRunner().invoke(app, ["verify", "--results", str(tmp_path / "v" / RESULTS_NAME)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "0 not proved" in result.stdout


def test_cpu_audits_default_to_one_torch_thread(make_spec: SpecMaker, tmp_path: Path) -> None:
    """``[run] threads`` unset: 1 thread per process on the CPU (faster on a shared machine, docs/benchmarks.md);
    the caller's setting is restored afterwards; an explicit value wins."""
    import torch

    from hybridcert.audits.runner import torch_threads

    torch.set_num_threads(2)
    spec = make_spec(run={"threads": None, "device": "cpu"}, certify={"n": 40, "n0": 8})
    res = run(spec, tmp_path / "a")
    assert res["environment"]["torch_threads"] == 1 and torch.get_num_threads() == 2
    assert torch_threads(prepare(make_spec(run={"threads": 2, "device": "cpu"}))) == 2
