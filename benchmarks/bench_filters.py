"""Throughput of the filter adapters on this machine (CPU here): batched vs one sample per call.

Run: ``python benchmarks/bench_filters.py`` (or ``python -m benchmarks.bench_filters``). Builds the tiny
random LLaVA guard of the tests (offline) and a tiny module, and prints samples per second for each batch
size and the ratio against batch size 1 measured in the same run. The tiny model measures the adapter's
overhead (prompt assembly, padding, preprocessing, read-out) relative to the forward pass, not a real
guard's speed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tiny test models live in tests/audits


def _rate(call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], tokens: torch.Tensor, images: torch.Tensor,
          batch: int, rounds: int = 3) -> float:
    """Samples per second of ``call`` over all samples in ``batch``-sized slices: the best of ``rounds``."""
    call(tokens[:batch], images[:batch])  # warm-up
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, tokens.shape[0], batch):
            call(tokens[i:i + batch], images[i:i + batch])
        best = max(best, tokens.shape[0] / (time.perf_counter() - start))
    return best


def main() -> None:
    from safetensors.torch import save_file

    from hybridcert.audits.adapters import load_filter
    from tests.audits.adapters_support import IMAGE_SIZE, PROMPT, WORDS, ScriptableNet, build_tiny_llava

    torch.manual_seed(0)
    torch.set_num_threads(1)  # a shared machine: one thread gives steadier ratios
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_tiny_llava(root / "llava")
        save_file(ScriptableNet().state_dict(), str(root / "net.safetensors"))
        guard = load_filter({"type": "llava", "path": str(root / "llava"), "prompt": PROMPT, "device": "cpu"})
        net = load_filter(
            {"type": "module", "class_path": "tests.audits.adapters_support:ScriptableNet",
             "weights": str(root / "net.safetensors"), "device": "cpu"}
        )
        n = 64
        tokens = torch.randint(11, len(WORDS), (n, 12))
        images = torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE)
        for name, f, imgs in (("llava (tiny)", guard, images), ("module (tiny)", net, torch.rand(n, 3, 8, 8))):
            base = _rate(f, tokens, imgs, 1)
            print(f"{name:14s} batch  1: {base:9.1f} samples/s  (baseline)")
            for b in (8, 32, 64):
                r = _rate(f, tokens, imgs, b)
                print(f"{name:14s} batch {b:2d}: {r:9.1f} samples/s  x{r / base:5.1f}")
        # Adapter overhead: the whole filter call vs the bare model forward on prebuilt inputs, batch 32.
        with torch.inference_mode():
            inputs = guard.model_inputs(tokens[:32], images[:32])

        def bare(_t: torch.Tensor, _i: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                out = guard.model(**inputs, logits_to_keep=1, use_cache=False)
            return out.logits

        raw = _rate(bare, tokens[:32], images[:32], 32, rounds=5)
        full = _rate(guard, tokens[:32], images[:32], 32, rounds=5)
        print(f"llava (tiny) batch 32: bare forward {raw:.1f} samples/s, whole filter {full:.1f} samples/s "
              f"(filter/bare x{full / raw:.2f})")


if __name__ == "__main__":
    main()
