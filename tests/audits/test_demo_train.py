"""The demo's training is reproducible and its weights are safetensors within the size limit."""

from __future__ import annotations

import hashlib
from pathlib import Path

from safetensors.torch import load_file

from hybridcert.audits.demo import WEIGHTS
from hybridcert.audits.demo.model import DemoFilterNet
from hybridcert.audits.demo.train import train


def test_training_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    metrics = train(a, epochs=1, verbose=False)
    train(b, epochs=1, verbose=False)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert 0.0 <= metrics["noisy_accuracy"] <= 1.0 and metrics["held_out_pairs"] == 300


def test_committed_weights_load_strictly_and_are_small() -> None:
    assert WEIGHTS.stat().st_size < 5 * 1024 * 1024
    model = DemoFilterNet()
    model.load_state_dict(load_file(str(WEIGHTS)), strict=True)
