"""Dataset manifests: JSONL, one input per line, validated up front (errors name the line and the field).

Each line: ``{"id": "x1", "tokens": [3, 17, 5] | "text": "words ...", "image": "img/x1.png" | "img/x1.npy",
"label": 0 | 1, "group": "optional"}``. Image paths are relative to the manifest. PNG images are read as
uint8 and divided by 255; ``.npy`` images are real-number arrays in [0, 1] (nothing is unpickled).
A 2-d image is one channel. Every image must have the declared shape [C, H, W]. Everything here is untrusted:
an image's header is checked against the declared shape before its data is read (issue 10).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridcert.jsonl import decode_utf8, json_objects


@dataclass(frozen=True)
class AuditInput:
    """One validated input: text token ids (before any pad), image [C, H, W] float32 in [0, 1], label."""

    id: str
    tokens: tuple[int, ...]
    image: np.ndarray
    label: int
    group: str | None


@dataclass(frozen=True)
class Dataset:
    inputs: list[AuditInput]
    manifest_sha256: str
    content_sha256: str  # manifest bytes plus every image file, in manifest order


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_MANIFEST_BYTES = 256 << 20
"""Largest manifest read (it is read whole and every image is held in memory: split larger datasets)."""
MAX_TOKENS = 1 << 16
"""Longest token sequence of one input (every noisy sample holds the whole sequence)."""
MAX_PNG_OVERHEAD = 16 << 20
"""Bytes a PNG may hold beyond its raw pixels (chunk framing, zlib, ancillary chunks such as an ICC profile)."""


def _expected_shapes(shape: tuple[int, int, int]) -> set[tuple[int, ...]]:
    """[C, H, W], and [H, W] for one channel."""
    shapes: set[tuple[int, ...]] = {tuple(shape)}
    if shape[0] == 1:
        shapes.add(tuple(shape[1:]))
    return shapes


def _load_npy(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """A .npy array checked by its header before any data is read (issue 10): format version 1.0 or 2.0, a
    real numeric dtype (never an object array: nothing is unpickled), the declared shape, and a file size equal
    to header plus data (a sparse 12 GB file behind a small header is refused without being read)."""
    from numpy.lib import format as npy

    name = path.name
    with path.open("rb") as fh:
        try:
            version = npy.read_magic(fh)
            if version == (1, 0):
                header = npy.read_array_header_1_0(fh)
            elif version == (2, 0):
                header = npy.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except (ValueError, OSError, SyntaxError, TypeError) as exc:
            raise ValueError(f"image {name} is not a plain .npy array: {str(exc).splitlines()[0]}") from None
        array_shape, fortran_order, dtype = header
        if dtype.hasobject:
            raise ValueError(f"image {name} is not a plain .npy array: it holds Python objects (dtype {dtype}), "
                             "which would need unpickling")
        if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise ValueError(f"image {name} has dtype {dtype}, expected real numbers")
        if tuple(array_shape) not in _expected_shapes(shape):
            raise ValueError(f"image {name} has shape {list(array_shape)}, expected {list(shape)} ([C, H, W])")
        offset = fh.tell()
        count = int(np.prod(array_shape, dtype=np.int64))
        size = os.fstat(fh.fileno()).st_size
        if size != offset + count * dtype.itemsize:
            raise ValueError(f"image {name}: the file holds {size} bytes, its header promises "
                             f"{offset + count * dtype.itemsize}")
        data = fh.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"image {name}: truncated data")
    arr = np.frombuffer(data, dtype=dtype).reshape(array_shape, order="F" if fortran_order else "C")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all() or arr.min(initial=0.0) < 0.0 or arr.max(initial=0.0) > 1.0:
        raise ValueError(f"image {name} has values outside [0, 1]")
    return arr


def _load_png(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """A PNG checked by its header before any pixel is decoded (issue 10): the format, the size against the
    declared [C, H, W] (a decompression bomb claims a huge size and is refused before decoding), and the file
    size against raw pixels plus ``MAX_PNG_OVERHEAD``."""
    from PIL import Image, UnidentifiedImageError

    name = path.name
    c, h, w = shape
    limit = c * h * w + MAX_PNG_OVERHEAD
    if path.stat().st_size > limit:
        raise ValueError(f"image {name} holds {path.stat().st_size} bytes, more than a [{c}, {h}, {w}] PNG needs")
    with path.open("rb") as fh:
        head = fh.read(24)  # signature, then the IHDR chunk's length, type, width and height
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"image {name} is not a readable PNG: no PNG signature and IHDR header")
    width, height = struct.unpack(">II", head[16:24])
    if (width, height) != (w, h):
        raise ValueError(f"image {name} has size {width}x{height} (W x H) in its header, expected {w}x{h} "
                         f"(shape {list(shape)})")
    try:
        with Image.open(path, formats=["PNG"]) as opened:  # reads the header only
            if opened.size != (w, h):
                raise ValueError(f"image {name} has size {opened.size[0]}x{opened.size[1]}, expected {w}x{h}")
            img = opened if opened.mode in ("L", "RGB") else opened.convert("RGB" if c == 3 else "L")
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ValueError(f"image {name} is not a readable PNG: {str(exc).splitlines()[0]}") from None
    if arr.ndim == 3:
        arr = np.transpose(arr, (2, 0, 1))
    return arr


def load_image(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Read one image as float32 [C, H, W] in [0, 1]; ValueError naming the problem. Images are untrusted: the
    header is checked against ``shape`` before any data is read or decoded (``_load_npy``, ``_load_png``)."""
    if not path.is_file():
        raise ValueError(f"image file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _load_npy(path, shape)
    elif suffix == ".png":
        arr = _load_png(path, shape)
    else:
        raise ValueError(f"image {path.name}: expected a .png or .npy file")
    if arr.ndim == 2:
        arr = arr[None]
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"image {path.name} has shape {list(arr.shape)}, expected {list(shape)} ([C, H, W])")
    return np.ascontiguousarray(arr)


