"""The regression gate on realistic results files (frontiers from the real theory engine, see compare_support).

Expected values come from the counts the tests chose and from a direct reading of the results contract
(:func:`certified_ids`), never from the code under test.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from hybridcert.regression.gate import (
    Gate,
    IncomparableAudits,
    Point,
    TamperedInput,
    compare_audits,
    compare_paths,
    load_audit,
    parse_results,
)
from tests.audits.compare_support import build_results, sign_audit, synthetic_specs, weaken, write_audit

SPECS = synthetic_specs(40, seed=7)
# four confident, correct inputs (kind 0..7 in synthetic_specs: targets >= 950, certified at d = 0)
WEAKENED = {"x0000", "x0003", "x0011", "x0024"}


def certified_ids(results: dict[str, Any], budget: int, radius: float) -> set[str]:
    """The contract's definition, read directly: correct, not abstain, budget in the frontier, radius >= eps."""
    out = set()
    for inp in results["inputs"]:
        if not inp["correct"] or inp["decision"] == "abstain":
            continue
        for entry in inp["frontier"]:
            if entry["budget"] == budget:
                infinite = entry["radius"] is None and entry.get("radius_infinite") is True
                if infinite or entry["radius"] >= radius:
                    out.add(inp["id"])
    return out


@pytest.fixture(scope="module")
def base_results() -> dict[str, Any]:
    return build_results(SPECS)


@pytest.fixture(scope="module")
def weak_results() -> dict[str, Any]:
    return build_results(weaken(SPECS, WEAKENED, target=500))


def test_certified_follows_the_contract(base_results: dict[str, Any]) -> None:
    audit = parse_results(base_results)
    assert audit.ids == tuple(s.id for s in SPECS)
    for d in range(5):
        for eps in (0.0, 0.1, 0.3, 0.6, 0.9, 1.2):
            got = {audit.ids[i] for i, ok in enumerate(audit.certified(d, eps)) if ok}
            assert got == certified_ids(base_results, d, eps), (d, eps)
    # the fixture is realistic: some abstentions, some wrong decisions, frontiers beyond d = 0
    decisions = [i["decision"] for i in base_results["inputs"]]
    assert "abstain" in decisions and not all(i["correct"] for i in base_results["inputs"])
    assert certified_ids(base_results, 2, 0.0)
    # a wrong decision is never certified even though it has a frontier
    wrong = [i for i in base_results["inputs"] if not i["correct"] and i["frontier"]]
    assert wrong and all(i["id"] not in certified_ids(base_results, 0, 0.0) for i in wrong)


def test_a_radius_equal_to_eps_is_certified_and_one_ulp_more_is_not(base_results: dict[str, Any]) -> None:
    audit = parse_results(base_results)
    for inp in base_results["inputs"]:
        if not inp["correct"]:
            continue
        i = audit.ids.index(inp["id"])
        for entry in inp["frontier"]:
            d, r = entry["budget"], entry["radius"]
            assert audit.certified(d, r)[i]
            assert not audit.certified(d, math.nextafter(r, math.inf))[i]


def test_empty_audits_compare(base_results: dict[str, Any]) -> None:
    empty = copy.deepcopy(base_results)
    empty["inputs"] = []
    empty["aggregates"]["n_inputs"] = 0
    res = compare_audits(parse_results(empty), parse_results(empty))
    assert res.verdict == "pass" and [(r.budget, r.radius) for r in res.grid] == [(0, 0.0)]
    assert res.grid[0].before_ci == (0.0, 1.0)


def test_an_audit_compared_with_itself_passes(base_results: dict[str, Any]) -> None:
    audit = parse_results(base_results)
    res = compare_audits(audit, audit)
    assert res.verdict == "pass" and res.reasons == ()
    assert res.lost == () and res.gained == ()
    assert res.grid and all(r.delta == 0 and r.p_value == 1.0 for r in res.grid)
    assert len(res.deltas) == len(res.grid)  # default gate: the whole grid
    assert res.grid[0].before == len(certified_ids(base_results, 0, 0.0)) / 40


