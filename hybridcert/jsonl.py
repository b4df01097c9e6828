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


class _DuplicateKey(ValueError):
    """A key repeated within one JSON object (the key is the message)."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_objects(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; ValueError '<source>:<line>: ...' for anything else.

    A key repeated within one object is refused (``json`` would keep the last one silently), and so are the
    non-standard constants NaN, Infinity and -Infinity."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
        except _DuplicateKey as exc:
            raise ValueError(f"{source}:{number}: key {exc} appears twice in one object") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: {exc}") from None
        except RecursionError:
            raise ValueError(f"{source}:{number}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{source}:{number}: expected a JSON object")
        yield number, obj
