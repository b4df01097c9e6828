"""The demo benchmark: scikit-learn's 8x8 digits (shipped inside scikit-learn, no download) paired with short
token sequences that name a digit. The pair is "unsafe" (label 1) when the text names the digit the image
shows, so neither modality alone decides.

The text names its digit many times among a few filler words (a redundant name survives heavy token
noise); the alphabet is the 32 words (V = 32: ten digit names and 22 fillers), token 32 is a mask outside
it. Everything here is a deterministic function of the seeds below:
``python -m hybridcert.audits.demo.data --out DIR`` writes the same bytes on every machine.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from hybridcert.results.atomic import write_bytes_atomic, write_text_atomic

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FILLERS = ["the", "a", "this", "is", "image", "shows", "digit", "number", "picture", "of", "here", "we", "see",
           "written", "by", "hand", "figure", "looks", "like", "maybe", "clearly", "label"]
WORDS = DIGITS + FILLERS  # ids 0..31: the alphabet
MASK_ID = len(WORDS)  # 32, outside the alphabet
MODEL_VOCAB = len(WORDS) + 1
TEXT_LENGTH = 24
DATA_SEED = 20261125
SPLIT_SEED = 7
N_HELD_OUT = 300


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train digits, held-out images, held-out digits); images float32 [N, 1, 8, 8] in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[:, None]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    held, train = order[:N_HELD_OUT], order[N_HELD_OUT:]
    return images[train], digits.target[train], images[held], digits.target[held]


def digit_text(digit: int, rng: np.random.Generator, length: int = TEXT_LENGTH) -> list[int]:
    """Token ids of a text that names ``digit``: the digit's name with 2-5 filler words, shuffled."""
    n_fill = int(rng.integers(2, 6))
    tokens = [digit] * (length - n_fill) + [int(t) for t in rng.integers(len(DIGITS), len(WORDS), n_fill)]
    return [int(t) for t in rng.permutation(tokens)]


def make_pairs(digits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each image: a text naming its digit (label 1) or another digit (label 0), half and half.

    Returns (token ids [N, TEXT_LENGTH], labels [N], named digits [N]).
    """
    labels = (rng.random(len(digits)) < 0.5).astype(np.int64)
    named = np.where(labels == 1, digits, (digits + rng.integers(1, 10, len(digits))) % 10)
    texts = np.array([digit_text(int(d), rng) for d in named], dtype=np.int64)
    return texts, labels, named


def generate(out_dir: Path, n_inputs: int = 100) -> Path:
    """Write the audit inputs (held-out digits) as ``manifest.jsonl`` + ``images/*.npy``; returns the manifest."""
    if not 1 <= n_inputs <= N_HELD_OUT:
        raise ValueError(f"n_inputs must lie in [1, {N_HELD_OUT}], got {n_inputs}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    _, _, images, digits = load_digits_split()
    rng = np.random.default_rng(DATA_SEED)
    texts, labels, _ = make_pairs(digits, rng)
    lines = []
    for i in range(n_inputs):
        name = f"d{i:04d}"
        buf = io.BytesIO()
        np.save(buf, images[i], allow_pickle=False)
        write_bytes_atomic(out_dir / "images" / f"{name}.npy", buf.getvalue())
        lines.append(json.dumps({"id": name, "text": " ".join(WORDS[t] for t in texts[i]),
                                 "image": f"images/{name}.npy", "label": int(labels[i]),
                                 "group": f"digit-{int(digits[i])}"}, sort_keys=True))
    manifest = out_dir / "manifest.jsonl"
    write_text_atomic(manifest, "\n".join(lines) + "\n")
    write_text_atomic(out_dir / "vocab.json", json.dumps(WORDS + ["<mask>"]) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the demo benchmark (digits x digit names).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    print(generate(args.out, args.n))


if __name__ == "__main__":
    main()