def test_weaker_candidate_fails_with_the_weakened_inputs_listed(
    base_results: dict[str, Any], weak_results: dict[str, Any]
) -> None:
    res = compare_audits(parse_results(base_results), parse_results(weak_results), Gate(max_drop=Fraction(1, 20)))
    assert res.verdict == "fail"
    assert {e.id for e in res.lost} == WEAKENED
    assert res.gained == ()
    for row in res.grid:
        d, eps = row.budget, row.radius
        before_ids = certified_ids(base_results, d, eps)
        lost = before_ids & WEAKENED
        assert row.before_certified == len(before_ids)
        assert row.after_certified == len(certified_ids(weak_results, d, eps)) == len(before_ids) - len(lost)
        assert (row.lost, row.gained) == (len(lost), 0)
        assert row.delta == pytest.approx(-len(lost) / 40)
        assert row.p_value == pytest.approx(2 * 0.5 ** len(lost) if lost else 1.0)
        assert row.failed == (Fraction(len(lost), 40) > Fraction(1, 20))
    # at (0, 0) all four were certified: drop 4/40 = 0.1 > 0.05, exact McNemar p = 2 / 2^4 = 0.125
    first = res.grid[0]
    assert (first.budget, first.radius, first.lost, first.p_value) == (0, 0.0, 4, 0.125)
    assert any(r.startswith("d=0, eps=0:") for r in res.reasons)
    # the listed radii are the frontier radii before, and nothing after (they abstain)
    by_id = {i["id"]: i for i in base_results["inputs"]}
    for entry in res.lost:
        frontier = {e["budget"]: e["radius"] for e in by_id[entry.id]["frontier"]}
        for before, after in zip(entry.radii_before, entry.radii_after, strict=True):
            assert before["radius"] == frontier.get(before["budget"])
            assert after["radius"] is None and entry.decision_after == "abstain"


def test_significance_gate_passes_a_drop_that_mcnemar_cannot_tell_from_noise(
    base_results: dict[str, Any], weak_results: dict[str, Any]
) -> None:
    base, weak = parse_results(base_results), parse_results(weak_results)
    # four lost, none gained: p = 0.125 at best, so alpha = 0.05 does not fail it ...
    assert compare_audits(base, weak, Gate(alpha=0.05)).verdict == "pass"
    # ... but alpha = 0.2 does, and so does a max drop below 4/40
    assert compare_audits(base, weak, Gate(alpha=0.2)).verdict == "fail"
    assert compare_audits(base, weak, Gate(max_drop=Fraction(1, 10), alpha=0.2)).verdict == "pass"


def test_many_lost_inputs_are_significant() -> None:
    specs = synthetic_specs(80, seed=3)
    confident = {s.id for s in specs if int(s.id[1:]) % 10 < 8}
    victims = set(sorted(confident)[:12])
    res = compare_audits(
        parse_results(build_results(specs)), parse_results(build_results(weaken(specs, victims))),
        Gate(max_drop=Fraction(1, 10), alpha=0.01, points=(Point(0, 0.0),)),
    )
    (row,) = res.deltas
    assert (row.lost, row.gained) == (12, 0)
    assert row.p_value == pytest.approx(2 * 0.5**12) and row.failed
    assert res.verdict == "fail" and {e.id for e in res.lost} == victims


def test_gate_points_restrict_what_fails(base_results: dict[str, Any], weak_results: dict[str, Any]) -> None:
    base, weak = parse_results(base_results), parse_results(weak_results)
    # a point where none of the weakened inputs was certified cannot fail
    quiet = [
        Point(d, eps) for d in range(3) for eps in (0.0, 0.3, 0.6, 0.9, 1.2)
        if not certified_ids(base_results, d, eps) & WEAKENED
    ]
    assert quiet
    res = compare_audits(base, weak, Gate(points=tuple(quiet)))
    assert res.verdict == "pass" and res.lost == ()
    assert [(p.budget, p.radius) for p in res.deltas] == sorted((p.budget, p.radius) for p in quiet)
    # a repeated gate point counts once
    res = compare_audits(base, weak, Gate(points=(Point(0, 0.0), Point(0, 0.0))))
    assert len(res.deltas) == 1 and len(res.gate_points) == 1 and len(res.reasons) == 1
    # a gate point off the default grid is added to the table
    res = compare_audits(base, weak, Gate(points=(Point(0, 0.123),)))
    assert (0, 0.123) in {(r.budget, r.radius) for r in res.grid}
    assert res.verdict == "fail"


