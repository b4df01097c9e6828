"""Import public multimodal safety datasets into an audit manifest, and curate the interaction-only subset.

``hybridcert dataset import FORMAT SRC --config audit.toml --out manifest.jsonl`` reads the dataset's published
layout, converts every image to the audit's ``image_shape`` (PNG, uint8, resized with bicubic filtering, mode
L or RGB by the channel count) and tokenises every text with the audit's tokenizer (the filter's
``encode_text`` for guards, else the config's word vocabulary), then writes ``images/<sha256(id)[:20]>.png``
next to the manifest and the manifest last. Formats (everything read is hostile: strict types, bounded sizes):

- ``hateful-memes``: SRC is a split file (``train.jsonl``, ``dev_seen.jsonl``, ...), one record a line with
  ``id`` (integer or string), ``img`` (path relative to the file's folder), ``label`` (0 or 1) and ``text``.
- ``mm-safetybench``: SRC is the ``data`` folder: ``processed_questions/<scenario>.json`` maps a question key
  to a record whose ``"Rephrased Question(SD)"`` is the text; the image is ``imgs/<scenario>/SD/<key>.jpg``.
  Every item is unsafe (label 1); the id is ``<scenario>/<key>``.
- ``unsafebench``: SRC is a JSON Lines export of the Hugging Face records: ``image`` (path relative to the
  file's folder), ``text`` (the caption or prompt), ``safety_label`` ("Safe" -> 0, "Unsafe" -> 1) or ``label``
  (0 or 1), optional ``id`` (default ``<file stem>-<line>``); ``category`` and ``source`` are kept as group.

Every record is read, every image decoded and every text tokenised before anything is written; the first
problem is one ValueError naming the file and the record (the CLI exits 2 and writes nothing). Files go through
the project's one writer (``hybridcert.results.atomic``), exclusively: an existing manifest or image is refused.

Curation (``curate_interaction_only``): keep the items the filter rates unsafe (class 1) on the clean pair,
but safe on the text *alone* and on the image *alone*, where "alone" means the other modality replaced by a
neutral one: the image by a constant mid-grey image (every pixel 0.5, the declared shape), the text by the
tokens of a neutral prompt (default ``"this image"``). Decisions are the base filter's on clean inputs (one
forward each, no noise): curation selects the data, it certifies nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridcert.jsonl import decode_utf8, json_objects
from hybridcert.results.atomic import write_bytes_atomic

FORMATS = ("hateful-memes", "mm-safetybench", "unsafebench")
MAX_FILE_BYTES = 64 << 20  # one JSON file or image
MAX_RECORDS = 1_000_000
MAX_FILES = 10_000
MAX_TEXT_CHARS = 10_000
MAX_IMAGE_PIXELS = 64_000_000
NEUTRAL_TEXT = "this image"
NEUTRAL_GREY = 0.5


@dataclass(frozen=True)
class RawRecord:
    id: str
    image: Path
    text: str
    label: int
    group: str | None
    where: str  # file and record, for errors


def _read_bounded(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise ValueError(f"{what}: file not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{what}: {path} is larger than {MAX_FILE_BYTES >> 20} MiB")
    return path.read_bytes()


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {field}: must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"{where}: field {field}: longer than {MAX_TEXT_CHARS} characters")
    return value


def _label(value: Any, where: str, field: str = "label") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise ValueError(f"{where}: field {field}: must be 0 or 1, got {value!r}")
    return int(value)


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{where}: field id: must be an integer or a string, got {value!r}")
    text = str(value)
    if not text or len(text) > 256:
        raise ValueError(f"{where}: field id: must have 1 to 256 characters")
    return text


def _image_path(root: Path, value: Any, where: str, field: str) -> Path:
    rel = _text(value, where, field)
    if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ValueError(f"{where}: field {field}: must be a relative path inside the dataset, got {rel!r}")
    path = root / rel
    if not path.is_file():
        raise ValueError(f"{where}: field {field}: image not found: {path}")
    return path


def read_hateful_memes(src: Path) -> list[RawRecord]:
    """Records of a Hateful Memes split file (module docstring)."""
    raw = _read_bounded(src, "hateful-memes")
    out = []
    for number, obj in json_objects(decode_utf8(raw, str(src)), str(src)):
        where = f"{src}:{number}"
        for key in ("id", "img", "label", "text"):
            if key not in obj:
                raise ValueError(f"{where}: field {key}: missing")
        out.append(RawRecord(_id(obj["id"], where), _image_path(src.parent, obj["img"], where, "img"),
                             _text(obj["text"], where, "text"), _label(obj["label"], where), None, where))
    return out


def read_mm_safetybench(src: Path, image_type: str = "SD") -> list[RawRecord]:
    """Records of MM-SafetyBench's processed questions with their SD images (module docstring)."""
    questions = src / "processed_questions"
    if not questions.is_dir():
        raise ValueError(f"mm-safetybench: {src} has no processed_questions folder")
    files = sorted(questions.glob("*.json"))
    if not files:
        raise ValueError(f"mm-safetybench: {questions} holds no .json files")
    if len(files) > MAX_FILES:
        raise ValueError(f"mm-safetybench: {questions} holds more than {MAX_FILES} .json files")
    out = []
    for path in files:
        def unique(pairs: list[tuple[str, Any]], path: Path = path) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for key, value in pairs:
                if key in seen:
                    raise ValueError(f"{path}: record {key!r}: duplicate key (a plain JSON reader would silently "
                                     "keep only the last)")
                seen[key] = value
            return seen

        try:
            data = json.loads(decode_utf8(_read_bounded(path, "mm-safetybench"), str(path)), object_pairs_hook=unique)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object mapping question keys to records")
        scenario = path.stem
        for key, rec in data.items():
            where = f"{path}: record {key!r}"
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: expected a JSON object")
            if "Rephrased Question(SD)" not in rec:
                raise ValueError(f"{where}: field Rephrased Question(SD): missing")
            image = src / "imgs" / scenario / image_type / f"{key}.jpg"
            if not key or "/" in key or "\\" in key or key in (".", "..") or not image.is_file():
                raise ValueError(f"{where}: image not found: {image}")
            out.append(RawRecord(_id(f"{scenario}/{key}", where), image,
                                 _text(rec["Rephrased Question(SD)"], where, "Rephrased Question(SD)"), 1,
                                 scenario, where))
    return out


