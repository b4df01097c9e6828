"""Seeded torch samplers for the hybrid smoothing noise (docs/theory.md §1 and §2).

Token noise acts on the positions the threat model noises, independently per position, with the alphabet
given as a set of token ids (not necessarily the whole vocabulary). Image noise is N(0, sigma^2 I) added in
the certificate's [0, 1] pixel space, then optionally clamped and mapped to the filter's pixel space (docs/theory.md §1:
post-processing does not change the certificate; docs/theory.md §7: the factor 2 of a [-1, 1] model is applied to the
image, never to sigma). The filter receives the sampled token ids as they are: nothing is decoded and
re-tokenised (docs/theory.md §7).

Randomness is one ``torch.Generator`` per (audit seed, input id, stream, chunk), derived with
``numpy.random.SeedSequence``; a chunk is a fixed-size block of samples, so the samples of an input do not
depend on the batch size or on how the work is split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hybridcert.theory import KERNELS, KernelName

PixelSpace = Literal["[0,1]", "[-1,1]"]
PIXEL_SPACES: tuple[str, ...] = ("[0,1]", "[-1,1]")

#: Streams of an input's samples: selection (n0 samples) and estimation (n samples; per-budget pass d uses
#: stream ESTIMATE + d).
SELECT, ESTIMATE = 0, 1


def stable_hash(input_id: str) -> int:
    """A 64-bit integer from an input id (sha256), identical on every machine and Python run."""
    return int.from_bytes(hashlib.sha256(input_id.encode("utf-8")).digest()[:8], "big")


def chunk_seed(audit_seed: int, input_id: str, stream: int, chunk: int) -> int:
    """The 64-bit torch seed of one chunk: SeedSequence(audit_seed, spawn_key=(hash(id), stream, chunk))."""
    seq = np.random.SeedSequence(entropy=audit_seed, spawn_key=(stable_hash(input_id), stream, chunk))
    return int(seq.generate_state(1, dtype=np.uint64)[0])


def chunk_generator(audit_seed: int, input_id: str, stream: int, chunk: int, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` seeded for one chunk (see ``chunk_seed``)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(chunk_seed(audit_seed, input_id, stream, chunk))
    return gen


def chunks(count: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """(chunk index, samples in that chunk) covering ``count`` samples in fixed blocks of ``chunk_size``."""
    for index, start in enumerate(range(0, count, chunk_size)):
        yield index, min(chunk_size, count - start)


@dataclass(frozen=True)
class TokenNoise:
    """A token kernel (docs/theory.md §1) over an alphabet of allowed token ids.

    ``uniform-other``: keep w.p. 1 - beta, else one of the V - 1 other alphabet tokens uniformly.
    ``uniform-all``: keep w.p. 1 - beta, else one of all V alphabet tokens uniformly.
    ``absorb``: replace by ``mask_id`` (a token id outside the alphabet) w.p. beta.
    """

    kernel: KernelName
    alphabet: torch.Tensor  # sorted, unique, int64, on the sampling device
    beta: float
    mask_id: int | None = None

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if not 0.0 < self.beta <= 1.0:
            raise ValueError(f"beta must lie in (0, 1], got {self.beta!r}")
        a = self.alphabet
        if a.ndim != 1 or a.numel() < 2 or a.dtype != torch.int64:
            raise ValueError("alphabet must be a 1-d int64 tensor of at least 2 token ids")
        if not bool((a[1:] > a[:-1]).all()):
            raise ValueError("alphabet must be sorted and free of duplicates")
        if self.kernel == "absorb":
            if self.mask_id is None:
                raise ValueError("the absorb kernel needs a mask_id")
            if bool((a == self.mask_id).any()):
                raise ValueError(f"mask_id {self.mask_id} must lie outside the alphabet")

    @classmethod
    def make(
        cls, kernel: KernelName, alphabet: list[int] | np.ndarray, beta: float, mask_id: int | None = None,
        device: str | torch.device = "cpu",
    ) -> TokenNoise:
        ids = torch.as_tensor(np.unique(np.asarray(alphabet, dtype=np.int64)), device=torch.device(device))
        if ids.numel() != len(alphabet):
            raise ValueError("alphabet holds duplicate token ids")
        return cls(kernel, ids, float(beta), mask_id)

    @property
    def vocab_size(self) -> int:
        """V, the size of the allowed token set (the alphabet size of the certificate)."""
        return int(self.alphabet.numel())

    def alphabet_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Index of each token in the alphabet; ValueError when a token is not in it."""
        idx = torch.searchsorted(self.alphabet, tokens).clamp_(max=self.vocab_size - 1)
        if not bool((self.alphabet[idx] == tokens).all()):
            bad = tokens[self.alphabet[idx] != tokens].flatten()[0].item()
            raise ValueError(f"token id {bad} at a noised position is not in the alphabet")
        return idx

    def apply(
        self, tokens: torch.Tensor, start: int, stop: int, generator: torch.Generator,
        clean_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Noise positions [start, stop) of ``tokens`` [N, L] (a new tensor; the others are kept).

        Draws, in this order: one uniform per noised position (noise w.p. beta), then for the uniform kernels
        one replacement index per noised position. ``clean_index`` (the alphabet index of the clean tokens at
        the noised positions, broadcastable to [N, stop - start]) saves the lookup when it is known.
        """
        out = tokens.contiguous().clone()
        if stop <= start:
            return out
        span = out[:, start:stop]
        shape = span.shape
        noised = torch.rand(shape, generator=generator, device=tokens.device) < self.beta
        if self.kernel == "absorb":
            assert self.mask_id is not None
            span.masked_fill_(noised, self.mask_id)
            return out
        v = self.vocab_size
        if clean_index is None:
            clean_index = self.alphabet_index(span.contiguous())
        if self.kernel == "uniform-other":
            j = torch.randint(0, v - 1, shape, generator=generator, device=tokens.device)
            new_idx = j + (j >= clean_index).long()
        else:
            new_idx = torch.randint(0, v, shape, generator=generator, device=tokens.device)
        # embedding() is a plain gather that stays fast for small tensors on a busy CPU
        replacement = torch.nn.functional.embedding(new_idx, self.alphabet.unsqueeze(1)).squeeze(-1)
        span.copy_(torch.where(noised, replacement, span))
        return out


@dataclass(frozen=True)
class ImageNoise:
    """Gaussian image noise with standard deviation ``sigma`` in [0, 1] pixel space (docs/theory.md §1).

    ``clamp`` clips the noisy image to [0, 1]; ``pixel_space`` "[-1,1]" then maps x -> 2x - 1 for a filter
    that reads that space (sigma stays the certificate's, docs/theory.md §7).
    """

    sigma: float
    clamp: bool = False
    pixel_space: PixelSpace = "[0,1]"

    def __post_init__(self) -> None:
        if not self.sigma > 0.0:
            raise ValueError(f"sigma must be > 0, got {self.sigma!r}")
        if self.pixel_space not in PIXEL_SPACES:
            raise ValueError(f"pixel_space must be one of {', '.join(PIXEL_SPACES)}, got {self.pixel_space!r}")

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``images`` [N, C, H, W] in [0, 1] -> noisy images in the filter's pixel space."""
        noisy = images + self.sigma * torch.randn(images.shape, generator=generator, device=images.device,
                                                  dtype=images.dtype)
        if self.clamp:
            noisy = noisy.clamp_(0.0, 1.0)
        if self.pixel_space == "[-1,1]":
            noisy = noisy.mul_(2.0).sub_(1.0)
        return noisy


@dataclass(frozen=True)
class HybridSampler:
    """Draws the hybrid noise around one input, chunk by chunk, reproducibly (module docstring)."""

    tokens: TokenNoise
    image: ImageNoise
    audit_seed: int
    chunk_size: int = 1024

    def clean_index(self, clean_tokens: torch.Tensor, span: tuple[int, int]) -> torch.Tensor | None:
        """Alphabet index of the clean tokens at the noised positions (None when the kernel needs none)."""
        if self.tokens.kernel == "absorb" or span[1] <= span[0]:
            return None
        return self.tokens.alphabet_index(clean_tokens[span[0]:span[1]].contiguous())

    def draw(
        self, input_id: str, clean_tokens: torch.Tensor, clean_image: torch.Tensor, span: tuple[int, int],
        stream: int, chunk: int, count: int, clean_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` noisy samples (tokens [count, L], images [count, C, H, W]) of chunk ``chunk``.

        ``clean_tokens`` [L] and ``clean_image`` [C, H, W] live on the sampling device; ``span`` is the
        half-open range of noised positions; ``clean_index`` (from ``clean_index``) saves a lookup per chunk.
        """
        gen = chunk_generator(self.audit_seed, input_id, stream, chunk, clean_tokens.device)
        if clean_index is None:
            clean_index = self.clean_index(clean_tokens, span)
        toks = self.tokens.apply(clean_tokens.unsqueeze(0).expand(count, -1), span[0], span[1], gen, clean_index)
        imgs = self.image.apply(clean_image.unsqueeze(0).expand((count, *clean_image.shape)), gen)
        return toks, imgs
