"""The results bundle schema: what it accepts (the contract, extra fields) and what it rejects (clearly)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import rfc8785

from hybridcert.reports.bundle import Bundle, load_criteria, parse_results
from hybridcert.results.schema import AuditResults
from hybridcert.theory import HybridNoise, clopper_pearson_lower
from tests.reports.synthetic import make_results


def _bytes(obj: object, **kw: object) -> bytes:
    return json.dumps(obj, **kw).encode()  # type: ignore[arg-type]


def test_synthetic_fixture_follows_the_contract() -> None:
    raw = make_results()
    b = parse_results(_bytes(raw))
    assert len(b.results.inputs) == 30
    noise = HybridNoise(**raw["config"]["noise"])
    for rec in raw["inputs"][:8]:
        p = clopper_pearson_lower(rec["counts"]["target"], rec["counts"]["n"], raw["config"]["alpha"])
        assert rec["p_a_lower"] == float(p)
        front = noise.frontier(rec["p_a_lower"], tau=rec["threshold"], max_budget=4)
        assert [(f["budget"], f["radius"]) for f in rec["frontier"]] == front
    decisions = {r["decision"] for r in raw["inputs"]}
    assert decisions == {"flag", "no-flag", "abstain"}  # the fixture exercises every branch


def test_unknown_fields_are_kept_and_canonical_bytes_ignore_formatting() -> None:
    raw = make_results(n_inputs=6)
    pretty = parse_results(_bytes(raw, indent=2))
    compact = parse_results(_bytes(raw, separators=(",", ":")))
    assert pretty.file_sha256 != compact.file_sha256
    assert pretty.canonical == compact.canonical == rfc8785.dumps(raw)
    assert pretty.report_id == compact.report_id
    assert b"runner_extra" in pretty.canonical


def test_seed_as_safe_integer_is_accepted_as_string() -> None:
    raw = make_results(n_inputs=3)
    raw["config"]["seed"] = 12345
    assert parse_results(_bytes(raw)).results.config.seed == "12345"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["config"].__setitem__("seed", 2**64 - 1), "above 2^53"),
        (lambda r: r["inputs"][0].__setitem__("seconds", 2**60), "inputs[0].seconds"),
        (lambda r: r.__setitem__("schema", "hybridcert/results/v9"), "unsupported schema"),
        (lambda r: r["config"].__setitem__("alpha", 1.5), "config.alpha"),
        (lambda r: r["model"].__setitem__("sha256", "xyz"), "model.sha256"),
        (lambda r: r["inputs"][0]["counts"].__setitem__("target", 5000), "exceeds counts.n"),
        (lambda r: r["inputs"][0].__setitem__("correct", not r["inputs"][0]["correct"]), "correct="),
        (lambda r: r["inputs"][0]["frontier"].__setitem__(0, {"budget": 1, "radius": 0.1}), "without gaps"),
        (lambda r: r["inputs"][0]["frontier"].__setitem__(0, {"budget": 0, "radius": None}), "radius_infinite"),
        (lambda r: r["inputs"][0].__setitem__("p_a_lower", 0.9999), "exceeds the Clopper-Pearson bound"),
        (lambda r: r["inputs"][1].__setitem__("id", r["inputs"][0]["id"]), "more than once"),
        (lambda r: r.__setitem__("created", "2026-11-25 16:00"), "created"),
        (lambda r: r["aggregates"].__setitem__("n_inputs", 99), "aggregates.n_inputs"),
    ],
)
def test_bad_results_are_clear_errors(mutate: object, message: str) -> None:
    raw = copy.deepcopy(make_results(n_inputs=5))
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message.replace("^", r"\^").replace(".", r"\.").replace("[", r"\[")):
        parse_results(_bytes(raw))


def test_nan_and_infinity_literals_are_rejected() -> None:
    text = json.dumps(make_results(n_inputs=3))
    bad = text.replace('"seconds": ', '"seconds": NaN, "x": ', 1)
    with pytest.raises(ValueError, match="NaN is not allowed"):
        parse_results(bad.encode())
    with pytest.raises(ValueError, match="Infinity"):
        parse_results(text.replace('"alpha": 0.001', '"alpha": Infinity').encode())
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_results(b"{not json")


def test_abstain_with_a_frontier_is_rejected() -> None:
    raw = make_results(n_inputs=30)
    i = next(k for k, r in enumerate(raw["inputs"]) if r["frontier"])
    raw["inputs"][i]["decision"] = "abstain"
    raw["inputs"][i]["correct"] = False
    with pytest.raises(ValueError, match="abstain"):
        parse_results(_bytes(raw))


def with_infinite_radius(raw: dict) -> tuple[dict, str]:  # type: ignore[type-arg]
    """p_a_lower = 1 and the infinite radius the engine gives for it at d = 0 (no confidence bound of finite
    counts gives p_a_lower = 1, so the reader refuses such a file: see ``unchecked_bundle``)."""
    rec = next(r for r in raw["inputs"] if r["frontier"] and r["correct"])
    rec["p_a_lower"] = 1.0
    rec["frontier"] = [{"budget": 0, "radius": None, "radius_infinite": True}]
    return raw, rec["id"]


def unchecked_bundle(raw: dict) -> Bundle:  # type: ignore[type-arg]
    """A bundle built from the schema alone, skipping the reader's whole-file checks (to test rendering)."""
    data = _bytes(raw)
    return Bundle(results=AuditResults.model_validate(raw, strict=True), raw=raw, file_bytes=data,
                  source="results.json")


