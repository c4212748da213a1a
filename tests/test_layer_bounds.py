"""BatchNorm (standalone and fused with a conv), pooling, activations and input normalisation:
certification-mode bounds against exact operator norms and gradient ascent."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from lmt.bounds import CertifySettings, NetworkBound, UnboundedOperationError
from lmt.bounds.windows import Axis
from lmt.models.normalize import Normalize
from tests.bound_helpers import ascend_lipschitz_quotient, exact_norm, operator_matrix


def _random_bn(bn: nn.modules.batchnorm._BatchNorm, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(bn.num_features, generator=generator) * 2)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) * 3 + 0.01)
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator))
    return bn.eval()


# -- BatchNorm -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bn,shape", [(nn.BatchNorm2d(5), (5, 3, 4)), (nn.BatchNorm1d(6), (6,)), (nn.BatchNorm1d(4), (4, 7))])
def test_batchnorm_bound_is_exact(bn: nn.Module, shape: tuple[int, ...]) -> None:
    bn = _random_bn(bn, seed=len(shape))
    bound = NetworkBound(nn.Sequential(bn), shape).certified_bound()
    assert bound.total == pytest.approx(exact_norm(bn, shape), rel=1e-8)  # rounding margin 1e-9
    z = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    assert bound.total == pytest.approx(float(z.abs().max()), rel=1e-8)


def test_batchnorm_without_running_statistics_is_an_error() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.BatchNorm2d(3, track_running_stats=False))
    with pytest.raises(UnboundedOperationError, match="running statistics"):
        NetworkBound(model, (2, 6, 6)).certified_bound()


def _conv_bn(seed: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    torch.manual_seed(seed)
    conv = nn.Conv2d(2 * groups, 3 * groups, 3, stride=stride, padding=1, groups=groups)
    return nn.Sequential(conv, _random_bn(nn.BatchNorm2d(3 * groups), seed))


FUSED_CASES = [(0, 1, 1), (1, 2, 1), (2, 1, 2), (3, 2, 2), (4, 1, 1), (5, 2, 1)]


def test_conv_bn_fused_bound_is_between_exact_and_product() -> None:
    gains = []
    for seed, stride, groups in FUSED_CASES:
        model = _conv_bn(seed, stride, groups)
        shape = (2 * groups, 8, 8)
        network = NetworkBound(model, shape)
        assert [s.type_name for s in network.steps] == ["Conv2d+BatchNorm2d"], "fused into one step"
        fused = network.certified_bound().total
        exact = exact_norm(model, shape)  # the eval-mode composite, bias and shift dropped
        separate = (
            NetworkBound(nn.Sequential(model[0]), shape).certified_bound().total
            * NetworkBound(nn.Sequential(model[1]), (3 * groups, 8 // stride, 8 // stride)).certified_bound().total
        )
        assert exact * (1 - 1e-12) <= fused <= separate * (1 + 1e-12)
        step = network.steps[0]  # the float64 power iteration on the fused operator
        settings = CertifySettings(n_iter=400, n_starts=2)
        power = step.bound.power_iteration(step.target, network.context(step, "certify", settings))
        assert exact * (1 - 1e-3) <= power.lower <= exact * (1 + 1e-12) <= power.upper
        gains.append(separate / fused)
    assert max(gains) > 1.2, "fusing should gain on random per-channel scales"


def test_conv_followed_by_bn_and_another_user_is_not_fused() -> None:
    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 3, padding=1), _random_bn(nn.BatchNorm2d(2), 0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            return self.bn(h) + h

    network = NetworkBound(Branch(), (2, 5, 5))
    assert [s.type_name for s in network.steps] == ["Conv2d", "BatchNorm2d", "add"]


def test_conv_bn_training_bound_uses_differentiable_batch_statistics() -> None:
    """As in the official code, the training bound uses the last training batch's variance
    as a differentiable tensor: it depends on the batch and has a gradient with respect to it.
    In eval mode it uses the running variance."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4))
    network = NetworkBound(model, (1, 6, 6))
    model.train()
    values = []
    for scale in (1.0, 3.0):
        x = (torch.rand(8, 1, 6, 6) * scale).requires_grad_(True)
        model(x)
        for _ in range(50):  # converge the persistent vector for this batch
            bound = network.training_bound().total
        (grad,) = torch.autograd.grad(bound, x)
        assert grad.abs().sum() > 0, "no gradient through the batch statistics"
        values.append(float(bound.detach()))
    assert values[1] < values[0] / 2, "a batch with 3x the spread should give about 1/3 the bound"
    model.eval()
    x = torch.rand(8, 1, 6, 6, requires_grad=True)
    model(x)
    bound = network.training_bound().total
    assert not bound.requires_grad or torch.autograd.grad(bound, x, allow_unused=True)[0] is None
    bound.backward() if bound.requires_grad else None
    assert model[1].weight.grad is not None, "γ stays differentiable in eval mode"


