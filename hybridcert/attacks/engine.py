"""The adaptive joint attack on one input at one budget (d, eps), and its re-estimate (docs/theory.md §10).

Threat model (docs/theory.md §2): at most d token positions differ from the clean (padded) tokens, all at
positions the threat model lets the attacker change, all substitutes inside the alphabet; the image moves by at
most eps in l2 and stays in [0, 1]. Every returned point satisfies these constraints (checked before it is
returned, in float64 on the stored float32 image).

Search (``method="gradient"``), ``steps`` rounds of:

1. GCG-style token step (d > 0): the gradient of the surrogate loss with respect to the one-hot token at each
   changeable position, g[j, v] = <dL/de_j, W_v> over the m noise samples where position j kept its token, gives
   each position its ``topk`` most promising alphabet tokens; ``candidates`` random (position, token) swaps from
   those lists (within the budget d) are evaluated on the same m noise samples as the current point (common
   random numbers) and the best replaces the current point when it is strictly better;
2. ``pgd_steps`` steps of l2 PGD on the image (normalised gradient, step ``pgd_step * eps``), each followed by
   clamping to [0, 1] and scaling the shift back into the eps ball (a convex combination with the clean image,
   which stays in [0, 1]).

The surrogate loss is the side-signed decision score of the filter (``GradientFilter.scores_from_embeddings``)
averaged over m samples of the audit's own noise around the current point; candidates are ranked by the number
of the m samples on the certified side (the smoothed probability, estimated), ties broken by the surrogate.
``method="random"`` spends the same query budget on random feasible perturbations (benchmarks/bench_attack.py).

The attacked point is then re-estimated like a certificate input, never by majority vote (docs/theory.md §7):
n fresh samples of the deployed filter, a two-sided Clopper-Pearson interval at 1 - alpha on p = P[f = 1], and
the smoothed decision rule with tau: the attack *succeeds* (flips the decision significantly) when the whole
interval lies on the other side of tau (upper < tau for an input flagged clean, lower >= tau otherwise).

Randomness: every noise draw is a chunk of ``samplers.chunk_seed(seed, key, stream, chunk)`` with the key naming
the method, input and point, so results do not depend on batch sizes, order, or interruption and resumption.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from hybridcert.attacks.protocol import GradientFilter
from hybridcert.audits.samplers import HybridSampler, chunk_generator, chunks
from hybridcert.theory import clopper_pearson_lower, clopper_pearson_upper

Method = Literal["gradient", "random"]
SEARCH, ESTIMATE = 0, 1  # streams of an attack key


@dataclass(frozen=True)
class AttackSettings:
    """Search effort per (input, point). ``queries_per_step`` filter evaluations per round (module docstring)."""

    steps: int = 12
    samples: int = 32  # m: noise samples per objective evaluation
    candidates: int = 12
    topk: int = 6
    pgd_steps: int = 4
    pgd_step: float = 0.35  # fraction of eps per PGD step
    method: Method = "gradient"

    def __post_init__(self) -> None:
        for name in ("steps", "samples", "candidates", "topk", "pgd_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
                raise ValueError(f"attack.{name} must be an integer in [1, 100000], got {value!r}")
        if not (isinstance(self.pgd_step, float | int) and 0.0 < self.pgd_step <= 2.0):
            raise ValueError(f"attack.pgd_step must lie in (0, 2], got {self.pgd_step!r}")
        if self.method not in ("gradient", "random"):
            raise ValueError(f"attack.method must be gradient or random, got {self.method!r}")

    @property
    def query_budget(self) -> int:
        """Filter evaluations the gradient search spends at most per (input, point) (the random search spends
        this many)."""
        return self.steps * self.samples * (2 + self.candidates + self.pgd_steps)


@dataclass(frozen=True)
class Target:
    """What is attacked: clean tokens (padded as the filter reads them), clean image [C, H, W] in [0, 1], the
    noised span, the positions the attacker may change, the certified side (1: flagged clean), the budget."""

    input_id: str
    tokens: torch.Tensor  # [L] int64 on the device
    image: torch.Tensor  # [C, H, W] float32 in [0, 1] on the device
    span: tuple[int, int]
    positions: tuple[int, ...]
    side: int
    budget: int
    radius: float


@dataclass
class Outcome:
    tokens: list[int]
    image: np.ndarray
    changed_positions: list[int]
    l2: float
    queries: int


def point_key(method: str, input_id: str, budget: int, radius: float) -> str:
    """The seed key of one (method, input, point): its noise never overlaps the audit's streams or another point."""
    return f"attack\x1f{method}\x1f{input_id}\x1f{budget}\x1f{radius!r}"