def test_infinite_radius_is_null_plus_flag() -> None:
    raw, rid = with_infinite_radius(make_results(n_inputs=3))
    got = next(r for r in unchecked_bundle(raw).results.inputs if r.id == rid)
    assert got.frontier[0].value == np.inf and got.frontier[0].radius is None
    with pytest.raises(ValueError, match="exceeds the Clopper-Pearson bound"):
        parse_results(_bytes(raw))


def test_criteria_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"acceptance": [{"budget": 0, "radius": 0.1, "min_certified_rate": 0.8}]}))
    (c,) = load_criteria(path)
    assert (c.budget, c.radius, c.min_certified_rate, c.statistic) == (0, 0.1, 0.8, "observed")
    path.write_text(json.dumps([{"budget": 0, "radius": -1, "min_certified_rate": 0.8}]))
    with pytest.raises(ValueError, match="criterion 0: radius"):
        load_criteria(path)


def _sequential(raw: dict, bump: float = 0.0) -> dict:  # type: ignore[type-arg]
    from hybridcert.theory.sequential import cs_lower

    raw["config"].update(confidence_bound="beta-mixture-cs",
                         sequential={"confidence_bound": "beta-mixture-cs", "method": "anytime-valid CS",
                                     "prior": {"a": 0.5, "b": 0.5}, "alpha": raw["config"]["alpha"],
                                     "n_max": 1000, "chunk": 100, "points": [{"budget": 0, "radius": 0.1}]})
    noise = HybridNoise(**raw["config"]["noise"])
    for rec in raw["inputs"]:
        bound = float(cs_lower(rec["counts"]["target"], rec["counts"]["n"], raw["config"]["alpha"], (0.5, 0.5)))
        rec["p_a_lower"] = min(1.0, bound + bump)
        front = noise.frontier(rec["p_a_lower"], tau=rec["threshold"], max_budget=raw["config"]["max_budget"])
        rec["frontier"] = [{"budget": d, "radius": r} for d, r in front]
        rec["decision"] = rec["side"] if front else "abstain"
        rec["correct"] = (rec["decision"] == "flag" and rec["label"] == 1) or (
            rec["decision"] == "no-flag" and rec["label"] == 0)
    return raw


def test_sequential_results_are_checked_against_the_confidence_sequence() -> None:
    from hybridcert.theory import clopper_pearson_lower

    raw = _sequential(make_results(n_inputs=10))
    assert parse_results(_bytes(raw)).results.config.confidence_bound == "beta-mixture-cs"
    # the same p_a_lower values under a Clopper-Pearson claim: fine (CS is wider); a bump above CS is not
    bad = _sequential(make_results(n_inputs=10), bump=1e-6)
    with pytest.raises(ValueError, match="exceeds the confidence-sequence bound"):
        parse_results(_bytes(bad))
    rec = raw["inputs"][0]
    assert rec["p_a_lower"] <= float(clopper_pearson_lower(rec["counts"]["target"], rec["counts"]["n"], 0.001))


def test_frontier_claims_are_checked_against_the_engine() -> None:
    raw = make_results(n_inputs=30)
    rec = next(r for r in raw["inputs"] if len(r["frontier"]) >= 2)
    over = copy.deepcopy(raw)
    target = next(r for r in over["inputs"] if r["id"] == rec["id"])
    target["frontier"][1]["radius"] *= 1 + 1e-6
    target["frontier"][0]["radius"] = max(target["frontier"][0]["radius"], target["frontier"][1]["radius"])
    with pytest.raises(ValueError, match="exceeds the certified radius"):
        parse_results(_bytes(over))
    extra = copy.deepcopy(raw)
    target = next(r for r in extra["inputs"] if r["id"] == rec["id"])
    last = target["frontier"][-1]
    target["frontier"].append({"budget": last["budget"] + 1, "radius": 0.0})
    with pytest.raises(ValueError, match="does not certify it"):
        parse_results(_bytes(extra))
    under = copy.deepcopy(raw)
    target = next(r for r in under["inputs"] if r["id"] == rec["id"])
    for point in target["frontier"]:
        point["radius"] *= 0.5  # conservative claims are fine
    parse_results(_bytes(under))