def test_conv_bn_training_bound_converges_to_the_fused_norm() -> None:
    model = _conv_bn(4).eval()
    network = NetworkBound(model, (2, 8, 8))
    estimates = [float(network.training_bound().total.detach()) for _ in range(300)]
    exact = exact_norm(model, (2, 8, 8))
    assert max(estimates) <= exact * (1 + 1e-5)
    assert estimates[-1] == pytest.approx(exact, rel=1e-3)


def test_bounding_does_not_touch_batchnorm_statistics_or_modes() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2), nn.BatchNorm1d(2))
    model.train()
    model[1].eval()  # a frozen BatchNorm keeps its own mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    network = NetworkBound(model, (1, 4, 4))
    network.certified_bound()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and not model[1].training and model[5].training


# -- pooling ------------------------------------------------------------------------------------


def _windows_per_pixel(pool: nn.Module, shape: tuple[int, ...]) -> int:
    """Brute force: how many outputs each input pixel can move (max pooling)."""
    x = torch.zeros(1, *shape)
    counts = torch.zeros(shape[1:])
    for i in range(shape[1]):
        for j in range(shape[2]):
            x.zero_()
            x[0, 0, i, j] = 1.0
            counts[i, j] = (pool(x)[0, 0] == 1.0).sum()
    return int(counts.max())


MAX_POOLS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=1),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, stride=1, dilation=3),
]


@pytest.mark.parametrize("kwargs", MAX_POOLS, ids=str)
def test_max_pool_bound_is_sqrt_of_largest_overlap(kwargs: dict) -> None:
    pool = nn.MaxPool2d(**kwargs)
    shape = (1, 9, 8)
    bound = NetworkBound(nn.Sequential(pool), shape).certified_bound().total
    assert bound == pytest.approx(math.sqrt(_windows_per_pixel(pool, shape)), rel=1e-8)
    torch.manual_seed(0)
    found = ascend_lipschitz_quotient(pool, torch.randn(32, *shape), steps=80, lr=0.1)
    assert found <= bound * (1 + 1e-6), "gradient ascent beat the bound"
    assert found >= bound * 0.9, "the bound is exact; the ascent should get close"


def test_adaptive_max_pool_bound() -> None:
    pool = nn.AdaptiveMaxPool2d((3, 4))
    shape = (1, 7, 6)  # uneven windows that overlap
    bound = NetworkBound(nn.Sequential(pool), shape).certified_bound().total
    assert bound == pytest.approx(math.sqrt(_windows_per_pixel(pool, shape)), rel=1e-8)
    found = ascend_lipschitz_quotient(pool, torch.randn(32, *shape), steps=80, lr=0.1)
    assert bound * 0.9 <= found <= bound * (1 + 1e-6)


