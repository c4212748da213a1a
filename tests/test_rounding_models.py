"""The rounding models of the operations against emulated floating-point arithmetic.

An emulated format with a 12-bit significand (unit roundoff u = 2⁻¹²) rounds after every
multiplication and addition, summing dot products one term at a time (the order whose error
grows fastest). On adversarial inputs — positive weights and inputs of nearly equal size, where
the rounding errors of a long sum add up — the observed error must stay below the model's
γ_k·(gain·‖x‖ + offset) and come within a modest factor of it, so that a model with too few
terms, a missing bias or a missing gain would fail. A whole network emulated the same way
checks the propagation of :mod:`lmt.bounds.rounding`.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import NetworkBound
from lmt.bounds.rounding import float64_forward, float64_model, gamma, logit_errors

BITS = 12
U = 2.0**-BITS
SHARP = 0.02  # observed / bound must exceed this on the adversarial inputs


def fl(x: torch.Tensor) -> torch.Tensor:
    """Round float64 values to the nearest number with a BITS-bit significand (ties to even)."""
    mantissa, exponent = torch.frexp(x)
    return torch.ldexp(torch.round(mantissa * 2.0**BITS), exponent - BITS)


def dot(weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """fl(W x + b) for rows x (N, K), summing the products one at a time, then the bias."""
    acc = torch.zeros(x.shape[0], weight.shape[0], dtype=torch.float64)
    for j in range(weight.shape[1]):
        acc = fl(acc + fl(x[:, j : j + 1] * weight[:, j][None]))
    return acc if bias is None else fl(acc + bias[None])


def linear(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    bias = None if module.bias is None else module.bias.detach().double()
    return dot(module.weight.detach().double(), x, bias)


def conv(module: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)  # (N, K, L)
    n, k, positions = cols.shape
    bias = None if module.bias is None else module.bias.detach().double()
    out = dot(module.weight.detach().double().reshape(module.out_channels, -1), cols.transpose(1, 2).reshape(-1, k), bias)
    side = int(positions**0.5)
    return out.reshape(n, positions, -1).transpose(1, 2).reshape(n, -1, side, side)


def avg_pool(module: nn.AvgPool2d, x: torch.Tensor) -> torch.Tensor:
    k = module.kernel_size
    cols = F.unfold(x.flatten(0, 1)[:, None], k, stride=module.stride)  # (N·C, k·k, L)
    acc = torch.zeros_like(cols[:, 0])
    for j in range(cols.shape[1]):
        acc = fl(acc + cols[:, j])
    side = int(cols.shape[2] ** 0.5)
    return fl(acc / (k * k)).reshape(*x.shape[:2], side, side)


def batch_norm(module: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """As torch computes eval-mode BatchNorm: α = w/sqrt(var + eps), β = b − μ·α, x·α + β."""
    var, mean = module.running_var.double(), module.running_mean.double()
    w, b = module.weight.detach().double(), module.bias.detach().double()
    alpha = fl(fl(1 / fl(torch.sqrt(fl(var + module.eps)))) * w)
    beta = fl(b - fl(mean * alpha))
    shape = (1, -1, 1, 1)
    return fl(fl(x * alpha.view(shape)) + beta.view(shape))


def _model(op: nn.Module, shape: tuple[int, ...]):
    network = NetworkBound(nn.Sequential(op), shape)
    step = network.steps[-1]
    ctx = network.context(step, "certify")
    return step.bound.rounding(step.target, ctx, step.bound.certify(step.target, ctx).value)


def _positive(*shape: int) -> torch.Tensor:
    return fl(0.9 + 0.05 * torch.rand(*shape, dtype=torch.float64))


def _check(name: str, observed: torch.Tensor, bound: torch.Tensor) -> None:
    ratio = observed / bound
    print(f"{name}: observed / bound up to {float(ratio.max()):.3f}")
    assert (ratio <= 1).all(), f"{name}: the rounding model is below an observed error"
    assert ratio.max() > SHARP, f"{name}: the rounding model is not sharp ({float(ratio.max()):.3g})"


def _set(module: nn.Module, **tensors: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(module, name).copy_(fl(value.double()).float())
    return module


@pytest.mark.parametrize("k", [16, 100, 400])
def test_linear(k: int) -> None:
    torch.manual_seed(k)
    module = _set(nn.Linear(k, 3), weight=0.7 + 0.01 * torch.rand(3, k), bias=torch.tensor([0.3, 0.2, 0.1]))
    x = _positive(4, k)
    model = _model(module, (k,))
    observed = (linear(module, x) - module.double()(x).detach()).norm(dim=1)
    _check(f"linear k={k}", observed, gamma(model.terms, U) * (model.gain * x.norm(dim=1) + model.offset))


@pytest.mark.parametrize("bias", [True, False])
def test_conv(bias: bool) -> None:
    torch.manual_seed(0)
    module = nn.Conv2d(6, 4, 3, stride=1, padding=0, bias=bias)
    _set(module, weight=0.5 + 0.01 * torch.rand(4, 6, 3, 3))
    if bias:
        _set(module, bias=torch.full((4,), 2.0))
    x = _positive(2, 6, 8, 8)
    model = _model(module, (6, 8, 8))
    observed = (conv(module, x) - module.double()(x).detach()).flatten(1).norm(dim=1)
    _check("conv", observed, gamma(model.terms, U) * (model.gain * x.flatten(1).norm(dim=1) + model.offset))


def test_average_pool() -> None:
    module = nn.AvgPool2d(3)
    x = _positive(2, 3, 9, 9)
    model = _model(module, (3, 9, 9))
    observed = (avg_pool(module, x) - module(x)).flatten(1).norm(dim=1)
    _check("avg pool", observed, gamma(model.terms, U) * (model.gain * x.flatten(1).norm(dim=1) + model.offset))


def test_batch_norm() -> None:
    torch.manual_seed(0)
    module = nn.BatchNorm2d(4).eval()
    _set(module, running_mean=torch.full((4,), 3.0), running_var=torch.rand(4) + 0.5, weight=torch.rand(4) + 1.0,
         bias=torch.full((4,), 0.7))
    x = fl(torch.rand(3, 4, 5, 5, dtype=torch.float64) * 8)
    model = _model(module, (4, 5, 5))
    observed = (batch_norm(module, x) - module.double()(x).detach()).flatten(1).norm(dim=1)
    _check("batch norm", observed, gamma(model.terms, U) * (model.gain * x.flatten(1).norm(dim=1) + model.offset))


class _Net(nn.Module):
    """Conv + BN, ReLU, a residual sum, a constant shift, average pooling and two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(3)
        self.fc = nn.Linear(4 * 3 * 3, 20)
        self.head = nn.Linear(20, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        h = self.pool(h + self.conv2(h) - 0.375)  # a branch sum, and a constant
        return self.head(torch.relu(self.fc(h.flatten(1))))

    def emulate(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(batch_norm(self.bn, conv(self.conv, x)))
        h = avg_pool(self.pool, fl(fl(h + conv(self.conv2, h)) - 0.375))
        return linear(self.head, torch.relu(linear(self.fc, h.flatten(1))))


def test_whole_network_emulated() -> None:
    """The propagated bound of a network evaluated in the emulated format dominates its
    observed logit error on every example."""
    torch.manual_seed(0)
    net = _Net().eval()
    for p in net.parameters():
        with torch.no_grad():
            p.copy_(fl(p.double()).float())
    _set(net.bn, running_mean=torch.rand(4) - 0.5, running_var=torch.rand(4) + 0.5)
    x = fl(torch.rand(16, 1, 9, 9, dtype=torch.float64)).float()
    network = NetworkBound(net, (1, 9, 9))
    bound = network.certified_bound()
    activations = float64_forward(network, float64_model(net), x)
    errors = logit_errors(network, bound, activations, unit_roundoff=U)
    with torch.no_grad():
        emulated = copy.deepcopy(net).double().emulate(x.double())
    observed = (emulated - activations.logits).norm(dim=1)
    allowed = errors.float32.const + errors.float64
    print(f"network: observed / bound up to {float((observed / allowed).max()):.3g}")
    assert (observed <= allowed).all()
