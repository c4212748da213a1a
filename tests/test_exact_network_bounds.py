"""Whole-network bounds against exact references, with tolerance 0.

Linear networks — random ones covering every kind of layer and combination, and every
registered model with its nonlinearities replaced by the identity — have a constant Jacobian
J, built explicitly in float64. For each network:

* L_F ≥ ‖J‖₂ and, for every pair of logits, L_G·‖w_i − w_j‖ ≥ ‖J_i − J_j‖ (Prop. 2);
* every layer's certified bound ≥ the exact norm of that operation (explicit Jacobian, or
  Lanczos for large ones), and ≤ it·(1 + 1e-6) where the engine claims an exact method;
* L_F ≥ the graph's rules (products, sums, quadratures) applied to those exact norms.

So a layer bound that is too small by any amount (beyond the 1e-9 rounding margin) fails,
however loose the product bound of the whole network is. Compositions whose graph bound is
exact (scalar multiples, x + 0.5·A x with A ⪰ 0, concatenations of multiples of x) must also
give L_F ≤ ‖J‖₂·(1 + 1e-6), which checks the combination rules themselves.

Max pooling is not linear: the linearised registered models replace it by the average pool
of the same geometry (exact bound for their non-overlapping windows); its own bound √n is
checked in tests/test_registry_references.py.
"""

from __future__ import annotations

import copy
import itertools
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import CertifiedBound, CertifySettings, NetworkBound
from lmt.bounds.graph import Step, eval_mode
from lmt.models import create_model, list_models, model_input_shape
from lmt.models.lipschitz_layers import ResidualLipschitzLayer
from tests.bound_helpers import jacobian, operator_norm, spectral_norm

EXACT_METHODS = ("exact", "closed_form", "thm3")  # methods that claim the exact norm
# Other methods (FFT, Cor. 1, Frobenius, Schur on overlapping windows) are upper bounds only,
# loosest on tiny inputs (reflect padding on 5×5: ~2.4×); anything beyond this is a bug.
LOOSE = 3.0
EXPLICIT = CertifySettings()  # small convolutions: exact norms from explicit Gram matrices
DETERMINISTIC = CertifySettings(explicit_max_dim=0)  # FFT / Cor. 1 / Frobenius, never exact


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights, biases and BatchNorm statistics (heavier-tailed than the default init),
    eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * torch.rand(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.1 + 2 * torch.rand(m.running_var.shape, generator=gen))
    return model.eval()


def step_norm(network: NetworkBound, step: Step) -> float:
    """The exact operator norm of one step of a float64 network (an affine operation)."""
    ctx = network.context(step, "certify")

    def f(x: torch.Tensor) -> torch.Tensor:
        if isinstance(step.target, tuple):  # a fused pair of modules
            for m in step.target:
                x = m(x)
            return x
        return ctx.apply(step.target, x)

    if isinstance(step.target, ResidualLipschitzLayer):
        # I − W·T·Wᵀ has a highly repeated top singular value (1), on which Lanczos stalls:
        # the SVD of the explicit Jacobian (a few thousand entries per side at most here).
        return spectral_norm(jacobian(f, step.input_shape))
    return operator_norm(f, step.input_shape)


def check_network(
    model: nn.Module, shape: tuple[int, ...], settings: CertifySettings = EXPLICIT, exact: bool = False
) -> CertifiedBound:
    """All the checks of the module docstring; ``exact``: the graph bound is the norm of J."""
    model.eval()
    bound = NetworkBound(model, shape).certified_bound(settings)
    model64 = copy.deepcopy(model).double().eval()
    J = jacobian(model64, shape)
    norm = spectral_norm(J)
    assert bound.total >= norm, f"L_F = {bound.total!r} below ‖J‖ = {norm!r}"
    if exact:
        assert bound.total <= norm * (1 + 1e-6), f"L_F = {bound.total!r} is not ‖J‖ = {norm!r}"
    if bound.head_weight is not None:
        w = bound.head_weight
        for i, j in itertools.combinations(range(w.shape[0]), 2):
            pair = float((J[i] - J[j]).norm())
            assert bound.body * float((w[i] - w[j]).norm()) >= pair, f"Prop. 2 fails for logits {i}, {j}"
    rows = {row["node"]: row for row in bound.layers}
    network64 = NetworkBound(model64, shape)

    def exact_layer(step: Step) -> float:
        reference = step_norm(network64, step)
        row = rows[step.node]
        assert row["bound"] >= reference, f"{step.description}: {row['bound']!r} < exact {reference!r}"
        ceiling = 1 + 1e-6 if row["method"].startswith(EXACT_METHODS) else LOOSE
        assert row["bound"] <= reference * ceiling, (
            f"{step.description} ({row['method']}): {row['bound']!r} vs exact {reference!r}"
        )
        return reference

    with eval_mode(model64), torch.no_grad():
        propagated, body = network64.propagate(exact_layer)
    assert bound.total >= propagated.get(network64.output, 1.0), "L_F below the graph rules on exact layer norms"
    if body is not None:
        assert bound.body >= body, "L_G below the graph rules on exact layer norms"
    return bound