class _Objective:
    """Noisy evaluations of candidate points with common random numbers (one generator seed per call)."""

    def __init__(self, filt: GradientFilter, sampler: HybridSampler, target: Target, seed: int, key: str,
                 block: int = 4096) -> None:
        self.filt, self.sampler, self.target, self.seed, self.key = filt, sampler, target, seed, key
        self.sign = 1.0 if target.side == 1 else -1.0
        self.block = block
        self.queries = 0

    def _noisy(self, tokens: torch.Tensor, image: torch.Tensor, chunk: int,
               m: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = chunk_generator(self.seed, self.key, SEARCH, chunk, tokens.device)
        start, stop = self.target.span
        toks = self.sampler.tokens.apply(tokens.unsqueeze(0).expand(m, -1), start, stop, gen)
        z = torch.randn((m, *image.shape), generator=gen, device=image.device, dtype=image.dtype)
        return toks, self._image_space(image.unsqueeze(0) + self.sampler.image.sigma * z)

    def _image_space(self, noisy: torch.Tensor) -> torch.Tensor:
        if self.sampler.image.clamp:
            noisy = noisy.clamp(0.0, 1.0)
        if self.sampler.image.pixel_space == "[-1,1]":
            noisy = noisy * 2.0 - 1.0
        return noisy

    def evaluate(self, points: list[tuple[torch.Tensor, torch.Tensor]], chunk: int, m: int) -> list[tuple[int, float]]:
        """(samples on the certified side, mean side-signed score) of each point, all on the noise of ``chunk``."""
        toks, imgs = zip(*(self._noisy(t, x, chunk, m) for t, x in points), strict=True)
        all_t, all_i = torch.cat(toks), torch.cat(imgs)
        scores = []
        with torch.no_grad():
            for s in range(0, all_t.shape[0], self.block):
                t, i = all_t[s:s + self.block], all_i[s:s + self.block]
                scores.append(self.filt.scores_from_embeddings(self.filt.embed_tokens(t), i).float())
        score = torch.cat(scores).view(len(points), m) * self.sign
        self.queries += len(points) * m
        side_count = (score > 0).sum(dim=1)
        return [(int(c), float(s)) for c, s in zip(side_count, score.mean(dim=1), strict=True)]

    def token_gradient(self, tokens: torch.Tensor, image: torch.Tensor, chunk: int, m: int,
                       table: torch.Tensor) -> torch.Tensor:
        """d(mean side-signed score)/d(one-hot) [L, V] over the alphabet ``table`` [V, E], counted at the samples
        where each position kept its token (the positions the attacker's token reaches)."""
        toks, imgs = self._noisy(tokens, image, chunk, m)
        emb = self.filt.embed_tokens(toks).detach().requires_grad_(True)
        loss = (self.filt.scores_from_embeddings(emb, imgs).float() * self.sign).mean()
        (grad,) = torch.autograd.grad(loss, emb)
        self.queries += m
        kept = (toks == tokens.unsqueeze(0)).to(grad.dtype).unsqueeze(-1)
        return (grad * kept).sum(dim=0) @ table.T.to(grad.dtype)

    def image_gradient(self, tokens: torch.Tensor, image: torch.Tensor, chunk: int, m: int) -> torch.Tensor:
        gen = chunk_generator(self.seed, self.key, SEARCH, chunk, tokens.device)
        start, stop = self.target.span
        toks = self.sampler.tokens.apply(tokens.unsqueeze(0).expand(m, -1), start, stop, gen)
        z = torch.randn((m, *image.shape), generator=gen, device=image.device, dtype=image.dtype)
        x = image.detach().clone().requires_grad_(True)
        noisy = self._image_space(x.unsqueeze(0) + self.sampler.image.sigma * z)
        with torch.no_grad():
            emb = self.filt.embed_tokens(toks)
        loss = (self.filt.scores_from_embeddings(emb, noisy).float() * self.sign).mean()
        (grad,) = torch.autograd.grad(loss, x)
        self.queries += m
        return grad


def project(image: torch.Tensor, clean: torch.Tensor, radius: float) -> torch.Tensor:
    """A point of [0, 1]^D within l2 ``radius`` of ``clean``, in ``clean``'s dtype: clamp to the box, then scale
    the shift into the ball (a convex combination with ``clean``, itself in the box). The distance is checked on
    the rounded result, in float64, and the shift shrunk until it holds (float32 rounding can add ~1e-7)."""
    x = image.detach().clamp(0.0, 1.0)
    delta = (x.double() - clean.double())
    norm = float(delta.norm())
    factor = 1.0 if norm <= radius else radius / norm
    for _ in range(60):
        out = (clean.double() + delta * factor).clamp(0.0, 1.0).to(clean.dtype)
        if float((out.double() - clean.double()).norm()) <= radius:
            return out
        factor *= 1.0 - 1e-5
    return clean.clone()


def _changed(tokens: torch.Tensor, clean: torch.Tensor) -> list[int]:
    return [int(j) for j in torch.nonzero(tokens != clean).flatten()]


def check_feasible(target: Target, alphabet: torch.Tensor, tokens: torch.Tensor, image: torch.Tensor) -> float:
    """The image's l2 distance; AssertionError unless the point lies in the threat model (module docstring)."""
    changed = _changed(tokens, target.tokens)
    assert len(changed) <= target.budget, "more changed tokens than the budget"
    assert set(changed) <= set(target.positions), "a token changed outside the attacker's positions"
    assert bool(torch.isin(tokens[changed], alphabet).all()) if changed else True, "a token outside the alphabet"
    x = image.double()
    assert bool((x >= 0).all() and (x <= 1).all()), "image outside [0, 1]"
    l2 = float((x - target.image.double()).norm())
    assert l2 <= target.radius, f"image l2 {l2} above the radius {target.radius}"
    return l2


@contextlib.contextmanager
def deterministic_kernels() -> Iterator[None]:
    """cuDNN's deterministic algorithms while searching: its default backward kernels (a convolution's gradient)
    accumulate in a run-dependent order on a GPU, which would make the search, and so the attacked point,
    differ from run to run and between a killed-and-resumed run and an uninterrupted one."""
    cudnn = torch.backends.cudnn
    previous = (cudnn.deterministic, cudnn.benchmark)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = previous


def search(filt: GradientFilter, sampler: HybridSampler, target: Target, settings: AttackSettings,
           seed: int) -> Outcome:
    """Run the search of ``settings.method`` (module docstring) and return a feasible attacked point."""
    with deterministic_kernels():
        return _search(filt, sampler, target, settings, seed)


def _search(filt: GradientFilter, sampler: HybridSampler, target: Target, settings: AttackSettings,
            seed: int) -> Outcome:
    key = point_key(settings.method, target.input_id, target.budget, target.radius)
    obj = _Objective(filt, sampler, target, seed, key)
    alphabet = sampler.tokens.alphabet
    tokens, image = target.tokens.clone(), target.image.clone()
    if settings.method == "random":
        tokens, image = _random_search(obj, target, settings, alphabet, seed, key)
    else:
        table = filt.embedding_matrix()[alphabet].detach()
        m = settings.samples
        per_round = 2 + settings.candidates + settings.pgd_steps  # noise chunks a round may use
        token_step = target.budget > 0 and bool(target.positions)
        # without a token step (d = 0) the round's token queries go to more PGD steps
        pgd_steps = settings.pgd_steps + (0 if token_step else 2 + settings.candidates)
        for step in range(settings.steps):
            base = step * per_round
            gen = chunk_generator(seed, key, SEARCH + 2, step, tokens.device)
            if token_step:
                tokens = _token_step(obj, target, settings, alphabet, table, tokens, image, base, gen)
            if target.radius > 0:
                lr = settings.pgd_step * target.radius
                for it in range(pgd_steps):
                    g = obj.image_gradient(tokens, image, base + 2 + it, m)
                    gn = float(g.double().norm())
                    if gn == 0.0 or not math.isfinite(gn):
                        continue
                    image = project(image - lr * g / gn, target.image, target.radius)
    l2 = check_feasible(target, alphabet, tokens, image)
    return Outcome([int(t) for t in tokens.cpu()], image.detach().cpu().numpy().astype(np.float32),
                   _changed(tokens, target.tokens), l2, obj.queries)


def _token_step(obj: _Objective, target: Target, settings: AttackSettings, alphabet: torch.Tensor,
                table: torch.Tensor, tokens: torch.Tensor, image: torch.Tensor, base: int,
                gen: torch.Generator) -> torch.Tensor:
    m = settings.samples
    grad = obj.token_gradient(tokens, image, base, m, table)  # [L, V]
    changed = set(_changed(tokens, target.tokens))
    eligible = [j for j in target.positions if j in changed or len(changed) < target.budget]
    cur_idx = torch.searchsorted(alphabet, tokens)
    candidates: list[torch.Tensor] = []
    if eligible:
        pos = torch.tensor(eligible, device=tokens.device)
        gain = grad[pos] - grad[pos, cur_idx[pos]].unsqueeze(1)  # first-order change of the loss
        gain[torch.arange(len(eligible)), cur_idx[pos]] = float("inf")  # no "swap" to the same token
        top = torch.topk(-gain, min(settings.topk, gain.shape[1] - 1), dim=1).indices  # most negative first
        picks_p = torch.randint(0, len(eligible), (settings.candidates,), generator=gen, device=tokens.device)
        picks_k = torch.randint(0, top.shape[1], (settings.candidates,), generator=gen, device=tokens.device)
        for p, k in zip(picks_p.tolist(), picks_k.tolist(), strict=True):
            cand = tokens.clone()
            cand[eligible[p]] = alphabet[top[p, k]]
            candidates.append(cand)
    if not candidates:
        return tokens
    scored = obj.evaluate([(tokens, image)] + [(c, image) for c in candidates], base + 1, m)
    best = min(range(len(scored)), key=lambda i: (scored[i][0], scored[i][1], i))
    return tokens if best == 0 else candidates[best - 1]


def _random_search(obj: _Objective, target: Target, settings: AttackSettings, alphabet: torch.Tensor, seed: int,
                   key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random feasible perturbations (up to d random alphabet substitutions at random allowed positions, an image
    shift of l2 norm eps in a random direction) under the gradient search's query budget; keeps the best on
    common noise (the same chunk for every candidate)."""
    m = settings.samples
    gen = chunk_generator(seed, key, SEARCH + 2, 0, target.tokens.device)
    best_t, best_x = target.tokens.clone(), target.image.clone()
    best = obj.evaluate([(best_t, best_x)], 0, m)[0]
    batch = 8
    while obj.queries + m <= settings.query_budget:
        count = min(batch, (settings.query_budget - obj.queries) // m)
        cands = []
        for _ in range(count):
            t = target.tokens.clone()
            if target.budget > 0 and target.positions:
                k = min(target.budget, len(target.positions))
                order = torch.randperm(len(target.positions), generator=gen, device=t.device)[:k]
                for o in order.tolist():
                    t[target.positions[o]] = alphabet[int(torch.randint(0, len(alphabet), (1,), generator=gen,
                                                                        device=t.device))]
            x = target.image.clone()
            if target.radius > 0:
                u = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                x = project(x + target.radius * u / u.norm(), target.image, target.radius)
            cands.append((t, x))
        for (t, x), s in zip(cands, obj.evaluate(cands, 0, m), strict=True):
            if (s[0], s[1]) < (best[0], best[1]):
                best_t, best_x, best = t, x, s
    return best_t, best_x


@dataclass(frozen=True)
class Estimate:
    """The attacked point's smoothed score p = P[f = 1] from n fresh samples, with a two-sided interval."""

    ones: int
    n: int
    lower: float
    upper: float

    def flipped(self, side: int, tau: float) -> bool:
        """The smoothed decision (p >= tau flags) changed significantly: the interval is on the other side of tau."""
        return self.upper < tau if side == 1 else self.lower >= tau


def estimate(filt: Any, sampler: HybridSampler, key: str, tokens: torch.Tensor, image: torch.Tensor,
             span: tuple[int, int], n: int, alpha: float, batch_size: int) -> Estimate:
    """n fresh samples of the deployed filter at (tokens, image) on the ESTIMATE stream of ``key``, counted chunk
    by chunk like the audit runner (batch-size independent); Clopper-Pearson at alpha / 2 on each side."""
    ones = 0
    clean_index = sampler.clean_index(tokens, span)
    pending_t: list[torch.Tensor] = []
    pending_i: list[torch.Tensor] = []
    for chunk, size in chunks(n, sampler.chunk_size):
        toks, imgs = sampler.draw(key, tokens, image, span, ESTIMATE, chunk, size, clean_index)
        pending_t.append(toks)
        pending_i.append(imgs)
        if sum(t.shape[0] for t in pending_t) >= batch_size:
            all_t, all_i = torch.cat(pending_t), torch.cat(pending_i)
            for s in range(0, all_t.shape[0], batch_size):
                ones += int(filt(all_t[s:s + batch_size], all_i[s:s + batch_size]).sum().item())
            pending_t, pending_i = [], []
    if pending_t:
        all_t, all_i = torch.cat(pending_t), torch.cat(pending_i)
        for s in range(0, all_t.shape[0], batch_size):
            ones += int(filt(all_t[s:s + batch_size], all_i[s:s + batch_size]).sum().item())
    lo = float(clopper_pearson_lower(ones, n, alpha / 2))
    hi = float(clopper_pearson_upper(ones, n, alpha / 2))
    return Estimate(ones, n, lo, hi)


def image_sha256(image: np.ndarray) -> str:
    """sha256 of the image's .npy bytes as written by ``numpy.save`` (float32, C order)."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image, dtype=np.float32), allow_pickle=False)
    return hashlib.sha256(buf.getvalue()).hexdigest()