AVG_POOLS = [
    (nn.AvgPool2d(2), (2, 8, 8), True),
    (nn.AvgPool2d(3, stride=2), (1, 9, 9), False),
    (nn.AvgPool2d(3, stride=1, padding=1), (1, 6, 7), False),
    (nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), (1, 6, 6), False),
    (nn.AvgPool2d(3, stride=2, ceil_mode=True), (1, 8, 8), False),
    (nn.AvgPool2d(2, divisor_override=1), (1, 6, 6), True),
    (nn.AdaptiveAvgPool2d(1), (3, 8, 8), True),
    (nn.AdaptiveAvgPool2d((3, 2)), (1, 7, 5), False),
]


@pytest.mark.parametrize("pool,shape,exact_expected", AVG_POOLS, ids=lambda p: str(p))
def test_average_pool_bound_dominates_exact_norm(pool: nn.Module, shape: tuple[int, ...], exact_expected: bool) -> None:
    bound = NetworkBound(nn.Sequential(pool), shape).certified_bound().total
    exact = exact_norm(pool, shape)
    assert bound >= exact * (1 - 1e-12)
    if exact_expected:
        assert bound == pytest.approx(exact, rel=1e-8)


@pytest.mark.parametrize("size,kernel,stride", [(32, 2, 2), (9, 3, 2), (8, 8, 8), (10, 3, 1), (12, 4, 2)])
def test_average_pool_bound_is_the_papers_formula_for_plain_windows(size: int, kernel: int, stride: int) -> None:
    """√n/√(kh·kw) (notes §2.5): global 8×8 pooling gives 1/8, a 2×2/2 pool 1/2."""
    bound = NetworkBound(nn.Sequential(nn.AvgPool2d(kernel, stride)), (1, size, size)).certified_bound().total
    n = Axis(size, kernel, stride).overlap ** 2
    assert bound == pytest.approx(math.sqrt(n) / kernel, rel=1e-8)