def test_max_drop_boundary_is_exact(base_results: dict[str, Any], weak_results: dict[str, Any]) -> None:
    base, weak = parse_results(base_results), parse_results(weak_results)
    point = (Point(0, 0.0),)
    assert compare_audits(base, weak, Gate(max_drop=0.1, points=point)).verdict == "pass"  # type: ignore[arg-type]
    assert compare_audits(base, weak, Gate(max_drop="0.0999", points=point)).verdict == "fail"  # type: ignore[arg-type]


def test_gained_inputs_are_listed_and_pass(base_results: dict[str, Any], weak_results: dict[str, Any]) -> None:
    res = compare_audits(parse_results(weak_results), parse_results(base_results))
    assert res.verdict == "pass"
    assert {e.id for e in res.gained} == WEAKENED and res.lost == ()


def test_inputs_present_in_one_audit_only(base_results: dict[str, Any]) -> None:
    cand = copy.deepcopy(base_results)
    dropped = cand["inputs"].pop(0)["id"]
    cand["inputs"].append({**copy.deepcopy(cand["inputs"][0]), "id": "extra"})
    res = compare_audits(parse_results(base_results), parse_results(cand))
    assert res.only_in_baseline == (dropped,) and res.only_in_candidate == ("extra",)
    assert all(r.n_paired == 39 for r in res.grid)


def test_different_configurations_are_refused_with_the_fields_named(base_results: dict[str, Any]) -> None:
    other = build_results(
        SPECS, noise={"kernel": "uniform-other", "vocab_size": 10, "beta": 0.5, "sigma": 0.25},
        dataset_sha256="cd" * 32, threat_model={"kind": "suffix-append", "span": 4},
    )
    with pytest.raises(IncomparableAudits) as info:
        compare_audits(parse_results(base_results), parse_results(other))
    fields = {d["field"] for d in info.value.differences}
    assert fields == {"config.noise.sigma", "dataset.sha256", "config.threat_model"}
    for name in fields:
        assert name in str(info.value)
    assert "--allow-config-change" in str(info.value) and "\n" not in str(info.value)
    res = compare_audits(parse_results(base_results), parse_results(other), allow_config_change=True)
    assert {c["field"] for c in res.config_changes} == fields


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("config", "noise", "kernel"), "absorb", "config.noise.kernel"),
        (("config", "noise", "beta"), 0.25, "config.noise.beta"),
        (("config", "noise", "vocab_size"), 11, "config.noise.vocab_size"),
        (("config", "tau"), 0.4, "config.tau"),
        (("config", "alpha"), 0.01, "config.alpha"),
        (("config", "pixel_space"), "[-1,1]", "config.pixel_space"),
        (("config", "threat_model", "span"), 3, "config.threat_model"),
    ],
)
def test_each_certificate_field_is_checked(
    base_results: dict[str, Any], path: tuple[str, ...], value: Any, field: str
) -> None:
    other = copy.deepcopy(base_results)
    node = other
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    if path[:2] == ("config", "noise") or path == ("config", "tau"):
        # a changed kernel, beta, V or tau changes every certificate: rebuild them honestly (the reader refuses
        # frontiers that the configuration does not give)
        other = build_results(SPECS, noise=other["config"]["noise"], tau=other["config"]["tau"])
    with pytest.raises(IncomparableAudits) as info:
        compare_audits(parse_results(base_results), parse_results(other))
    assert [d["field"] for d in info.value.differences] == [field]


def test_other_config_changes_do_not_block(base_results: dict[str, Any]) -> None:
    other = copy.deepcopy(base_results)
    del other["config"]["threat_model"]["span"]  # an absent span is span null
    other["config"]["chunk_size"] = 4096
    other["config"]["seed"] = "1"
    other["model"]["sha256"] = "00" * 32
    assert compare_audits(parse_results(base_results), parse_results(other)).config_changes == []


def test_budgets_beyond_the_audits_are_refused(base_results: dict[str, Any]) -> None:
    audit = parse_results(base_results)
    with pytest.raises(ValueError, match="budget 5 is above"):
        compare_audits(audit, audit, Gate(points=(Point(5, 0.0),)))
    with pytest.raises(ValueError, match="budget 7 is above"):
        compare_audits(audit, audit, budgets=[0, 7])