# -- random linear networks ----------------------------------------------------------------------


def conv_bn(cin: int, cout: int, *args, **kwargs) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, *args, **kwargs), nn.BatchNorm2d(cout))


class Residual(nn.Module):
    """Scalar-weighted residual sums, a difference, negation, concatenation, a mean."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 3, 3, padding=1)
        self.f = nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect")
        self.g = conv_bn(3, 3, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = h + 0.5 * self.f(h)
        h = h / 2 - self.g(h)
        z = torch.cat([h, -h * 2], dim=1)
        return self.fc(z.mean((2, 3)))


class Arithmetic(nn.Module):
    """Constants as buffers and parameters (broadcast, expanded), padding, constants inside
    concatenations (not first, as keywords), stacking, c − x, means with keepdim."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("gain", torch.tensor([0.5, -2.0, 1.5]))
        self.register_buffer("fill", torch.tensor([1.0, -1.0]))
        self.weight = nn.Parameter(torch.ones(2))
        self.conv = nn.Conv2d(3, 2, 2)
        self.fc = nn.Linear(2 * 6 * 4 * 5 + 4 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * self.gain.view(1, -1, 1, 1)
        h = F.pad(h, (1, 2, 1, 0), mode="reflect")
        h = self.conv(h) * self.weight[:, None, None]  # (2, 4, 5)
        constant = self.fill.view(1, 2, 1, 1).expand(h.size(0), -1, 4, 5)
        h = torch.cat(tensors=[constant, 3.0 - h, torch.neg(h)], dim=1)  # (6, 4, 5)
        s = torch.stack([h, h.mean(dim=1, keepdim=True) * self.gain[1:].sum() / 4 + h], dim=1)  # (2, 6, 4, 5)
        m = torch.mean(h, -3)  # (4, 5)
        return self.fc(torch.cat([s.flatten(1), m.flatten(1)], 1))


def _convs() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=1),
        nn.Conv2d(3, 4, 3, padding=2, dilation=2, padding_mode="reflect"),
        nn.Conv2d(4, 4, 2, padding=1, groups=2, padding_mode="replicate"),
        nn.Conv2d(4, 2, (3, 2), padding="same", padding_mode="circular"),
        nn.Conv2d(2, 2, 3, padding="same", dilation=(2, 1)),
        nn.Flatten(), nn.Linear(2 * 6 * 6, 5),
    )


def _conv_bn_pool() -> nn.Module:
    return nn.Sequential(
        conv_bn(2, 4, 3, padding=1), nn.AvgPool2d(2), conv_bn(4, 3, 3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4),
    )


def _one_and_three_d() -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn3 = nn.BatchNorm3d(2)
            self.pool3 = nn.AvgPool3d(2)
            self.bn1 = nn.BatchNorm1d(4)
            self.pool1 = nn.AvgPool1d(2)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (2, 2, 4, 4)
            h = self.pool3(self.bn3(x)).flatten(2)  # (2, 4)
            h = self.pool1(self.bn1(h.transpose(1, 2)))  # (4, 1)
            return self.fc(h.flatten(1))

    return Net()


NETWORKS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "convs": (_convs, (2, 9, 10)),
    "conv_bn_pool": (_conv_bn_pool, (2, 6, 6)),
    "residual": (Residual, (2, 5, 4)),
    "arithmetic": (Arithmetic, (3, 4, 3)),
    "one_and_three_d": (_one_and_three_d, (2, 2, 4, 4)),
    "bare_conv": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding_mode="circular", padding=1), (2, 6, 5)),
    "bare_linear": (lambda: nn.Linear(6, 4), (6,)),
    "bare_batchnorm": (lambda: nn.BatchNorm2d(3), (3, 2, 2)),
}