_SAFETY = {"Safe": 0, "Unsafe": 1}


def read_unsafebench(src: Path) -> list[RawRecord]:
    """Records of an UnsafeBench JSON Lines export (module docstring)."""
    raw = _read_bounded(src, "unsafebench")
    out = []
    for number, obj in json_objects(decode_utf8(raw, str(src)), str(src)):
        where = f"{src}:{number}"
        if "image" not in obj:
            raise ValueError(f"{where}: field image: missing")
        if ("safety_label" in obj) == ("label" in obj):
            raise ValueError(f"{where}: field safety_label: give exactly one of safety_label or label")
        if "safety_label" in obj:
            value = obj["safety_label"]
            if not isinstance(value, str) or value not in _SAFETY:
                raise ValueError(f"{where}: field safety_label: must be \"Safe\" or \"Unsafe\", got {value!r}")
            label = _SAFETY[value]
        else:
            label = _label(obj["label"], where)
        text = obj.get("text")
        group = obj.get("category")
        if group is not None and not isinstance(group, str):
            raise ValueError(f"{where}: field category: must be a string, got {group!r}")
        out.append(RawRecord(_id(obj.get("id", f"{src.stem}-{number}"), where),
                             _image_path(src.parent, obj["image"], where, "image"),
                             _text("" if text is None else text, where, "text"), label, group, where))
    return out


READERS: dict[str, Callable[[Path], list[RawRecord]]] = {
    "hateful-memes": read_hateful_memes, "mm-safetybench": read_mm_safetybench, "unsafebench": read_unsafebench,
}


def convert_image(path: Path, shape: tuple[int, int, int], where: str) -> bytes:
    """The image at ``path`` as PNG bytes of the manifest's shape [C, H, W] (C = 1: L, C = 3: RGB)."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    if channels not in (1, 3):
        raise ValueError(f"dataset.image_shape: importers write PNG images with 1 or 3 channels, got {channels}")
    raw = _read_bounded(path, where)
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{where}: image {path.name} has more than {MAX_IMAGE_PIXELS} pixels")
            img.load()
            conv = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{where}: image {path.name} is not a readable image: {exc}") from None
    buf = io.BytesIO()
    conv.save(buf, format="PNG")
    return buf.getvalue()


Tokenizer = Callable[[str], list[int]]


def make_tokenizer(spec: Any, filt: Any | None = None) -> Tokenizer:
    """The audit's tokenizer: the config's word vocabulary, else the filter's ``encode_text`` (guards)."""
    from hybridcert.audits.config import load_vocabulary

    if spec.tokens.vocabulary:
        vocab = load_vocabulary(spec.path(spec.tokens.vocabulary))

        def words(text: str) -> list[int]:
            missing = [w for w in text.split() if w not in vocab]
            if missing:
                raise ValueError(f"word {missing[0]!r} is not in the vocabulary")
            return [vocab[w] for w in text.split()]

        return words
    encode = getattr(filt, "encode_text", None)
    if not callable(encode):
        raise ValueError("the config has no tokens.vocabulary and its filter no encode_text: cannot tokenise text")
    return lambda text: [int(t) for t in encode(text).tolist()]