def test_functional_pooling_is_bounded_with_its_arguments() -> None:
    class Functional(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.avg_pool2d(x, kernel_size=3, stride=1)

    bound = NetworkBound(Functional(), (1, 7, 7)).certified_bound().total
    assert bound == pytest.approx(1.0, rel=1e-8)  # √9/√9
    assert bound >= exact_norm(Functional(), (1, 7, 7))


# -- activations, shapes, normalisation ---------------------------------------------------------

ACTIVATIONS = [
    (nn.ReLU(), 1.0), (nn.LeakyReLU(0.2), 1.0), (nn.LeakyReLU(2.5), 2.5), (nn.LeakyReLU(-3.0), 3.0),
    (nn.ELU(), 1.0), (nn.ELU(alpha=2.0), 2.0), (nn.Tanh(), 1.0), (nn.Sigmoid(), 0.25),
    (nn.ReLU6(), 1.0), (nn.Hardtanh(), 1.0), (nn.Softplus(beta=3.0), 1.0), (nn.CELU(0.5), 1.0),
]


@pytest.mark.parametrize("activation,expected", ACTIVATIONS, ids=lambda a: str(a))
def test_activation_bound_is_the_largest_slope(activation: nn.Module, expected: float) -> None:
    """An elementwise map is sup|f′|-Lipschitz; the largest slope on a fine grid (across
    every kink) reaches the bound."""
    bound = NetworkBound(nn.Sequential(activation), (4,)).certified_bound().total
    assert bound == pytest.approx(expected, rel=1e-12)
    grid = torch.linspace(-8, 8, 160_001, dtype=torch.float64)
    slopes = (activation(grid[1:]) - activation(grid[:-1])).abs() / (grid[1] - grid[0])
    assert float(slopes.max()) <= bound * (1 + 1e-9)
    assert float(slopes.max()) >= bound * (1 - 1e-3)


def test_functional_activations_read_their_arguments() -> None:
    class Functional(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.elu(torch.nn.functional.leaky_relu(x, 1.5), alpha=3.0)

    assert NetworkBound(Functional(), (3,)).certified_bound().total == pytest.approx(4.5)


def test_shape_operations_dropout_and_shape_queries() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.drop, self.fc = nn.Conv2d(2, 3, 3), nn.Dropout(0.5), nn.Linear(3 * 4 * 4, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.drop(self.conv(x)).permute(0, 1, 3, 2).contiguous()
            return self.fc(h.view(h.size(0), -1))

    model = Net()
    bound = NetworkBound(model, (2, 6, 6)).certified_bound()
    assert [row["type"] for row in bound.layers] == ["Conv2d", "Dropout", "permute", "contiguous", "view", "Linear"]
    product = math.prod(row["bound"] for row in bound.layers)
    assert bound.total == pytest.approx(product, rel=1e-12)
    assert bound.total >= exact_norm(model.eval(), (2, 6, 6))


def test_input_normalization_divides_by_the_smallest_std() -> None:
    model = nn.Sequential(Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.5]), nn.Flatten(), nn.Linear(3 * 2 * 2, 4))
    bound = NetworkBound(model, (3, 2, 2)).certified_bound()
    assert bound.layers[0]["bound"] == pytest.approx(1 / 0.2, rel=1e-6)
    assert bound.total >= exact_norm(model, (3, 2, 2)) * (1 - 1e-12)
    assert NetworkBound(nn.Sequential(model[0]), (3, 2, 2)).certified_bound().total == pytest.approx(
        exact_norm(model[0], (3, 2, 2)), rel=1e-6
    )


# -- the walker ---------------------------------------------------------------------------------


def test_repeated_inputs_count_twice() -> None:
    """x + x is 2-Lipschitz and cat([x, x]) √2-Lipschitz: an input used twice must count twice."""

    class Twice(nn.Module):
        def __init__(self, op: str) -> None:
            super().__init__()
            self.op, self.fc = op, nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return h + h if self.op == "add" else torch.cat([h, h], dim=1)

    for op, factor in [("add", 2.0), ("cat", math.sqrt(2))]:
        model = Twice(op)
        bound = NetworkBound(model, (4,)).certified_bound().total
        assert bound == pytest.approx(exact_norm(model, (4,)), rel=1e-8)
        assert bound == pytest.approx(factor * exact_norm(model.fc, (4,)), rel=1e-8)


def test_subtraction_adds_and_scaled_addition_is_refused() -> None:
    class Diff(nn.Module):
        def __init__(self, alpha: float = 1.0) -> None:
            super().__init__()
            self.a, self.b, self.alpha = nn.Linear(3, 3), nn.Linear(3, 3), alpha

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.alpha != 1.0:
                return torch.add(self.a(x), self.b(x), alpha=self.alpha)
            return self.a(x) - self.b(x)

    model = Diff()
    bound = NetworkBound(model, (3,)).certified_bound().total
    assert bound == pytest.approx(exact_norm(model.a, (3,)) + exact_norm(model.b, (3,)), rel=1e-8)
    with pytest.raises(UnboundedOperationError, match="alpha"):
        NetworkBound(Diff(alpha=3.0), (3,))


def test_pooling_sweep_never_beaten_by_ascent() -> None:
    """Seeded random max and average pools: the bound is never below what ascent finds."""
    rng = random.Random(5)
    torch.manual_seed(5)
    for _ in range(12):
        k = rng.randint(1, 4)
        kwargs = dict(kernel_size=k, stride=rng.randint(1, 3), padding=rng.randint(0, k // 2))
        pool = rng.choice([nn.MaxPool2d, nn.AvgPool2d])(**kwargs)
        shape = (1, rng.randint(k, 9), rng.randint(k, 9))
        bound = NetworkBound(nn.Sequential(pool), shape).certified_bound().total
        found = ascend_lipschitz_quotient(pool, torch.randn(16, *shape), steps=40, lr=0.1)
        assert found <= bound * (1 + 1e-6), (pool, shape, found, bound)
        if isinstance(pool, nn.AvgPool2d):
            assert float(torch.linalg.matrix_norm(operator_matrix(pool, shape), 2)) <= bound * (1 + 1e-12)