def test_change_history_is_canonical_json(base_results: dict[str, Any], weak_results: dict[str, Any]) -> None:
    res = compare_audits(parse_results(base_results), parse_results(weak_results), Gate(alpha=0.05))
    res = res.to_dict()
    rfc8785.dumps(res)  # no NaN, no infinity, no big integers: the reports can sign it
    assert json.loads(json.dumps(res, allow_nan=False)) == res
    assert res["schema"] == "hybridcert/change-history/v1"
    assert res["previous_report_id"] == res["baseline"]["id"]
    for row in res["deltas"]:
        assert set(row) >= {"budget", "radius", "before", "after", "delta", "p_value"}
        assert row["before_ci"][0] <= row["before"] <= row["before_ci"][1]
        assert row["after_ci"][0] <= row["after"] <= row["after_ci"][1]


# -- malformed results are refused, naming the problem ---------------------------------------------------


def _broken(results: dict[str, Any], edit: Any) -> dict[str, Any]:
    out = copy.deepcopy(results)
    edit(out)
    return out


def _first_with_frontier(results: dict[str, Any], length: int = 2) -> dict[str, Any]:
    return next(i for i in results["inputs"] if i["correct"] and len(i["frontier"]) >= length)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(schema="other/v1"), "unsupported schema"),
        (lambda r: r["inputs"].append(copy.deepcopy(r["inputs"][0])), "duplicate id"),
        (lambda r: _first_with_frontier(r)["frontier"].pop(0), "without gaps"),
        (lambda r: _first_with_frontier(r)["frontier"][1].update(radius=99.0), "non-increasing"),
        (lambda r: _first_with_frontier(r)["frontier"][1].update(radius=None), "radius_infinite is not true"),
        (lambda r: _first_with_frontier(r)["frontier"][1].update(radius="0.3"), r"frontier\[1\]\.radius"),
        (lambda r: _first_with_frontier(r)["frontier"][0].update(budget=True), "budget"),
        (lambda r: _first_with_frontier(r).update(correct=False), "correct=False but decision"),
        (lambda r: _first_with_frontier(r).update(decision="maybe"), r"\)\.decision"),
        (lambda r: r["dataset"].pop("sha256"), "dataset.sha256: Field required"),
        (lambda r: r["config"]["noise"].pop("sigma"), "config.noise.sigma: Field required"),
        (lambda r: r["config"].update(max_budget=1), "above config.max_budget 1"),
        (lambda r: r["inputs"][0].update(id=""), r"inputs\[0\]\.id"),
    ],
)
def test_malformed_results_are_refused(base_results: dict[str, Any], edit: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_results(_broken(base_results, edit))


def test_an_infinite_radius_needs_p_a_lower_one_which_no_bound_gives(base_results: dict[str, Any]) -> None:
    """Issue 10: an infinite radius (p_a_lower = 1) cannot come from finite counts; compare refuses it."""
    results = copy.deepcopy(base_results)
    target = _first_with_frontier(results, 1)
    target["frontier"] = [{"budget": 0, "radius": None, "radius_infinite": True}]
    with pytest.raises(ValueError, match="exceeds the certified radius"):
        parse_results(results)
    target["p_a_lower"] = 1.0
    with pytest.raises(ValueError, match="exceeds the Clopper-Pearson bound"):
        parse_results(results)


def test_nan_in_a_results_file_is_refused(tmp_path: Path, base_results: dict[str, Any]) -> None:
    folder = write_audit(tmp_path / "a", base_results)
    text = (folder / "results.json").read_text().replace('"seconds": 0.01', '"seconds": NaN', 1)
    (folder / "results.json").write_text(text)
    with pytest.raises(ValueError, match="NaN is not allowed"):
        load_audit(folder)


# -- files, folders and signatures -----------------------------------------------------------------------


def test_folders_and_files_give_the_same_comparison(tmp_path: Path, base_results: dict[str, Any],
                                                    weak_results: dict[str, Any]) -> None:
    a = write_audit(tmp_path / "a", base_results)
    b = write_audit(tmp_path / "b", weak_results)
    by_folder = compare_paths(a, b)
    by_file = compare_paths(a / "results.json", b / "results.json")
    assert by_folder.grid == by_file.grid and by_folder.lost == by_file.lost
    assert by_folder.baseline["results_sha256"] == load_audit(a).sha256
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_audit(tmp_path / "missing")


def test_signed_inputs_are_checked_and_tampering_refused(tmp_path: Path, base_results: dict[str, Any]) -> None:
    a = write_audit(tmp_path / "a", base_results)
    sign_audit(a)
    audit = load_audit(a)
    assert audit.signature == "digest-checked"
    assert compare_paths(a, a).verdict == "pass"
    # change one radius after signing: the digest no longer matches the attestation
    tampered = copy.deepcopy(base_results)
    entry = _first_with_frontier(tampered, 1)["frontier"][0]
    entry["radius"] = math.nextafter(entry["radius"], 10.0)
    (a / "results.json").write_text(json.dumps(tampered, indent=2))
    with pytest.raises(TamperedInput, match="changed after signing"):
        load_audit(a)
    with pytest.raises(TamperedInput, match="changed after signing"):
        compare_paths(write_audit(tmp_path / "b", base_results), a)


def test_attestation_must_cover_results(tmp_path: Path, base_results: dict[str, Any]) -> None:
    import base64

    a = write_audit(tmp_path / "a", base_results)
    sign_audit(a)
    envelope = json.loads((a / "attestation.dsse.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["name"] = "report.html"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (a / "attestation.dsse.json").write_text(json.dumps(envelope))
    with pytest.raises(TamperedInput, match="does not cover results.json"):
        load_audit(a)
    (a / "attestation.dsse.json").write_text('{"payload": "@@@", "payloadType": "application/vnd.in-toto+json"}')
    with pytest.raises(TamperedInput, match="not a DSSE envelope"):
        load_audit(a)


def test_trust_on_an_unsigned_audit_is_refused(tmp_path: Path, base_results: dict[str, Any]) -> None:
    a = write_audit(tmp_path / "a", base_results)
    anchor = tmp_path / "anchor.pem"
    anchor.write_text("not used")
    with pytest.raises(TamperedInput, match="not signed"):
        load_audit(a, trust=anchor)
    with pytest.raises(TamperedInput, match="not signed"):
        compare_paths(a, a, trust=anchor)  # the baseline must be signed when a trust anchor is given


def _reports_verifier() -> Any:
    try:
        from hybridcert.reports.publish import verify_report
    except ImportError:
        return None
    return verify_report


@pytest.mark.slow
@pytest.mark.skipif(_reports_verifier() is None, reason="needs hybridcert.reports")
def test_signature_verified_through_reports(tmp_path: Path, base_results: dict[str, Any]) -> None:
    from hybridcert.reports.keys import ANCHOR, init_identity
    from hybridcert.reports.publish import render_and_sign

    ident = init_identity(tmp_path / "ada", "Ada Auditor", "Lead auditor", "Example Org")
    other = init_identity(tmp_path / "mallory", "Ada Auditor", "Lead auditor", "Example Org")
    anchor = ident.dsse_cert.parent / ANCHOR
    a = write_audit(tmp_path / "a", base_results)
    render_and_sign(a, ident)
    assert load_audit(a, trust=anchor).signature == "verified"
    unsigned = write_audit(tmp_path / "c", base_results)
    res = compare_paths(a, unsigned, trust=anchor)  # a fresh, unsigned candidate against a signed baseline
    assert (res.baseline["signature"], res.candidate["signature"]) == ("verified", "unsigned")
    with pytest.raises(TamperedInput, match="signature verification failed"):
        load_audit(a, trust=other.dsse_cert.parent / ANCHOR)  # signed, but not by whom we trust
    # a re-signed folder whose results.json was swapped: the digest check passes, the signature does not
    envelope = json.loads((a / "attestation.dsse.json").read_text())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 1  # well-formed base64, wrong signature (a reversed string is rejected earlier, as not base64)
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (a / "attestation.dsse.json").write_text(json.dumps(envelope))
    with pytest.raises(TamperedInput, match="signature verification failed"):
        load_audit(a, trust=anchor)


def test_report_id_is_the_reports_id(tmp_path: Path, base_results: dict[str, Any]) -> None:
    folder = write_audit(tmp_path / "a", base_results)
    audit = load_audit(folder)
    digest = hashlib.sha256(rfc8785.dumps(base_results)).hexdigest()
    assert audit.audit_id == "HCR-" + digest[:16].upper()
    assert compare_paths(folder, folder).previous_report_id == audit.audit_id


@pytest.mark.skipif(importlib.util.find_spec("hybridcert.reports.bundle") is None, reason="needs hybridcert.reports")
def test_report_id_matches_hybridcert_reports(tmp_path: Path, base_results: dict[str, Any]) -> None:
    from hybridcert.reports.bundle import load_results

    folder = write_audit(tmp_path / "a", base_results)
    assert load_audit(folder).audit_id == load_results(folder).report_id
