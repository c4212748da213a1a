"""The LMT losses: reduce to cross-entropy where they should, and push bounds down."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lmt.losses import clip_factor, lmt_loss, prop2_margin


@pytest.fixture()
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(8, 4), torch.randint(0, 4, (8,)), torch.randn(4, 6)


@pytest.mark.parametrize("variant", ["prop1", "prop2", "prop2_clipped"])
def test_zero_c_is_cross_entropy(batch, variant: str) -> None:
    logits, labels, w = batch
    loss = lmt_loss(logits, labels, 0.0, variant, total=torch.tensor(3.0), body=torch.tensor(2.0), head_weight=w)
    assert loss == pytest.approx(float(F.cross_entropy(logits, labels)))


def test_prop2_margin_is_pairwise_and_zero_on_target(batch) -> None:
    _, labels, w = batch
    shift = prop2_margin(labels, 0.5, torch.tensor(2.0), w)
    for n, y in enumerate(labels):
        for i in range(4):
            expected = 0.0 if i == y else 0.5 * 2.0 * float((w[i] - w[y]).norm())
            assert float(shift[n, i]) == pytest.approx(expected, rel=1e-5)


def test_prop1_adds_sqrt2_c_l_to_non_targets(batch) -> None:
    logits, labels, _ = batch
    loss = lmt_loss(logits, labels, 0.5, "prop1", total=torch.tensor(2.0))
    shifted = logits + math.sqrt(2) * 0.5 * 2.0 * (1 - F.one_hot(labels, 4))
    assert loss == pytest.approx(float(F.cross_entropy(shifted, labels)))


def test_clip_factor_follows_the_official_code() -> None:
    labels = torch.tensor([0, 0, 0])
    logits = torch.tensor([[5.0, 0.0, 0.0], [1.0, 0.0, 0.5], [0.0, 1.0, -1.0]])
    shift = torch.tensor([[0.0, 2.0, 2.0], [0.0, 2.0, 2.0], [0.0, 2.0, 2.0]])
    f = clip_factor(logits, labels, shift).flatten()
    assert f.tolist() == [1.0, 0.25, 0.0]  # certified; tie-scaled (min(1/2, 0.5/2)); misclassified


def test_gradient_reaches_the_bound_and_the_head(batch) -> None:
    logits, labels, w = batch
    body = torch.tensor(2.0, requires_grad=True)
    w = w.clone().requires_grad_(True)
    lmt_loss(logits, labels, 1.0, "prop2", body=body, head_weight=w).backward()
    assert body.grad > 0, "a larger Lipschitz bound must increase the loss"
    assert w.grad.abs().sum() > 0
    assert torch.isfinite(w.grad).all()


def test_prop2_without_a_linear_head_is_a_clear_error(batch) -> None:
    logits, labels, _ = batch
    with pytest.raises(ValueError, match="linear layer"):
        lmt_loss(logits, labels, 1.0, "prop2", total=torch.tensor(1.0))
