"""Layer and network bounds against exact answers: SVD of the explicit operator matrix."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from lmt.bounds import CertifySettings, NetworkBound, UnboundedOperationError
from lmt.bounds.power_iteration import training_step
from lmt.models import create_model, list_models, model_input_shape
from tests.bound_helpers import exact_norm


@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (1, 10), (10, 1)])
def test_linear_certified_bound_is_exact(shape: tuple[int, int]) -> None:
    layer = nn.Linear(shape[1], shape[0])
    exact = float(torch.linalg.svdvals(layer.weight.detach().double())[0])
    bound = NetworkBound(nn.Sequential(layer), (shape[1],)).certified_bound()
    assert exact <= bound.total <= exact * (1 + 2e-9)  # the SVD's rounding margin is 1e-9
    assert bound.layers[0]["method"] == "exact(svd)"


def test_training_bound_converges_from_below_and_is_differentiable() -> None:
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    exact = exact_norm(copy.deepcopy(conv), (2, 8, 8))
    network = NetworkBound(nn.Sequential(conv), (2, 8, 8))
    estimates = [float(network.training_bound().total.detach()) for _ in range(300)]
    assert max(estimates) <= exact * (1 + 1e-6), "a power-iteration estimate cannot exceed σ_max"
    assert estimates[-1] == pytest.approx(exact, rel=1e-3)
    network.training_bound().total.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_wong_kolter_network_bound_is_product_of_exact_layer_norms() -> None:
    model = create_model("wong_kolter_mnist").double()
    norms = {
        0: exact_norm(model[0], (1, 28, 28)),
        2: exact_norm(model[2], (16, 14, 14)),
        5: float(torch.linalg.svdvals(model[5].weight.detach())[0]),
        7: float(torch.linalg.svdvals(model[7].weight.detach())[0]),
    }
    network = NetworkBound(model.float(), (1, 28, 28))
    bound = network.certified_bound(CertifySettings(conv_method="power_iteration"))
    body = norms[0] * norms[2] * norms[5]
    assert bound.body >= body * (1 - 1e-12) and bound.body <= body * (1 + 2e-3)
    assert bound.total == pytest.approx(bound.body * norms[7], rel=1e-8)
    assert torch.equal(bound.head_weight, model[7].weight.detach().double())
    deterministic = network.certified_bound()  # guaranteed, and exact: small layers
    assert deterministic.body == pytest.approx(body, rel=1e-8) and deterministic.body >= body * (1 - 1e-12)
    assert all(row["method"].startswith("exact") for row in deterministic.layers if row["type"] != "ReLU" and row["type"] != "Flatten")


def test_network_bound_dominates_input_gradients() -> None:
    """No logit difference can change faster than its certified Lipschitz bound."""
    model = create_model("wong_kolter_mnist")
    bound = NetworkBound(model, (1, 28, 28)).certified_bound()
    x = torch.rand(64, 1, 28, 28, requires_grad=True)
    logits = model(x)
    (logits[:, 3] - logits[:, 5]).sum().backward()
    grad_norms = x.grad.flatten(1).norm(dim=1)
    pair = bound.body * float((bound.head_weight[3] - bound.head_weight[5]).norm())
    assert float(grad_norms.max()) <= pair


class _Sine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


def test_unregistered_operation_is_an_error_that_names_it() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2))
    with pytest.raises(UnboundedOperationError, match="GELU"):
        NetworkBound(model, (4,))
    with pytest.raises(UnboundedOperationError, match="sin"):
        NetworkBound(nn.Sequential(nn.Linear(4, 4), _Sine()), (4,))


class _DoubledConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def test_subclass_that_changes_forward_does_not_inherit_the_bound() -> None:
    """A Conv2d subclass computing 2·conv must not be bounded as a plain Conv2d."""
    with pytest.raises(UnboundedOperationError):
        NetworkBound(nn.Sequential(_DoubledConv(1, 2, 3)), (1, 6, 6))


def test_residual_addition_adds_bounds() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(6, 6)
            self.head = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x + torch.relu(self.inner(x)))

    model = Residual()
    bound = NetworkBound(model, (6,)).certified_bound()
    inner = float(torch.linalg.svdvals(model.inner.weight.detach().double())[0])
    assert 1 + inner <= bound.body <= (1 + inner) * (1 + 2e-9)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_builds_and_is_bounded(name: str) -> None:
    model = create_model(name)
    shape = model_input_shape(name)
    bound = NetworkBound(model, shape).certified_bound(CertifySettings(n_iter=50, n_starts=2))
    assert math.isfinite(bound.total) and bound.total > 0
    assert model(torch.rand(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0])
def test_training_step_replaces_a_degenerate_vector_by_ones(bad: float) -> None:
    """A zero or non-finite Aᵀ A û (anywhere in the vector) becomes a vector of ones; a healthy
    one is kept as it is; sigma is ‖A û‖ with û = u/‖u‖."""
    u = torch.tensor([[3.0, 4.0, 0.0]])
    sigma, healthy = training_step(lambda x: 2 * x, lambda y: 2 * y, u)
    assert float(sigma) == pytest.approx(2.0)
    torch.testing.assert_close(healthy, torch.tensor([[2.4, 3.2, 0.0]]))
    for position in range(3):
        broken = torch.tensor([[0.5, -0.25, 1.0]])
        broken[0, position] = bad
        if bad == 0.0:
            broken.zero_()
        _, u_next = training_step(lambda x: x, lambda y, broken=broken: broken, u)
        torch.testing.assert_close(u_next, torch.ones(1, 3))


@pytest.mark.parametrize("scale", [1e-45, 1e-40, 3e38, -3e38])
def test_training_step_keeps_tiny_and_huge_finite_vectors(scale: float) -> None:
    """The health check (max|u| / max|u| == 1) passes every finite nonzero vector, subnormal
    or near the float32 maximum, unchanged."""
    kept = torch.tensor([[scale, 0.0, -scale / 2]])
    _, u_next = training_step(lambda x: x, lambda y: kept, torch.ones(1, 3))
    assert torch.equal(u_next, kept)
