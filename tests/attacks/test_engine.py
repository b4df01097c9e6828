"""The attack engine on the real demo filter: every returned point lies in the threat model; the re-estimate is
seeded per chunk (batch-size independent); a filter whose differentiable score is not its decision is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hybridcert.attacks.engine import AttackSettings, Target, check_feasible, estimate, project, search
from hybridcert.attacks.protocol import as_gradient_filter, check_consistency
from hybridcert.audits.config import load_spec, parse_spec
from hybridcert.audits.counting import clean_tokens
from hybridcert.audits.preparation import Audit, prepare
from tests.attacks.conftest import SMALL


def _audit(config: tuple[Path, dict[str, Any]], **threat: Any) -> Audit:
    path, data = config
    if threat:
        data = {**data, "threat_model": threat, "tokens": {**data["tokens"], "pad_id": 10}}
    return prepare(parse_spec(data, path.parent))


@pytest.mark.parametrize("threat", [{"kind": "l0"}, {"kind": "suffix-append", "span": 3},
                                    {"kind": "suffix-inplace", "span": 4}])
@pytest.mark.parametrize("method", ["gradient", "random"])
def test_attacked_point_lies_in_the_threat_model(demo_config: Any, threat: dict[str, Any], method: str) -> None:
    from hybridcert.attacks.run import target_for
    from hybridcert.results.schema import Counts, FrontierPoint, InputResult

    audit = _audit(demo_config, **threat)
    result = InputResult(id=audit.dataset.inputs[0].id, label=1, counts=Counts(n0=0, n=1, target=1), target_class=1,
                         side="flag", threshold=0.5, p_a_lower=0.5, decision="flag", correct=True, max_budget=2,
                         frontier=[FrontierPoint(budget=0, radius=0.0)])  # a consistent record: flag needs a frontier
    target = target_for(audit, 0, result, (2, 0.7))
    settings = AttackSettings(**SMALL, method=method)  # type: ignore[arg-type]
    out = search(as_gradient_filter(audit.filter), audit.sampler, target, settings, 1)
    tokens = torch.tensor(out.tokens)
    assert len(out.changed_positions) <= 2
    assert set(out.changed_positions) <= set(target.positions)
    if threat["kind"] == "suffix-append":
        assert target.positions == (24, 25) and target.tokens.shape[0] == 27
    assert check_feasible(target, audit.sampler.tokens.alphabet, tokens, torch.from_numpy(out.image)) <= 0.7
    assert 0 < out.queries <= settings.query_budget
    if method == "gradient" and threat["kind"] == "l0":
        assert out.l2 > 0.5  # PGD moved the image to (near) the ball's edge


def test_projection_stays_in_ball_and_box() -> None:
    gen = torch.Generator().manual_seed(3)
    clean = torch.rand((1, 8, 8), generator=gen)
    for radius in (0.0, 0.01, 0.5, 3.0):
        for scale in (0.1, 1.0, 10.0):
            x = project(clean + scale * torch.randn((1, 8, 8), generator=gen), clean, radius)
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
            assert float((x.double() - clean.double()).norm()) <= radius


def test_check_feasible_refuses_points_outside_the_threat_model(demo_config: Any) -> None:
    audit = _audit(demo_config)
    item = audit.dataset.inputs[0]
    clean = clean_tokens(audit, item)
    image = torch.from_numpy(item.image)
    target = Target(item.id, clean, image, (0, len(clean)), tuple(range(len(clean))), 1, 1, 0.5)
    two = clean.clone()
    two[0], two[1] = (two[0] + 1) % 32, (two[1] + 1) % 32
    with pytest.raises(AssertionError, match="budget"):
        check_feasible(target, audit.sampler.tokens.alphabet, two, image)
    outside = clean.clone()
    outside[0] = 32  # the mask id, outside the alphabet
    with pytest.raises(AssertionError, match="alphabet"):
        check_feasible(target, audit.sampler.tokens.alphabet, outside, image)
    far = (image + 0.2).clamp(0, 1)
    with pytest.raises(AssertionError, match="radius"):
        check_feasible(target, audit.sampler.tokens.alphabet, clean, far)


def test_estimate_does_not_depend_on_batch_size(demo_config: Any) -> None:
    audit = prepare(load_spec(demo_config[0]))
    item = audit.dataset.inputs[1]
    tokens, image = clean_tokens(audit, item), torch.from_numpy(item.image)
    span = (0, len(tokens))
    runs = [estimate(audit.filter, audit.sampler, "k", tokens, image, span, 300, 0.01, b) for b in (7, 64, 4096)]
    assert runs[0] == runs[1] == runs[2]
    assert 0.0 <= runs[0].lower <= runs[0].ones / 300 <= runs[0].upper <= 1.0


class _NegatedScores:
    """The demo filter with a score of the wrong sign: a protocol implementation that is not the filter."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.device = inner, inner.device

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.inner(tokens, images)

    def embedding_matrix(self) -> torch.Tensor:
        return self.inner.embedding_matrix()

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.inner.embed_tokens(tokens)

    def scores_from_embeddings(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return -self.inner.scores_from_embeddings(embeddings, images)


def test_consistency_check_refuses_a_score_that_is_not_the_decision(demo_config: Any) -> None:
    audit = prepare(load_spec(demo_config[0]))
    item = audit.dataset.inputs[0]
    toks = clean_tokens(audit, item).unsqueeze(0).expand(64, -1)
    imgs = torch.from_numpy(np.repeat(item.image[None], 64, axis=0)) + 0.3 * torch.randn(64, 1, 8, 8)
    check_consistency(as_gradient_filter(audit.filter), toks, imgs)  # the real one passes
    with pytest.raises(ValueError, match="disagrees"):
        check_consistency(as_gradient_filter(_NegatedScores(audit.filter)), toks, imgs)


def test_a_filter_without_the_protocol_is_named() -> None:
    with pytest.raises(ValueError, match="GradientFilter"):
        as_gradient_filter(object())
