"""The one results reader (hybridcert.results.reader): what a hostile results.json cannot get past."""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridcert.results.canonical import MAX_FILE_BYTES
from hybridcert.results.reader import ResultsError, expected_threshold, parse_results, read_results
from hybridcert.theory import MAX_BUDGET, clopper_pearson_lower
from tests.results.builders import make_results
from tests.results.hostile import at_wrong_threshold


def _bytes(raw: Any) -> bytes:
    return json.dumps(raw).encode()


def _valid() -> dict[str, Any]:
    return make_results([None, 0.97, 0.8, 0.4], sides=["flag", "flag", "no-flag", "flag"])


def test_valid_file_reads() -> None:
    doc = parse_results(_bytes(_valid()))
    assert len(doc.results.inputs) == 4 and doc.report_id.startswith("HCR-")


def test_threshold_is_derived_from_tau_and_side() -> None:
    assert expected_threshold(0.5, "flag") == 0.5
    assert expected_threshold(0.5, "no-flag") == float(np.nextafter(0.5, 2.0)) > 0.5
    raw = at_wrong_threshold(_valid())
    with pytest.raises(ResultsError, match=r"threshold 0\.01 is not the one config\.tau=0\.5 implies"):
        parse_results(_bytes(raw))
    raw = _valid()
    raw["inputs"][2]["threshold"] = 0.5  # no-flag side must be strictly above 1 - tau
    with pytest.raises(ResultsError, match="no-flag side"):
        parse_results(_bytes(raw))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        node: Any = raw
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # issue 10: p_a_lower = 0.9999 "proved" from 969/1000
        (lambda r: (_set("inputs.1.counts.target", 969)(r), _set("inputs.1.p_a_lower", 0.9999)(r)),
         "exceeds the Clopper-Pearson bound"),
        # p_a_lower = 1 (infinite radii): no bound of finite counts gives it
        (_set("inputs.0.p_a_lower", 1.0), "exceeds the Clopper-Pearson bound"),
        (_set("inputs.0.counts.target", 1001), "exceeds counts.n"),
        (_set("inputs.0.counts.target", -3), "inputs[0] (id x0000).counts.target"),
        (_set("inputs.1.counts.n", 1001), "differs from config.n"),
        (_set("inputs.0.counts.selection_target", 65), "exceeds counts.n0"),
        (_set("inputs.1.id", "x0000"), "duplicate id"),
        (_set("inputs.0.target_class", 0), "does not match target_class"),
        (_set("config.confidence_bound", "made-up"), "unknown rule"),
        (_set("config.max_budget", 100000), "config.max_budget"),
        (_set("inputs.0.frontier.0.budget", MAX_BUDGET + 1), "frontier[0].budget"),
        # strict types: JSON true is not a number, a string is not a number, an array is not a scalar
        (_set("inputs.0.p_a_lower", True), "inputs[0] (id x0000).p_a_lower"),
        (_set("config.tau", True), "config.tau"),
        (_set("inputs.0.counts.n", 1000.0), "inputs[0] (id x0000).counts.n"),
        (_set("inputs.0.p_a_lower", "0.9"), "inputs[0] (id x0000).p_a_lower"),
        (_set("inputs.0.p_a_lower", [0.9, 0.9]), "inputs[0] (id x0000).p_a_lower"),
        (_set("config.noise.sigma", [0.25]), "config.noise.sigma"),
        (_set("config.noise.sigma", 1e308), "config.noise.sigma: Input should be less than or equal to"),
        (_set("inputs.0.seconds", 2**60), "inputs[0].seconds: integer"),
        # a radius above what the engine recomputes
        (lambda r: r["inputs"][1]["frontier"][0].update(radius=r["inputs"][1]["frontier"][0]["radius"] * 1.5),
         "exceeds the certified radius"),
    ],
)
def test_refused_with_one_line(mutate: Callable[[dict[str, Any]], Any], message: str) -> None:
    raw = copy.deepcopy(_valid())
    mutate(raw)
    with pytest.raises(ResultsError) as info:
        parse_results(_bytes(raw))
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text


