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


def _clipped_loss_and_grads(logits, labels, w, c: float) -> tuple[torch.Tensor, ...]:
    logits, w = logits.clone().requires_grad_(True), w.clone().requires_grad_(True)
    body = torch.tensor(2.0, requires_grad=True)
    loss = lmt_loss(logits, labels, c, "prop2_clipped", body=body, head_weight=w)
    return (loss, *torch.autograd.grad(loss, (logits, body, w)))


def test_the_clipped_loss_saturates_in_c(batch) -> None:
    """prop2_clipped: once no example reaches its shifted margin (every f < 1), the shift
    l_i·min_j(m_j/l_j) does not depend on c: doubling c (exact in floating point) gives bitwise
    the same loss and gradients (README: c = 8 and c = 16 trained identical networks). Below that
    point c matters: at a small c some example is certified (f = 1) and the loss differs."""
    logits, labels, w = batch
    shift = prop2_margin(labels, 8.0, torch.tensor(2.0), w)
    assert (clip_factor(logits, labels, shift) < 1).all(), "the saturated regime: no example certified at c = 8"
    at_8, at_16 = _clipped_loss_and_grads(logits, labels, w, 8.0), _clipped_loss_and_grads(logits, labels, w, 16.0)
    assert all(torch.equal(a, b) for a, b in zip(at_8, at_16))
    small = 1e-3
    assert (clip_factor(logits, labels, prop2_margin(labels, small, torch.tensor(2.0), w)) == 1).any()
    at_small, at_double = (_clipped_loss_and_grads(logits, labels, w, c) for c in (small, 2 * small))
    assert not torch.equal(at_small[0], at_double[0])


def test_prop2_without_a_linear_head_is_a_clear_error(batch) -> None:
    logits, labels, _ = batch
    with pytest.raises(ValueError, match="linear layer"):
        lmt_loss(logits, labels, 1.0, "prop2", total=torch.tensor(1.0))


def _reference_prop2_margin(labels, c, body, head_weight):
    """The N×K×D formulation (before the K×K table)."""
    rows = head_weight[labels]
    diff = head_weight[None, :, :] - rows[:, None, :]
    norms = diff.pow(2).sum(-1).clamp_min(1e-24).sqrt()
    norms = norms * (1.0 - F.one_hot(labels, head_weight.shape[0]).to(norms))
    return c * body * norms


def _reference_clip_factor(logits, labels, shift):
    with torch.no_grad():
        m = logits.gather(1, labels[:, None]) - logits
        ratio = torch.where(shift > 0, m / shift.clamp_min(1e-12), torch.ones_like(m))
        ratio = torch.where(m < 0, torch.zeros_like(m), ratio.clamp(max=1.0))
        ratio = ratio.scatter(1, labels[:, None], 1.0)
        return ratio.min(dim=1, keepdim=True).values


@pytest.mark.parametrize(("n", "k", "d"), [(50, 10, 100), (3, 10, 7), (128, 10, 256), (5, 2, 1)])
def test_prop2_margin_and_clip_factor_match_the_per_example_formulation(n: int, k: int, d: int) -> None:
    """Same values (up to rounding: torch.cdist sums the squares in its own order), clip
    factors and gradients in L_G and W as the N×K×D differences, with equal rows in W (a zero
    distance off the target) and every label present or repeated."""
    torch.manual_seed(n + k + d)
    w = torch.randn(k, d)
    w[1] = w[0]
    labels = torch.randint(0, k, (n,))
    labels[: min(n, k)] = torch.arange(min(n, k))
    logits = torch.randn(n, k)
    logits[0, 1] = logits[0, 0]  # a tie with the equal row: m_1 = 0, l_1 = c·L_G·1e-12
    results = []
    for margin, clip in ((prop2_margin, clip_factor), (_reference_prop2_margin, _reference_clip_factor)):
        body = torch.tensor(1.7, requires_grad=True)
        weight = w.clone().requires_grad_(True)
        shift = margin(labels, 0.3, body, weight)
        factor = clip(logits, labels, shift)
        upstream = torch.randn(n, k, generator=torch.Generator().manual_seed(1))
        (shift * factor * upstream).sum().backward()
        results.append((shift.detach(), factor, body.grad, weight.grad))
    (shift, factor, body_grad, weight_grad), reference = results
    torch.testing.assert_close(shift, reference[0], rtol=1e-6, atol=0.0)
    assert torch.equal(shift == 0, reference[0] == 0)
    torch.testing.assert_close(factor, reference[1], rtol=1e-5, atol=1e-6)
    assert torch.equal(clip_factor(logits, labels, reference[0]), reference[1])  # same shift: bitwise
    assert torch.isfinite(weight_grad).all()
    torch.testing.assert_close(body_grad, reference[2])
    torch.testing.assert_close(weight_grad, reference[3])


def test_clip_factor_matches_the_reference_on_edge_cases() -> None:
    """Zero shifts (certified: 1 unless m < 0), ties, tiny shifts, negative margins."""
    logits = torch.tensor([[2.0, 2.0, 0.0, 1.0], [1.0, 3.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                           [5.0, 1.0, 4.0, -3.0]])
    labels = torch.tensor([0, 2, 3, 0])
    shift = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1e-13], [0.0, 0.0, 0.0, 0.0],
                          [0.0, 8.0, 2.0, 1e-30]])
    f = clip_factor(logits, labels, shift)
    assert torch.equal(f, _reference_clip_factor(logits, labels, shift))
    assert f.flatten().tolist() == [1.0, 0.0, 1.0, 0.5]
