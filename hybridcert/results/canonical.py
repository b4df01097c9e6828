"""JSON in and out for results files: one bounded, strict parser and one canonical encoding (RFC 8785).

- :func:`loads_strict`: UTF-8 only; no NaN/Infinity; no duplicate keys in an object; nesting at most
  :data:`MAX_DEPTH`; integers at most 2^53 in magnitude (I-JSON); a file at most :data:`MAX_FILE_BYTES`. Every
  violation is one ValueError line naming the source (and the line for syntax errors). Work is linear in
  the size of the input, and the size is bounded.
- :func:`canonical_bytes`: RFC 8785 (JSON Canonicalization Scheme) bytes; the one encoding the project writes
  results, logs and hashes with. Infinity is never written: an infinite radius is ``null`` plus
  ``"radius_infinite": true`` (docs/results-format.md).
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import rfc8785

from hybridcert.results.atomic import write_bytes_atomic

__all__ = [
    "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_SAFE_INT", "canonical_bytes", "canonical_dumps", "loads_strict",
    "read_bounded", "write_json_atomic",
]

#: Largest integer magnitude allowed anywhere (RFC 8785 / I-JSON: exact in a float64).
MAX_SAFE_INT = 2**53
#: Deepest nesting of arrays and objects accepted (results.json needs 5; room for extensions).
MAX_DEPTH = 32
#: Largest results file read (about 10^6 inputs at ~1 kB each).
MAX_FILE_BYTES = 2**30


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (use null plus a flag)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"key {dup!r} appears twice in one object")
    return out


def _check_tree(obj: Any, source: str) -> None:
    """Depth and integer-range check, level by level without recursion (a hostile file cannot exhaust the
    stack; one pass over the values)."""
    level: list[Any] = [obj] if type(obj) in (dict, list) else []
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise ValueError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels")
        deeper: list[Any] = []
        for node in level:
            for v in (node.values() if type(node) is dict else node):
                t = type(v)
                if t is dict or t is list:
                    deeper.append(v)
                elif t is int and not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                    raise ValueError(f"{source}: {_path_of(obj, v)}: integer {v} is above 2^53 (write it as a "
                                     "string)")
        level = deeper
        depth += 1
    if type(obj) is int and not -MAX_SAFE_INT <= obj <= MAX_SAFE_INT:
        raise ValueError(f"{source}: integer {obj} is above 2^53 (write it as a string)")


def _path_of(root: Any, target: Any) -> str:
    """Where ``target`` (by identity) sits in ``root``, e.g. 'inputs[0].seconds' (only called on errors)."""
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, where = stack.pop()
        if node is target and where:
            return where
        if isinstance(node, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
    return "(top level)"


def read_bounded(path: Path | str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (a link to one is followed), at most ``limit`` of them.

    Refused before anything is read (OSError or ValueError naming the file): something that is not a regular
    file (a FIFO would block the reader forever, /dev/zero would fill the memory) and a file whose size is above
    ``limit``; a file that grows past ``limit`` while it is read is refused too."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without waiting for a writer
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{path}: {st.st_size} bytes is above the limit of {limit}")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: more than {limit} bytes (it grew while read)")
    return data


def loads_strict(data: bytes, source: str) -> Any:
    """Parse JSON bytes under the rules of the module docstring; ValueError (one line, naming ``source``)."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{source}: {len(data)} bytes is above the limit of {MAX_FILE_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise ValueError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    _check_tree(obj, source)
    return obj


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes; ValueError on NaN, infinity or integers above 2^53."""
    _check_finite(obj)
    try:
        return bytes(rfc8785.dumps(obj))
    except (rfc8785.CanonicalizationError, TypeError, RecursionError) as exc:
        raise ValueError(f"cannot canonicalise: {exc}") from None


def canonical_dumps(obj: Any) -> str:
    """:func:`canonical_bytes` as text."""
    return canonical_bytes(obj).decode("utf-8")


def _check_finite(obj: Any) -> None:
    stack = [(obj, "$")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, float):
            if not math.isfinite(node):
                raise ValueError(f"{where}: {node} is not allowed (use null plus a flag)")
        elif isinstance(node, int) and not isinstance(node, bool):
            if abs(node) > MAX_SAFE_INT:
                raise ValueError(f"{where}: integer {node} is above 2^53 (write it as a string)")
        elif isinstance(node, dict):
            stack.extend((v, f"{where}.{k}") for k, v in node.items())
        elif isinstance(node, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))


def write_json_atomic(path: Path | str, obj: Any, mode: int = 0o644) -> None:
    """Write ``obj`` as RFC 8785 canonical JSON plus a newline, through the one writer (exclusive, atomic,
    fsynced, never through a planted link: ``hybridcert.results.atomic``)."""
    write_bytes_atomic(path, canonical_bytes(obj) + b"\n", mode)
