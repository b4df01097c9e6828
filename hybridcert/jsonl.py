"""JSON Lines input: one JSON object per non-blank line, errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def decode_utf8(raw: bytes, source: str) -> str:
    """The text of a file's bytes; ValueError naming ``source`` when they are not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text ({exc})") from None


def json_objects(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; ValueError '<source>:<line>: ...' for anything else."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ValueError(f"{source}:{number}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{source}:{number}: expected a JSON object")
        yield number, obj
