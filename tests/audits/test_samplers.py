"""The samplers draw the law of docs/theory.md §1 on exactly the positions of §2, reproducibly per chunk."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hybridcert.audits.samplers import (
    HybridSampler,
    ImageNoise,
    TokenNoise,
    chunk_generator,
    chunk_seed,
    chunks,
    stable_hash,
)
from hybridcert.theory import ThreatModel

# A non-contiguous alphabet: the sampler must use the given ids, not 0..V-1.
ALPHABET = [3, 7, 11, 40, 41, 99, 250]
V = len(ALPHABET)
Z = 5.5  # two-sided normal quantile: each check fails by chance with probability < 1e-7


def within(freq: float, p: float, n: int) -> bool:
    return abs(freq - p) <= Z * math.sqrt(p * (1 - p) / n) + 1e-12


def draw(kernel: str, beta: float, clean: list[int], span: tuple[int, int], rows: int = 40000, seed: int = 0):
    noise = TokenNoise.make(kernel, ALPHABET, beta, mask_id=5)  # type: ignore[arg-type]
    tokens = torch.tensor(clean).unsqueeze(0).expand(rows, -1)
    return tokens, noise.apply(tokens, span[0], span[1], torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9, 1.0])
def test_uniform_other_keeps_with_one_minus_beta_and_substitutes_uniformly_among_the_others(beta: float) -> None:
    clean = [40, 3, 250, 7]
    tokens, noisy = draw("uniform-other", beta, clean, (0, 4))
    n = noisy.numel()
    kept = (noisy == tokens).float().mean().item()
    assert within(kept, 1 - beta, n)
    assert set(noisy.unique().tolist()) <= set(ALPHABET)
    changed = noisy[noisy != tokens]
    # among the changes at position 0 (clean 40): uniform over the V - 1 others, never 40 itself
    col = noisy[:, 0][noisy[:, 0] != 40]
    counts = np.array([(col == t).sum().item() for t in ALPHABET if t != 40])
    assert (col != 40).all() and counts.sum() == col.numel()
    assert stats.chisquare(counts).pvalue > 1e-7
    assert changed.numel() > 0


@pytest.mark.parametrize("beta", [0.3, 1.0])
def test_uniform_all_redraws_from_all_v_tokens(beta: float) -> None:
    tokens, noisy = draw("uniform-all", beta, [11, 99], (0, 2))
    n = noisy.numel()
    # keep probability 1 - beta + beta / V (the redraw may hit the clean token)
    kept = (noisy == tokens).float().mean().item()
    assert within(kept, 1 - beta + beta / V, n)
    col = noisy[:, 1]
    counts = np.array([(col == t).sum().item() for t in ALPHABET])
    expected = np.full(V, beta / V * col.numel())
    expected[ALPHABET.index(99)] += (1 - beta) * col.numel()
    assert stats.chisquare(counts, expected).pvalue > 1e-7


@pytest.mark.parametrize("beta", [0.2, 0.75])
def test_absorb_masks_with_beta_and_never_substitutes(beta: float) -> None:
    tokens, noisy = draw("absorb", beta, [3, 7, 11], (0, 3))
    masked = (noisy == 5).float().mean().item()
    assert within(masked, beta, noisy.numel())
    assert ((noisy == tokens) | (noisy == 5)).all()


def test_positions_are_independent() -> None:
    tokens, noisy = draw("uniform-other", 0.5, [3, 7], (0, 2), rows=40000)
    changed = (noisy != tokens).numpy()
    table = np.array([[np.sum(~changed[:, 0] & ~changed[:, 1]), np.sum(~changed[:, 0] & changed[:, 1])],
                      [np.sum(changed[:, 0] & ~changed[:, 1]), np.sum(changed[:, 0] & changed[:, 1])]])
    assert stats.chi2_contingency(table).pvalue > 1e-7


@pytest.mark.parametrize(
    ("kind", "span", "text_len"),
    [("l0", None, 5), ("suffix-append", 3, 5), ("suffix-inplace", 2, 5), ("suffix-inplace", 5, 5)],
)
def test_noised_positions_are_exactly_those_of_the_threat_model(kind: str, span: int | None, text_len: int) -> None:
    threat = ThreatModel(kind, span)  # type: ignore[arg-type]
    length = threat.input_length(text_len)
    start, stop = threat.noised_positions(text_len)
    clean = [ALPHABET[i % V] for i in range(length)]
    tokens, noisy = draw("uniform-other", 1.0, clean, (start, stop), rows=2000)
    changed = (noisy != tokens).any(dim=0).tolist()
    assert changed == [start <= j < stop for j in range(length)]
    # beta = 1 with uniform-other changes every noised position of every row
    assert (noisy[:, start:stop] != tokens[:, start:stop]).all()


def test_token_outside_the_alphabet_at_a_noised_position_is_refused() -> None:
    noise = TokenNoise.make("uniform-other", ALPHABET, 0.5)
    tokens = torch.tensor([[3, 8, 7]])
    with pytest.raises(ValueError, match="token id 8"):
        noise.apply(tokens, 0, 3, torch.Generator().manual_seed(0))
    # outside the noised span it is fine
    out = noise.apply(tokens, 2, 3, torch.Generator().manual_seed(0))
    assert out[0, :2].tolist() == [3, 8]


def test_bad_token_noise_parameters() -> None:
    with pytest.raises(ValueError, match="mask_id"):
        TokenNoise.make("absorb", ALPHABET, 0.5, mask_id=None)
    with pytest.raises(ValueError, match="outside the alphabet"):
        TokenNoise.make("absorb", ALPHABET, 0.5, mask_id=3)
    with pytest.raises(ValueError, match="beta"):
        TokenNoise.make("uniform-other", ALPHABET, 0.0)
    with pytest.raises(ValueError, match="duplicate"):
        TokenNoise.make("uniform-other", [1, 2, 2], 0.5)


@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
def test_gaussian_moments(sigma: float) -> None:
    image = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    n = 4000
    noisy = ImageNoise(sigma).apply(image.expand(n, 1, 8, 8), torch.Generator().manual_seed(1))
    eps = (noisy - image).double().flatten().numpy()
    m = eps.size
    assert abs(eps.mean()) <= Z * sigma / math.sqrt(m)
    # sample variance: sd about sigma^2 sqrt(2 / m)
    assert abs(eps.var() - sigma**2) <= Z * sigma**2 * math.sqrt(2 / m)
    assert abs(stats.kurtosis(eps)) <= Z * math.sqrt(24 / m)
    # pixels are independent: the correlation of two neighbouring pixels is about 0
    e = (noisy - image).reshape(n, 64).double().numpy()
    assert abs(np.corrcoef(e[:, 0], e[:, 1])[0, 1]) <= Z / math.sqrt(n)


def test_clamp_and_pixel_space() -> None:
    image = torch.full((1, 1, 4, 4), 0.5)
    gen = torch.Generator().manual_seed(2)
    clamped = ImageNoise(1.0, clamp=True).apply(image.expand(500, 1, 4, 4), gen)
    assert clamped.min() >= 0.0 and clamped.max() <= 1.0 and (clamped == 0.0).any() and (clamped == 1.0).any()
    # [-1, 1]: the same draw, mapped x -> 2x - 1 (sigma stays the [0, 1] one)
    a = ImageNoise(0.3).apply(image.expand(10, 1, 4, 4), torch.Generator().manual_seed(3))
    b = ImageNoise(0.3, pixel_space="[-1,1]").apply(image.expand(10, 1, 4, 4), torch.Generator().manual_seed(3))
    assert torch.allclose(b, 2 * a - 1)
    with pytest.raises(ValueError, match="sigma"):
        ImageNoise(0.0)


def test_seeds_depend_on_seed_id_stream_and_chunk_only() -> None:
    base = chunk_seed(7, "x1", 1, 0)
    assert base == chunk_seed(7, "x1", 1, 0)
    others = {chunk_seed(8, "x1", 1, 0), chunk_seed(7, "x2", 1, 0), chunk_seed(7, "x1", 0, 0),
              chunk_seed(7, "x1", 1, 1)}
    assert base not in others and len(others) == 4
    assert stable_hash("x1") == int.from_bytes(__import__("hashlib").sha256(b"x1").digest()[:8], "big")
    a = torch.rand(5, generator=chunk_generator(7, "x1", 1, 3, torch.device("cpu")))
    b = torch.rand(5, generator=chunk_generator(7, "x1", 1, 3, torch.device("cpu")))
    assert torch.equal(a, b)


def test_chunks_cover_the_samples_in_fixed_blocks() -> None:
    assert list(chunks(600, 256)) == [(0, 256), (1, 256), (2, 88)]
    assert list(chunks(0, 256)) == []
    assert sum(c for _, c in chunks(1001, 7)) == 1001


def test_a_chunk_does_not_depend_on_the_others() -> None:
    noise = TokenNoise.make("uniform-other", ALPHABET, 0.5)
    sampler = HybridSampler(noise, ImageNoise(0.25), audit_seed=11, chunk_size=64)
    tokens, image = torch.tensor([3, 7, 11]), torch.rand(1, 4, 4)
    first = sampler.draw("a", tokens, image, (0, 3), stream=1, chunk=2, count=64)
    sampler.draw("a", tokens, image, (0, 3), stream=1, chunk=0, count=64)
    again = sampler.draw("a", tokens, image, (0, 3), stream=1, chunk=2, count=64)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = sampler.draw("b", tokens, image, (0, 3), stream=1, chunk=2, count=64)
    assert not torch.equal(first[1], other[1])