def load_manifest(
    path: Path,
    image_shape: tuple[int, int, int],
    model_vocab_size: int,
    vocabulary: dict[str, int] | None = None,
    check_tokens: Callable[[tuple[int, ...]], None] | None = None,
) -> Dataset:
    """Validate every line of the manifest before anything runs; ValueError '<file>:<line>: field <f>: ...'.

    ``check_tokens`` raises ValueError for token sequences the threat model cannot noise (for example a token
    outside the alphabet at a noised position).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"dataset manifest not found: {path}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path}: the manifest is larger than {MAX_MANIFEST_BYTES >> 20} MiB (split the dataset)")
    raw = path.read_bytes()
    content = hashlib.sha256(raw)
    inputs: list[AuditInput] = []
    seen: dict[str, int] = {}
    for number, obj in json_objects(decode_utf8(raw, str(path)), str(path)):
        where = f"{path}:{number}"
        try:
            item, image_file = _parse_line(obj, path.parent, image_shape, model_vocab_size, vocabulary, check_tokens)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if item.id in seen:
            raise ValueError(f"{where}: field id: duplicate id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = number
        content.update(_sha256_file(image_file).encode())
        inputs.append(item)
    if not inputs:
        raise ValueError(f"{path}: the manifest holds no inputs")
    return Dataset(inputs, _sha256(raw), content.hexdigest())


_FIELDS = {"id", "tokens", "text", "image", "label", "group"}


def _parse_line(
    obj: dict[str, Any],
    root: Path,
    shape: tuple[int, int, int],
    vocab_size: int,
    vocabulary: dict[str, int] | None,
    check_tokens: Callable[[tuple[int, ...]], None] | None,
) -> tuple[AuditInput, Path]:
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise ValueError(f"field {unknown[0]}: unknown field (expected {', '.join(sorted(_FIELDS))})")
    for key in ("id", "image", "label"):
        if key not in obj:
            raise ValueError(f"field {key}: missing")
    input_id = obj["id"]
    if not isinstance(input_id, str) or not input_id or len(input_id) > 256:
        raise ValueError(f"field id: must be a non-empty string of at most 256 characters, got {input_id!r}")
    label = obj["label"]
    if type(label) is not int or label not in (0, 1):  # strict: true, 1.0 and "1" are not labels
        raise ValueError(f"field label: must be 0 or 1, got {label!r}")
    group = obj.get("group")
    if group is not None and not isinstance(group, str):
        raise ValueError(f"field group: must be a string or null, got {group!r}")
    tokens = _tokens(obj, vocab_size, vocabulary)
    if check_tokens is not None:
        try:
            check_tokens(tokens)
        except ValueError as exc:
            raise ValueError(f"field tokens: {exc}") from None
    image_ref = obj["image"]
    if not isinstance(image_ref, str) or not image_ref:
        raise ValueError(f"field image: must be a path string, got {image_ref!r}")
    image_file = root / image_ref
    try:
        image = load_image(image_file, shape)
    except ValueError as exc:
        raise ValueError(f"field image: {exc}") from None
    return AuditInput(input_id, tokens, image, int(label), group), image_file


def _tokens(obj: dict[str, Any], vocab_size: int, vocabulary: dict[str, int] | None) -> tuple[int, ...]:
    has_tokens, has_text = "tokens" in obj, "text" in obj
    if has_tokens == has_text:
        raise ValueError("field tokens: give exactly one of tokens (token ids) or text")
    if has_text:
        text = obj["text"]
        if not isinstance(text, str):
            raise ValueError(f"field text: must be a string, got {text!r}")
        words = text.split()
        if not words:
            raise ValueError("field text: empty text")
        if len(words) > MAX_TOKENS:
            raise ValueError(f"field text: {len(words)} words, more than the maximum {MAX_TOKENS}")
        if vocabulary is None:
            raise ValueError("field text: the config gives no tokens.vocabulary to turn text into token ids")
        missing = [w for w in words if w not in vocabulary]
        if missing:
            raise ValueError(f"field text: word {missing[0]!r} is not in the vocabulary")
        ids = tuple(vocabulary[w] for w in words)
    else:
        raw = obj["tokens"]
        if not isinstance(raw, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
            raise ValueError("field tokens: must be a list of integer token ids")
        if not raw:
            raise ValueError("field tokens: empty token sequence")
        if len(raw) > MAX_TOKENS:
            raise ValueError(f"field tokens: {len(raw)} token ids, more than the maximum {MAX_TOKENS}")
        ids = tuple(raw)
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"field tokens: token id {bad[0]} is outside the vocabulary [0, {vocab_size})")
    return ids
