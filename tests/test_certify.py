"""Certified radii against a model whose minimal adversarial distance is known in closed form.

For an affine classifier F(x) = W x + b (no box constraint), the smallest L2 perturbation that
makes class i beat the true class y is (z_y − z_i) / ‖w_y − w_i‖, so the exact minimal distance
is the minimum of that over i ≠ y.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lmt.bounds import NetworkBound
from lmt.certify import margins, radius_prop1, radius_prop2


@pytest.fixture()
def linear_model() -> nn.Sequential:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5)).double()
    return model


def exact_min_distance(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w, b = model[1].weight.detach(), model[1].bias.detach()
    z = x.flatten(1) @ w.T + b
    out = []
    for zi, yi in zip(z, y):
        ratios = [(zi[yi] - zi[i]) / (w[yi] - w[i]).norm() for i in range(len(zi)) if i != yi]
        out.append(max(0.0, float(min(ratios))))
    return torch.tensor(out, dtype=torch.float64)


def test_prop2_radius_equals_exact_distance_and_prop1_is_below(linear_model: nn.Sequential) -> None:
    x = torch.randn(200, 3, 4, dtype=torch.float64)
    logits = linear_model(x).detach()
    y = logits.argmax(1)
    y[:20] = (y[:20] + 1) % 5  # some misclassified points
    bound = NetworkBound(linear_model, (3, 4)).certified_bound()
    assert bound.body == 1.0  # Flatten only
    exact = exact_min_distance(linear_model, x, y)
    r2 = radius_prop2(logits, y, bound.head_weight, bound.body)
    r1 = radius_prop1(logits, y, bound.total)
    torch.testing.assert_close(r2, exact, rtol=1e-9, atol=1e-12)
    assert (r1 <= exact + 1e-12).all()
    assert (r2[:20] == 0).all() and (r1[:20] == 0).all(), "misclassified points get radius 0"
    assert (r2[20:] > 0).all()


def test_prop2_radius_is_tight_a_slightly_larger_step_flips_the_class(linear_model: nn.Sequential) -> None:
    w = linear_model[1].weight.detach()
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    logits = linear_model(x).detach()
    y = logits.argmax(1)
    r = float(radius_prop2(logits, y, w, 1.0))
    ratios = [
        float((logits[0, y] - logits[0, i]) / (w[y] - w[i]).norm()) if i != y else math.inf
        for i in range(5)
    ]
    i = ratios.index(min(ratios))
    direction = (w[i] - w[y]).reshape(1, 3, 4) / (w[i] - w[y]).norm()
    assert linear_model(x + direction * r * (1 - 1e-6)).argmax(1) == y
    assert linear_model(x + direction * r * (1 + 1e-6)).argmax(1) == i


def test_margin_against_true_label() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    labels = torch.tensor([0, 2])
    torch.testing.assert_close(margins(logits, labels), torch.tensor([1.0, -4.0], dtype=torch.float64))


def test_identical_head_rows_do_not_produce_nan() -> None:
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    logits = torch.tensor([[2.0, 2.0, 0.0], [3.0, 1.0, 0.0]], dtype=torch.float64)
    r = radius_prop2(logits, torch.tensor([0, 0]), w, 1.0)
    assert not torch.isnan(r).any()
    assert r[0] == 0.0  # a tie with a class whose logit moves identically cannot be certified
    assert r[1] == pytest.approx(3.0 / math.sqrt(2))
