"""The attack's protocol over the guard adapter, on a tiny random LLaVA-OneVision guard built offline: the
spliced-embedding score equals the guard's own score, gradients reach the image and the embeddings, and a short
search returns a point inside the threat model."""

from __future__ import annotations

import pytest
import torch

from hybridcert.attacks.engine import AttackSettings, Target, check_feasible, search
from hybridcert.attacks.guard import GuardGradient
from hybridcert.attacks.protocol import as_gradient_filter, check_consistency
from hybridcert.audits.adapters import load_filter
from hybridcert.audits.samplers import HybridSampler, ImageNoise, TokenNoise
from tests.audits import guards_support as gs

pytestmark = pytest.mark.slow  # building and loading the tiny guard takes ~10 s

OPTIONS = {"policy": gs.POLICY, "answer_prefix": gs.ANSWER, "safe_words": ["Safe", "safe"],
           "unsafe_words": ["Unsafe", "unsafe"]}


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> GuardGradient:
    directory = gs.build_tiny_onevision(tmp_path_factory.mktemp("ov") / "ov")
    f = load_filter({"type": "guard", "path": str(directory), "device": "cpu", **OPTIONS})
    g = as_gradient_filter(f)
    assert isinstance(g, GuardGradient)
    return g


def test_spliced_score_is_the_guards_score(guard: GuardGradient) -> None:
    tokens = guard.guard.encode_text("cat knife dog")[None].expand(3, -1).clone()
    tokens[1, 0] = tokens[0, 2]
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = guard.scores_from_embeddings(guard.embed_tokens(tokens), images)
    theirs = guard.guard.scores(tokens, images)
    assert torch.allclose(ours, theirs, atol=1e-4)
    check_consistency(guard, tokens, images)
    emb = guard.embed_tokens(tokens).requires_grad_(True)
    x = images.clone().requires_grad_(True)
    guard.scores_from_embeddings(emb, x).sum().backward()  # type: ignore[no-untyped-call]
    assert emb.grad is not None and float(emb.grad.abs().sum()) > 0
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_search_on_the_guard(guard: GuardGradient) -> None:
    tokens = guard.guard.encode_text("cat knife dog")
    alphabet = list(range(12, 43))  # the tiny vocabulary's ordinary words (no special or image token)
    assert all(int(t) in alphabet for t in tokens)
    sampler = HybridSampler(TokenNoise.make("uniform-other", alphabet, 0.25), ImageNoise(0.5), 7, 64)
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(2))
    target = Target("g", tokens, image, (0, len(tokens)), tuple(range(len(tokens))), 1, 1, 0.5)
    out = search(guard, sampler, target, AttackSettings(steps=2, samples=4, candidates=3, topk=3, pgd_steps=2), 3)
    assert check_feasible(target, sampler.tokens.alphabet, torch.tensor(out.tokens), torch.from_numpy(out.image)) <= 0.5
    assert len(out.changed_positions) <= 1
