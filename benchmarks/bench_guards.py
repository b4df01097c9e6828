"""Adapter overhead of the vision-language guards, per family: the whole filter against the bare model forward.

Run: ``PYTHONPATH=. python benchmarks/bench_guards.py [--device cuda] [--hidden 256 --layers 4]``.

For each family (tiny random models of the tests, built offline) and batch sizes 1, 8 and 32, it measures
samples per second of (a) the whole filter, ``f.scores(tokens, images)`` (prompt splicing, padding, image
preprocessing in floating point, forward, read-out), and (b) the bare model forward on inputs prebuilt once
by the adapter (``model(**inputs, logits_to_keep=1)``), side by side in the same run, and prints the ratio
whole / bare (1.00 = no overhead; the target is >= 0.95 at batch 32). A tiny model makes the forward cheap,
so the ratio here is a pessimistic bound on a real guard's; ``--hidden`` / ``--layers`` grow the language
model to see the ratio approach 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tiny test models live in tests/audits


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(call: Callable[[], object], batch: int, device: torch.device, rounds: int) -> float:
    """Samples per second of ``call`` (one batch each): the best of ``rounds`` timings of a few calls."""
    call()
    _sync(device)
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        reps = 3
        for _ in range(reps):
            call()
        _sync(device)
        best = max(best, reps * batch / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--families", default="llava,llava_next,llava_onevision,qwen2_vl,qwen2_5_vl,mllama")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--hidden", type=int, default=32, help="language model width of the tiny models")
    parser.add_argument("--layers", type=int, default=2, help="language model depth of the tiny models")
    parser.add_argument("--image", type=int, default=32, help="image side (anyres: 4 tiles + base at 32)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    from hybridcert.audits.adapters import load_filter
    from tests.audits import guards_support as gs
    from tests.audits.adapters_support import PROMPT, build_tiny_llava

    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(1)  # a shared machine: one thread gives steadier ratios
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, text hidden "
          f"{args.hidden} x {args.layers} layers, image {args.image}x{args.image}, dtype {args.dtype}")
    builders: dict[str, Callable[[Path], Path]] = {
        "llava": lambda d: build_tiny_llava(d),
        "llava_next": lambda d: gs.build_tiny_next(d, hidden=args.hidden, layers=args.layers),
        "llava_onevision": lambda d: gs.build_tiny_onevision(d, hidden=args.hidden, layers=args.layers),
        "qwen2_vl": lambda d: gs.build_tiny_qwen(d, "2", hidden=args.hidden, layers=args.layers),
        "qwen2_5_vl": lambda d: gs.build_tiny_qwen(d, "2.5", hidden=args.hidden, layers=args.layers),
        "mllama": lambda d: gs.build_tiny_mllama(d, hidden=args.hidden, layers=args.layers),
    }
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{'family':16s} {'batch':>5s} {'filter/s':>10s} {'bare/s':>10s} {'filter/bare':>11s}")
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            directory = builders[family](Path(tmp) / family)
            spec = {"type": "guard", "path": str(directory), "device": str(device), "dtype": args.dtype,
                    "safe_words": ["Safe", "safe"], "unsafe_words": ["Unsafe", "unsafe"]}
            if family == "llava":
                spec["prompt"] = PROMPT
            else:
                spec.update(policy=gs.POLICY, answer_prefix=gs.ANSWER)
            f = load_filter(spec)
            words = [w for w in gs.WORDS if not w.startswith("<") and w in f.tokenizer.get_vocab()][:20]
            ids = torch.tensor([f.tokenizer.convert_tokens_to_ids(w) for w in words])
            for b in batches:
                tokens = ids[torch.randint(0, len(ids), (b, 12))].to(device)
                images = torch.rand(b, 3, args.image, args.image, device=device)
                with torch.inference_mode():
                    inputs = f.model_inputs(tokens, images)

                def bare(inputs: dict[str, torch.Tensor] = inputs, model: Any = f.model) -> object:
                    with torch.inference_mode():
                        return model(**inputs, logits_to_keep=1, use_cache=False).logits

                def whole(tokens: torch.Tensor = tokens, images: torch.Tensor = images, f: Any = f) -> object:
                    return f.scores(tokens, images)

                raw = _rate(bare, b, device, args.rounds)
                full = _rate(whole, b, device, args.rounds)
                print(f"{family:16s} {b:5d} {full:10.1f} {raw:10.1f} {full / raw:11.2f}", flush=True)


if __name__ == "__main__":
    main()
