"""The one JSON Lines reader (manifests, certify --jsonl, dataset importers) refuses what json would accept."""

from __future__ import annotations

import pytest

from hybridcert.jsonl import json_objects


def test_duplicate_key_is_refused_naming_file_line_and_key() -> None:
    text = '{"p_a": 0.9, "vocab": 10}\n{"p_a": 0.2, "p_a": 0.99}\n'
    with pytest.raises(ValueError, match=r"^in\.jsonl:2: key p_a appears twice"):
        list(json_objects(text, "in.jsonl"))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_constants_are_refused(constant: str) -> None:
    with pytest.raises(ValueError, match=rf"^in\.jsonl:1: {constant} is not valid JSON"):
        list(json_objects(f'{{"p_a": {constant}}}\n', "in.jsonl"))


def test_nested_duplicates_are_refused_and_good_lines_pass() -> None:
    assert [n for n, _ in json_objects('{"a": {"b": 1}}\n\n{"c": 2}\n', "x")] == [1, 3]
    with pytest.raises(ValueError, match="key b appears twice"):
        list(json_objects('{"a": {"b": 1, "b": 2}}\n', "x"))