def _token_check(spec: Any) -> Callable[[list[int]], None]:
    from hybridcert.theory import ThreatModel

    alphabet = set(spec.tokens.alphabet_ids())
    threat = ThreatModel(spec.threat_model.kind, spec.threat_model.span)

    def check(ids: list[int]) -> None:
        if not ids:
            raise ValueError("the text tokenises to no tokens")
        bad = [t for t in ids if not 0 <= t < spec.tokens.model_vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the model vocabulary")
        start, stop = threat.noised_positions(len(ids))
        if threat.kind != "suffix-append":
            outside = [t for t in ids[start:stop] if t not in alphabet]
            if outside:
                raise ValueError(f"token id {outside[0]} at a noised position is not in the alphabet")

    return check


def import_dataset(fmt: str, src: Path, out: Path, spec: Any, tokenizer: Tokenizer) -> int:
    """Read, convert and check everything, then write the images and (last) the manifest; the item count."""
    if fmt not in READERS:
        raise ValueError(f"dataset format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ValueError(f"--out {out} already exists: choose a new manifest path")
    records = READERS[fmt](Path(src))
    if not records:
        raise ValueError(f"{src}: no records")
    if len(records) > MAX_RECORDS:
        raise ValueError(f"{src}: more than {MAX_RECORDS} records")
    check = _token_check(spec)
    shape = tuple(spec.dataset.image_shape)
    seen: dict[str, str] = {}
    lines: list[tuple[str, str, Path]] = []  # (manifest line, image name, source image)
    for rec in records:
        if rec.id in seen:
            raise ValueError(f"{rec.where}: field id: duplicate id {rec.id!r} (first at {seen[rec.id]})")
        seen[rec.id] = rec.where
        try:
            tokens = tokenizer(rec.text)
            check(tokens)
        except ValueError as exc:
            raise ValueError(f"{rec.where}: field text: {exc}") from None
        convert_image(rec.image, shape, rec.where)  # decoded now: a broken image fails before any write
        name = f"images/{hashlib.sha256(rec.id.encode('utf-8')).hexdigest()[:20]}.png"
        if (out.parent / name).exists():
            raise ValueError(f"{out.parent / name} already exists: import into a new folder")
        obj: dict[str, Any] = {"id": rec.id, "tokens": tokens, "image": name, "label": rec.label}
        if rec.group is not None:
            obj["group"] = rec.group
        lines.append((json.dumps(obj, sort_keys=True, ensure_ascii=False), name, rec.image))
    (out.parent / "images").mkdir(parents=True, exist_ok=True)
    for _, name, source in lines:
        write_bytes_atomic(out.parent / name, convert_image(source, shape, str(source)), overwrite=False)
    write_bytes_atomic(out, ("\n".join(line for line, _, _ in lines) + "\n").encode("utf-8"), overwrite=False)
    return len(lines)


def curate_interaction_only(audit: Any, out: Path, neutral_tokens: list[int]) -> tuple[int, int]:
    """Write the manifest of the items unsafe together, safe alone (module docstring); (kept, total)."""
    import torch

    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ValueError(f"--out {out} already exists: choose a new manifest path")
    manifest = audit.spec.path(audit.spec.dataset.manifest)
    raw_lines = {obj["id"]: obj for _, obj in json_objects(decode_utf8(manifest.read_bytes(), str(manifest)),
                                                             str(manifest))}
    grey = torch.full(tuple(audit.spec.dataset.image_shape), NEUTRAL_GREY, dtype=torch.float32)
    neutral = torch.tensor(neutral_tokens, dtype=torch.int64)
    space = audit.spec.noise.pixel_space

    def decide(tokens: torch.Tensor, image: torch.Tensor) -> bool:
        img = image * 2.0 - 1.0 if space == "[-1,1]" else image
        return bool(audit.filter(tokens.unsqueeze(0).to(audit.device), img.unsqueeze(0).to(audit.device))[0])

    kept = []
    for item in audit.dataset.inputs:
        tokens = torch.tensor(item.tokens, dtype=torch.int64)
        image = torch.from_numpy(item.image)
        if decide(tokens, image) and not decide(tokens, grey) and not decide(neutral, image):
            obj = dict(raw_lines[item.id])
            if not Path(obj["image"]).is_absolute():
                obj["image"] = os.path.relpath((manifest.parent / obj["image"]).resolve(), out.parent.resolve())
            kept.append(json.dumps(obj, sort_keys=True, ensure_ascii=False))
    if not kept:
        raise ValueError("no item is unsafe together and safe alone: nothing to write")
    write_bytes_atomic(out, ("\n".join(kept) + "\n").encode("utf-8"), overwrite=False)
    return len(kept), len(audit.dataset.inputs)