@pytest.mark.parametrize("settings", [EXPLICIT, DETERMINISTIC], ids=["explicit", "deterministic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_linear_network_against_its_jacobian(name: str, seed: int, settings: CertifySettings) -> None:
    build, shape = NETWORKS[name]
    bound = check_network(randomise(build(), seed), shape, settings)
    if name == "bare_linear":  # the whole model is the head: L_G = 1
        assert bound.body == 1.0 and bound.head_weight is not None


# -- compositions whose graph bound is exact -------------------------------------------------------


class Lambda(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor], **modules: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        for name, m in modules.items():
            self.add_module(name, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


def _psd_linear(n: int) -> nn.Linear:
    """A Linear layer whose weight is symmetric positive semi-definite: ‖I + tA‖ = 1 + t‖A‖."""
    layer = nn.Linear(n, n)
    with torch.no_grad():
        b = torch.randn(n, n, generator=torch.Generator().manual_seed(n))
        layer.weight.copy_(b @ b.T / n)
    return layer


class _ConstantFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("c", torch.tensor([[1.0, -2.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.c.expand(x.size(0), 2), x), 1)


class _Normalise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.2, -0.4, 1.0]))
        self.register_buffer("std", torch.tensor([0.5, 2.0, -0.25]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean[:, None, None]) / self.std[:, None, None]


EXACT_COMPOSITIONS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "x + 0.5 A x": (lambda: Lambda(lambda s, x: x + 0.5 * s.a(x), a=_psd_linear(5)), (5,)),
    "x + A x / 4": (lambda: Lambda(lambda s, x: s.a(x) / 4 + x, a=_psd_linear(4)), (4,)),
    "cat(x, 2x, -x)": (lambda: Lambda(lambda s, x: torch.cat([x, 2 * x, -x], dim=1)), (3, 2)),
    "stack(x / 2, x)": (lambda: Lambda(lambda s, x: torch.stack([x / 2, x], dim=1)), (3,)),
    "cat(c, x)": (lambda: _ConstantFirst(), (3,)),
    "-3 pad(x)": (lambda: Lambda(lambda s, x: -3 * F.pad(x, (2, 1, 1, 1), mode="reflect")), (1, 3, 3)),
    "mean(x) * 2": (lambda: Lambda(lambda s, x: x.mean((1, 2)) * 2), (2, 3, 4)),
    "3 adaptive_avg_pool2d(x)": (lambda: Lambda(lambda s, x: 3 * F.adaptive_avg_pool2d(x, (2, 1))), (2, 4, 3)),
    "(x - mean) / std": (_Normalise, (3, 2, 2)),
    "W x / 4, negated": (lambda: Lambda(lambda s, x: -(s.a(x) / 4), a=nn.Linear(4, 3)), (4,)),
    "2 BN(x)": (lambda: Lambda(lambda s, x: 2 * s.bn(x), bn=nn.BatchNorm2d(2)), (2, 2, 3)),
    "c - conv(x)": (lambda: Lambda(lambda s, x: 1.0 - s.conv(x), conv=nn.Conv2d(2, 2, 3)), (2, 4, 4)),
}


@pytest.mark.parametrize("name", list(EXACT_COMPOSITIONS))
def test_exact_compositions_reach_the_norm_of_their_jacobian(name: str) -> None:
    build, shape = EXACT_COMPOSITIONS[name]
    model = build()
    if name in ("2 BN(x)", "c - conv(x)", "W x / 4, negated"):
        randomise(model, 0)
    check_network(model, shape, exact=True)


# -- every registered model, linearised -----------------------------------------------------------

# Residual networks at 4×4 (the bound engine does not care). Layers with more than 256 inputs
# and outputs use the deterministic (FFT) bounds, smaller ones the exact explicit Gram matrix.
SHAPES = {"wrn_16_4": (3, 4, 4), "wrn_16_4_avg": (3, 4, 4)}
# Networks whose dense part depends on the image size are built for the small input.
SMALL = {f"{kind}_convnet_s": ((3, 8, 8), {"image_size": 8}) for kind in ("aol", "sll", "cpl", "soc")}
SETTINGS = CertifySettings(explicit_max_dim=256)


def linearised(model: nn.Module) -> nn.Module:
    """ReLU → identity, max pooling → average pooling of the same geometry."""
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, nn.Identity())
        elif isinstance(child, nn.MaxPool2d):
            setattr(model, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
        else:
            linearised(child)
    return model


@pytest.mark.parametrize("name", list_models())
def test_linearised_registered_model_against_its_jacobian(name: str) -> None:
    torch.manual_seed(0)
    shape, kwargs = SMALL.get(name, (SHAPES.get(name, model_input_shape(name)), {}))
    model = randomise(linearised(create_model(name, **kwargs)), seed=0)
    check_network(model, shape, SETTINGS)
