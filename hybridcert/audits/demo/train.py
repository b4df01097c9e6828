"""Train the demo filter with hybrid noise augmentation (reproducible: fixed seeds, CPU, one thread).

``python -m hybridcert.audits.demo.train [--out FILE]`` rewrites the committed weights
(``demo_filter.safetensors``, float32, < 5 MB) and prints clean accuracy and accuracy under the demo's noise
on the held-out digits. Every training sample is noised with the audit's own samplers (docs/theory.md §1): token noise
at the demo's beta on every text position, Gaussian image noise at the demo's sigma.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from hybridcert.audits.demo import BETA, KERNEL, SIGMA, WEIGHTS
from hybridcert.audits.demo.data import MASK_ID, WORDS, load_digits_split, make_pairs
from hybridcert.audits.demo.model import DemoFilterNet
from hybridcert.audits.samplers import ImageNoise, TokenNoise
from hybridcert.results.atomic import write_bytes_atomic

TRAIN_SEED = 1234
EPOCHS = 30
REPEATS = 4
BATCH = 128


def _noise(beta: float, sigma: float) -> tuple[TokenNoise, ImageNoise]:
    return TokenNoise.make(KERNEL, list(range(len(WORDS))), beta, MASK_ID), ImageNoise(sigma)


@torch.no_grad()
def evaluate(model: nn.Module, texts: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
             noisy: bool, draws: int = 20, seed: int = 99) -> float:
    """Accuracy of single decisions (clean, or averaged over ``draws`` noise draws per pair)."""
    model.eval()
    if not noisy:
        return float((model(texts, images).argmax(1) == labels).float().mean())
    tok_noise, img_noise = _noise(BETA, SIGMA)
    gen = torch.Generator().manual_seed(seed)
    hits = 0.0
    for _ in range(draws):
        t = tok_noise.apply(texts, 0, texts.shape[1], gen)
        x = img_noise.apply(images, gen)
        hits += float((model(t, x).argmax(1) == labels).float().mean())
    return hits / draws


def train(out: Path = WEIGHTS, epochs: int = EPOCHS, verbose: bool = True) -> dict[str, float]:
    torch.manual_seed(TRAIN_SEED)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_x, train_y, test_x, test_y = load_digits_split()
        rng = np.random.default_rng(TRAIN_SEED)
        model = DemoFilterNet()
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
        gen = torch.Generator().manual_seed(TRAIN_SEED)
        images_all = torch.from_numpy(np.repeat(train_x, REPEATS, axis=0))
        digits_all = np.repeat(train_y, REPEATS)
        for epoch in range(epochs):
            model.train()
            texts, labels, named = make_pairs(digits_all, rng)
            order = torch.randperm(len(labels), generator=gen)
            t_all, y_all = torch.from_numpy(texts), torch.from_numpy(labels)
            named_all, shown_all = torch.from_numpy(named), torch.from_numpy(digits_all)
            # curriculum: the noise grows to the audit's level over the first half, then stays there
            ramp = min(1.0, (epoch + 1) / max(1, epochs // 2))
            tok_noise, img_noise = _noise(BETA * ramp, SIGMA * ramp)
            total = 0.0
            for s in range(0, len(order), BATCH):
                idx = order[s:s + BATCH]
                t = tok_noise.apply(t_all[idx], 0, t_all.shape[1], gen)
                x = img_noise.apply(images_all[idx], gen)
                ft, fi = model.features(t, x)
                loss = (nn.functional.cross_entropy(model.fuse(ft, fi), y_all[idx])
                        + nn.functional.cross_entropy(model.text_digit(ft), named_all[idx])
                        + nn.functional.cross_entropy(model.image_digit(fi), shown_all[idx]))
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                total += float(loss.detach()) * len(idx)
            sched.step()
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f}", flush=True)
        test_texts, test_labels, _ = make_pairs(test_y, np.random.default_rng(TRAIN_SEED + 1))
        tt, ty, tx = torch.from_numpy(test_texts), torch.from_numpy(test_labels), torch.from_numpy(test_x)
        metrics = {"clean_accuracy": evaluate(model, tt, tx, ty, noisy=False),
                   "noisy_accuracy": evaluate(model, tt, tx, ty, noisy=True),
                   "beta": BETA, "sigma": SIGMA, "epochs": epochs, "held_out_pairs": len(ty)}
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        write_bytes_atomic(out, save(state, metadata={"metrics": json.dumps(metrics, sort_keys=True)}))
        return metrics
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the demo filter with hybrid noise augmentation.")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    metrics = train(args.out, args.epochs)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