def test_per_budget_bounds_use_the_split_alpha() -> None:
    raw = _valid()
    raw["config"]["sampling"] = "per-budget"
    top = raw["config"]["max_budget"]
    alpha = raw["config"]["alpha"] / (top + 1)
    rec = raw["inputs"][0]
    ks = [1000] * (top + 1)
    ps = [float(p) for p in clopper_pearson_lower(np.array(ks), 1000, alpha)]
    rec["counts"]["target_per_budget"], rec["p_a_lower_per_budget"], rec["p_a_lower"] = ks, ps, ps[0]
    from hybridcert.theory import HybridNoise

    nz = raw["config"]["noise"]
    noise = HybridNoise(nz["kernel"], nz["vocab_size"], nz["beta"], nz["sigma"])
    rec["frontier"] = [{"budget": d, "radius": float(noise.certified_radius(ps[d], budget=d, tau=0.5))}
                       for d in range(top + 1)]
    for other in raw["inputs"][1:]:
        other["counts"]["target_per_budget"] = [other["counts"]["target"]] * (top + 1)
        other["p_a_lower_per_budget"] = [other["p_a_lower"]] * (top + 1)
    parse_results(_bytes(raw))
    rec["p_a_lower_per_budget"][2] = float(clopper_pearson_lower(1000, 1000, raw["config"]["alpha"]))
    with pytest.raises(ResultsError, match=r"p_a_lower_per_budget\[2\].*exceeds"):
        parse_results(_bytes(raw))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 100000, "nested deeper"),
        (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper"),
        (b'{"schema": "hybridcert/results/v1", "schema": "x"}', "appears twice"),
        (b'{"x": NaN}', "NaN is not allowed"),
        (b'{"x": Infinity}', "Infinity is not allowed"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_unreadable_bytes(data: bytes, message: str) -> None:
    with pytest.raises(ResultsError, match=message) as info:
        parse_results(data, "r.json")
    assert str(info.value).startswith("r.json: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["fifo", "device", "sparse"])
def test_files_that_cannot_be_read_whole_are_refused_unread(tmp_path: Path, kind: str) -> None:
    """QA of issue 10: a FIFO at results.json blocked verify --results, compare and verify-report forever; a link
    to /dev/zero filled the memory (23 GB before the kernel killed it); a sparse 2 GB file was read whole before
    its size was refused. Refused before any byte is read, one line, in well under a second."""
    path = tmp_path / "results.json"
    if kind == "fifo":
        os.mkfifo(path)
        watchdog = threading.Timer(10, lambda: open(path, "wb").close())  # unblocks a reader that waits
        watchdog.start()
    elif kind == "device":  # /dev/null stands in for /dev/zero: a regression must not fill the test machine
        path.symlink_to("/dev/null")
    else:
        with path.open("wb") as fh:
            fh.truncate(MAX_FILE_BYTES + 1)
    try:
        with pytest.raises(ResultsError) as info:
            read_results(tmp_path)
    finally:
        if kind == "fifo":
            watchdog.cancel()
    message = str(info.value)
    assert "\n" not in message
    assert ("not a regular file" if kind != "sparse" else "above the limit") in message


def test_sequential_bounds_use_the_confidence_sequence() -> None:
    from hybridcert.theory import HybridNoise, cs_lower

    raw = make_results([None])
    cfg = raw["config"]
    cfg["confidence_bound"] = "beta-mixture-cs"
    cfg["n"] = 4096
    rec = raw["inputs"][0]
    rec["counts"].update(n=512, target=512)  # stopped early: counts.n <= the cap config.n
    p = float(cs_lower(512, 512, cfg["alpha"]))
    nz = cfg["noise"]
    noise = HybridNoise(nz["kernel"], nz["vocab_size"], nz["beta"], nz["sigma"])
    rec["p_a_lower"] = p
    rec["frontier"] = [{"budget": d, "radius": r} for d, r in noise.frontier(p, tau=0.5, max_budget=3)]
    parse_results(_bytes(raw))
    rec["p_a_lower"] = float(clopper_pearson_lower(512, 512, cfg["alpha"]))  # the fixed-n bound is higher
    assert rec["p_a_lower"] > p
    with pytest.raises(ResultsError, match="exceeds the confidence-sequence bound"):
        parse_results(_bytes(raw))
    rec["counts"]["n"] = 5000
    with pytest.raises(ResultsError, match="above the sequential cap"):
        parse_results(_bytes(raw))
