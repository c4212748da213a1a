"""Every registered bound against an exact or independent reference, with tolerance 0.

``REFERENCES`` maps every key of :func:`lmt.bounds.registered_bounds` (module types, functions,
method names, fused pairs) to reference cases; a key registered without one fails
:func:`test_every_registered_bound_has_a_reference` until a case is added (timm-style). Each
case calls the key's bound directly — ``certify`` with the call's arguments, as the graph
walker would — so keys that tracing never produces (``F.tanh`` traces to the method) are
checked too. References:

* ``linear``: the spectral norm of the explicit Jacobian of the float64 operation (SVD);
* ``slope``: elementwise nonlinearities — the closed form, which the bound must equal, and the
  largest difference quotient on a dense grid, which must reach it and not exceed it;
* ``maxpool``: the difference quotient at e_p → 2·e_p for every pixel p: all windows that
  contain p move by 1, so the largest quotient is √n, n the largest window count (Thm 3);
* ``residual``: the 1-Lipschitz residual layers x − W·T·relu(Wᵀx + b) (SLL, CPL): the largest
  norm over the activation patterns S ∈ {0, I} of the explicit Jacobian I − W·T·S·Wᵀ, which is
  the largest over every S in [0, 1] (the norm is convex in S and its maximum is at S = 0 or
  S = I for a positive semi-definite W·T·Wᵀ) and hence ≥ the Lipschitz constant.

A certified value must be ≥ its reference with no tolerance; where the bound is exact
(``tight``), also ≤ reference·(1 + 1e-6), so a too-small and a grossly loose bound both fail.

Keys registered by test modules are covered like the others: ``nn.Softsign`` and the README's
``Scale`` (tests/test_network_bounds.py registers both inside a test); their cases are skipped
while they are not registered.
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import padding
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

import lmt_bench_baselines.parseval as parseval
from lmt.bounds import BoundContext, CertifySettings, registered_bounds
from lmt.bounds.registry import INPUT, lookup_bound, lookup_fusion
from lmt.models import lipschitz_layers as lip
from lmt.models.normalize import Normalize
from tests.bound_helpers import jacobian, spectral_norm
from tests.test_network_bounds import Scale as ReadmeScale

GEN = torch.Generator().manual_seed(0)


def _randn(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=GEN)


def _randomised(module: nn.Module) -> nn.Module:
    """Random parameters and (BatchNorm) running statistics, eval mode."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(_randn(p.shape))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(_randn(b.shape))
            elif name.endswith("running_var"):
                b.copy_(0.2 + 2 * torch.rand(b.shape, generator=GEN))
    return module.eval()


@dataclass(frozen=True)
class Reference:
    """One call of a registered operation and how to get its exact Lipschitz constant."""

    op: Any  # module, fused pair, function or method name
    shape: tuple[int, ...]  # one example's input shape
    args: tuple[Any, ...] = (INPUT,)  # the call's arguments (functions and methods)
    kwargs: dict[str, Any] = field(default_factory=dict)
    kind: str = "linear"  # "linear", "slope", "maxpool" or "residual"
    tight: bool = True  # the bound is exact
    closed_form: float | None = None  # "slope": the exact constant

    def __repr__(self) -> str:
        op = self.op if isinstance(self.op, (nn.Module, str, tuple)) else getattr(self.op, "__name__", self.op)
        args = ", ".join("x" if a is INPUT else repr(a) for a in self.args)
        return f"{op}({args}{', ' if self.kwargs else ''}{self.kwargs or ''}) on {self.shape}"


def call(op: Any, *args: Any, shape: tuple[int, ...] = (4,), **kwargs: Any) -> Reference:
    """A linear function or method call, ``INPUT`` marking the input among ``args``."""
    return Reference(op, shape, args if INPUT in args else (INPUT, *args), kwargs)


def module(m: nn.Module, shape: tuple[int, ...], tight: bool = True) -> Reference:
    return Reference(_randomised(m), shape, tight=tight)


def slope(op: Any, closed_form: float, *args: Any, **kwargs: Any) -> Reference:
    """An elementwise nonlinearity (a module, or a function/method with extra arguments)."""
    if isinstance(op, nn.Module):
        return Reference(op, (4,), kind="slope", closed_form=closed_form)
    return Reference(op, (4,), (INPUT, *args), kwargs, "slope", closed_form=closed_form)


def maxpool(m: nn.Module, shape: tuple[int, ...]) -> Reference:
    return Reference(m, shape, kind="maxpool")


def residual(m: nn.Module, shape: tuple[int, ...]) -> Reference:
    return Reference(_randomised(m), shape, kind="residual")


def residual_jacobian_norm(layer: lip.ResidualLipschitzLayer, shape: tuple[int, ...]) -> float:
    """max(‖I‖, ‖I − W·T·Wᵀ‖) from the explicit Jacobian of the float64 layer with S = I."""
    layer = copy.deepcopy(layer).double()
    with torch.no_grad():
        t = layer.scaling().double()

    def all_active(x: torch.Tensor) -> torch.Tensor:
        h = layer.down(x, layer.weight)
        return x - layer.up(h * t.view(layer.hidden_shape(h)), layer.weight)

    return max(1.0, spectral_norm(jacobian(all_active, shape)))


def _conv(*args: Any, **kwargs: Any) -> nn.Conv2d:
    return nn.Conv2d(*args, **kwargs)


CHANNEL = torch.tensor([0.5, -3.0, 2.0]).view(3, 1, 1)  # per-channel constant for (3, H, W)
EXPANDING = torch.tensor([1.0, -2.0, 0.5, 4.0]).view(4, 1, 1)  # expands (1, H, W) to 4 channels

REFERENCES: dict[Any, list[Reference]] = {
    # -- linear layers -------------------------------------------------------------------------
    nn.Linear: [module(nn.Linear(5, 3), (5,)), module(nn.Linear(3, 7, bias=False), (3,))],
    nn.Conv2d: [
        module(_conv(2, 3, 3, stride=2, padding=1), (2, 6, 5)),
        module(_conv(2, 3, 3, padding=2, dilation=2, padding_mode="reflect"), (2, 5, 6)),
        module(_conv(4, 2, 2, groups=2, padding=1, padding_mode="replicate"), (4, 4, 4)),
        module(_conv(1, 3, (3, 2), padding="same", padding_mode="circular"), (1, 5, 4)),
        module(_conv(2, 2, 3, padding="same", dilation=(1, 2)), (2, 5, 5)),
    ],
    (nn.Conv2d, nn.BatchNorm2d): [
        Reference((_randomised(_conv(2, 3, 3, padding=1)), _randomised(nn.BatchNorm2d(3))), (2, 4, 5)),
        Reference((_randomised(_conv(3, 2, 2, stride=2)), _randomised(nn.BatchNorm2d(2))), (3, 6, 6)),
    ],
    _BatchNorm: [
        module(nn.BatchNorm1d(3), (3,)), module(nn.BatchNorm1d(3), (3, 4)),
        module(nn.BatchNorm2d(2), (2, 3, 3)), module(nn.BatchNorm3d(2), (2, 2, 3, 2)),
        module(nn.BatchNorm2d(3, affine=False), (3, 2, 2)),
    ],
    Normalize: [module(Normalize([0.1, 0.5, -0.2], [0.3, -2.0, 0.7]), (3, 2, 2))],
    parseval.Scale: [module(parseval.Scale(-0.3), (4,))],
    parseval.ConvexWeight: [module(parseval.ConvexWeight(0.7), (2, 3))],
    ReadmeScale: [module(ReadmeScale(4), (4,))],
    # -- arithmetic with constants ---------------------------------------------------------------
    operator.mul: [call(operator.mul, INPUT, 0.5), call(operator.mul, -3.0, INPUT),
                   call(operator.mul, INPUT, CHANNEL, shape=(3, 2, 2)),
                   call(operator.mul, EXPANDING, INPUT, shape=(1, 2, 3))],
    torch.mul: [call(torch.mul, INPUT, CHANNEL, shape=(3, 2, 2)),
                call(torch.mul, INPUT, other=torch.tensor(-2.5))],
    torch.multiply: [call(torch.multiply, INPUT, EXPANDING, shape=(1, 2, 2))],
    "mul": [call("mul", INPUT, CHANNEL, shape=(3, 1, 2)), call("mul", INPUT, 1.5)],
    "multiply": [call("multiply", INPUT, -0.25)],
    operator.truediv: [call(operator.truediv, INPUT, 2.0),
                       call(operator.truediv, INPUT, CHANNEL, shape=(3, 2, 2))],
    torch.div: [call(torch.div, INPUT, CHANNEL, shape=(3, 2, 1)),
                call(torch.div, INPUT, 3.0, rounding_mode=None)],
    torch.divide: [call(torch.divide, INPUT, EXPANDING, shape=(1, 2, 2))],
    torch.true_divide: [call(torch.true_divide, INPUT, -4.0)],
    "div": [call("div", INPUT, 0.1)],
    "divide": [call("divide", INPUT, CHANNEL, shape=(3, 1, 1))],
    "true_divide": [call("true_divide", INPUT, 7.0)],
    operator.neg: [call(operator.neg)], torch.neg: [call(torch.neg)],
    torch.negative: [call(torch.negative)], "neg": [call("neg")], "negative": [call("negative")],
    operator.pos: [call(operator.pos)], torch.positive: [call(torch.positive)],
    "positive": [call("positive")],
    torch.mean: [call(torch.mean, INPUT, (2, 3), shape=(2, 3, 4)),
                 call(torch.mean, dim=-1, keepdim=True, shape=(2, 3, 5))],
    "mean": [call("mean", INPUT, 2, shape=(2, 3, 4)), call("mean", INPUT, [1, 3], True, shape=(2, 3, 4))],
    F.pad: [call(F.pad, INPUT, (1, 2, 2, 1), shape=(2, 3, 4)),
            call(F.pad, INPUT, (2, 1, 1, 2), mode="reflect", shape=(2, 3, 4)),
            call(F.pad, INPUT, (1, 3, 0, 2), mode="replicate", shape=(1, 3, 4)),
            call(F.pad, INPUT, (2, 2, 1, 3), mode="circular", shape=(1, 3, 4)),
            call(F.pad, INPUT, (1, 1), "constant", 0.5, shape=(2, 3)),
            call(F.pad, INPUT, (-1, 1, 0, -1), shape=(1, 3, 3))],
    padding._ConstantPadNd: [module(nn.ZeroPad2d((1, 0, 2, 1)), (1, 2, 3)),
                             module(nn.ConstantPad1d((2, 1), 3.0), (2, 3))],
    padding._ReflectionPadNd: [module(nn.ReflectionPad2d((2, 1, 1, 2)), (1, 3, 4)),
                               module(nn.ReflectionPad1d(2), (2, 3))],
    padding._ReplicationPadNd: [module(nn.ReplicationPad3d(1), (1, 2, 2, 2)),
                                module(nn.ReplicationPad2d((3, 0, 1, 1)), (1, 2, 3))],
    padding._CircularPadNd: [module(nn.CircularPad2d((1, 2, 2, 1)), (1, 3, 3)),
                             module(nn.CircularPad1d(2), (2, 4))],
    # -- shapes, identity, eval-mode dropout (isometries: 1) -------------------------------------
    nn.Flatten: [module(nn.Flatten(), (2, 3, 2))], nn.Unflatten: [module(nn.Unflatten(1, (2, 3)), (6,))],
    torch.flatten: [call(torch.flatten, INPUT, 1, shape=(2, 3))], "flatten": [call("flatten", 1, shape=(2, 3))],
    "view": [call("view", 1, -1, shape=(2, 3))], "reshape": [call("reshape", (1, 3, 2), shape=(2, 3))],
    "contiguous": [call("contiguous", shape=(2, 3))],
    "permute": [call("permute", 0, 2, 1, shape=(2, 3))],
    torch.permute: [call(torch.permute, INPUT, (0, 2, 1), shape=(2, 3))],
    "transpose": [call("transpose", 1, 2, shape=(2, 3))],
    torch.transpose: [call(torch.transpose, INPUT, 1, 2, shape=(2, 3))],
    "squeeze": [call("squeeze", 1, shape=(1, 3))], torch.squeeze: [call(torch.squeeze, INPUT, 1, shape=(1, 3))],
    "unsqueeze": [call("unsqueeze", 1)], torch.unsqueeze: [call(torch.unsqueeze, INPUT, 2)],
    nn.Identity: [module(nn.Identity(), (4,))],
    _DropoutNd: [module(nn.Dropout(0.5), (4,)), module(nn.Dropout2d(0.3), (2, 2, 2))],
    F.dropout: [call(F.dropout, INPUT, 0.5, training=False)],
    F.dropout2d: [call(F.dropout2d, INPUT, 0.5, False, shape=(2, 2, 2))],
    # -- pooling -----------------------------------------------------------------------------------
    nn.MaxPool1d: [maxpool(nn.MaxPool1d(3, 2, padding=1), (2, 9))],
    nn.MaxPool2d: [maxpool(nn.MaxPool2d(3, stride=1), (1, 6, 5)),
                   maxpool(nn.MaxPool2d((3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1)), (1, 7, 6))],
    nn.MaxPool3d: [maxpool(nn.MaxPool3d(2, stride=1), (1, 3, 3, 3))],
    nn.AdaptiveMaxPool1d: [maxpool(nn.AdaptiveMaxPool1d(4), (1, 7))],
    nn.AdaptiveMaxPool2d: [maxpool(nn.AdaptiveMaxPool2d((3, 4)), (1, 7, 6))],
    nn.AdaptiveMaxPool3d: [maxpool(nn.AdaptiveMaxPool3d(2), (1, 3, 3, 3))],
    nn.AvgPool1d: [module(nn.AvgPool1d(2), (2, 8))],
    nn.AvgPool2d: [module(nn.AvgPool2d(2), (2, 6, 6)), module(nn.AvgPool2d(3, 1, padding=1), (1, 5, 5), tight=False)],
    nn.AvgPool3d: [module(nn.AvgPool3d(2), (1, 4, 4, 4))],
    nn.AdaptiveAvgPool1d: [module(nn.AdaptiveAvgPool1d(1), (2, 6))],
    nn.AdaptiveAvgPool2d: [module(nn.AdaptiveAvgPool2d((2, 3)), (1, 4, 6)),
                           module(nn.AdaptiveAvgPool2d((3, 2)), (1, 7, 5), tight=False)],
    nn.AdaptiveAvgPool3d: [module(nn.AdaptiveAvgPool3d(2), (1, 4, 4, 4))],
    F.avg_pool1d: [call(F.avg_pool1d, INPUT, 2, shape=(1, 6))],
    F.avg_pool2d: [call(F.avg_pool2d, INPUT, 2, shape=(2, 4, 4))],
    F.avg_pool3d: [call(F.avg_pool3d, INPUT, 2, shape=(1, 2, 4, 2))],
    F.adaptive_avg_pool1d: [call(F.adaptive_avg_pool1d, INPUT, 1, shape=(2, 5))],
    F.adaptive_avg_pool2d: [call(F.adaptive_avg_pool2d, INPUT, 1, shape=(2, 3, 4))],
    F.adaptive_avg_pool3d: [call(F.adaptive_avg_pool3d, INPUT, (1, 2, 1), shape=(1, 2, 4, 3))],
    # -- elementwise nonlinearities ----------------------------------------------------------------
    nn.ReLU: [slope(nn.ReLU(), 1.0)], F.relu: [slope(F.relu, 1.0)], torch.relu: [slope(torch.relu, 1.0)],
    "relu": [slope("relu", 1.0)],
    nn.ReLU6: [slope(nn.ReLU6(), 1.0)], F.relu6: [slope(F.relu6, 1.0)],
    nn.Hardtanh: [slope(nn.Hardtanh(-2.0, 3.0), 1.0)], F.hardtanh: [slope(F.hardtanh, 1.0)],
    nn.Tanh: [slope(nn.Tanh(), 1.0)], torch.tanh: [slope(torch.tanh, 1.0)], F.tanh: [slope(F.tanh, 1.0)],
    "tanh": [slope("tanh", 1.0)],
    nn.Softplus: [slope(nn.Softplus(beta=3.0), 1.0)], F.softplus: [slope(F.softplus, 1.0, 2.0)],
    nn.CELU: [slope(nn.CELU(0.5), 1.0)],
    nn.Sigmoid: [slope(nn.Sigmoid(), 0.25)], torch.sigmoid: [slope(torch.sigmoid, 0.25)],
    F.sigmoid: [slope(F.sigmoid, 0.25)], "sigmoid": [slope("sigmoid", 0.25)],
    nn.LeakyReLU: [slope(nn.LeakyReLU(2.5), 2.5), slope(nn.LeakyReLU(0.2), 1.0), slope(nn.LeakyReLU(-3.0), 3.0)],
    F.leaky_relu: [slope(F.leaky_relu, 2.0, 2.0), slope(F.leaky_relu, 1.0, negative_slope=0.5)],
    nn.ELU: [slope(nn.ELU(alpha=2.0), 2.0), slope(nn.ELU(), 1.0)],
    F.elu: [slope(F.elu, 1.0, 0.5), slope(F.elu, 3.0, alpha=3.0)],
    nn.Softsign: [slope(nn.Softsign(), 1.0)],  # registered by tests/test_network_bounds.py
    # -- 1-Lipschitz layers (lmt.models.lipschitz_layers) -------------------------------------------
    lip.AOLLinear: [module(lip.AOLLinear(5, 3), (5,)), module(lip.AOLLinear(3, 6, bias=False), (3,))],
    lip.AOLConv2d: [module(lip.AOLConv2d(2, 3, 3), (2, 5, 5)),
                    module(lip.AOLConv2d(3, 2, 4, stride=2, padding=1), (3, 6, 6))],
    lip.CayleyLinear: [module(lip.CayleyLinear(5, 3), (5,)), module(lip.CayleyLinear(3, 4, bias=False), (3,))],
    lip.SOCLinear: [module(lip.SOCLinear(4, 4), (4,)), module(lip.SOCLinear(5, 3, terms=2), (5,))],
    lip.SOCConv2d: [module(lip.SOCConv2d(2, 4, 3), (2, 5, 5)),
                    module(lip.SOCConv2d(3, 2, 5, stride=2, terms=2), (3, 6, 6))],
    lip.SLLLinear: [residual(lip.SLLLinear(5, 3), (5,)), residual(lip.SLLLinear(3, 4), (3,))],
    lip.SLLConv2d: [residual(lip.SLLConv2d(2, 3), (2, 4, 4))],
    lip.CPLLinear: [residual(lip.CPLLinear(4, 3), (4,)),
                    residual(lip.CPLLinear(4, 3, normalizer="power_iteration", warmup_iterations=0), (4,))],
    lip.CPLConv2d: [residual(lip.CPLConv2d(2, (4, 4), 3), (2, 4, 4))],
}

CASES = [(key, ref) for key, refs in REFERENCES.items() for ref in refs]


def _key_id(key: Any) -> str:
    if isinstance(key, tuple):
        return "+".join(k.__name__ for k in key)
    if isinstance(key, str):
        return repr(key)
    return f"{getattr(key, '__module__', '') or ''}.{getattr(key, '__qualname__', getattr(key, '__name__', key))}"


def test_every_registered_bound_has_a_reference() -> None:
    """Registering a bound without adding a reference case here fails."""
    missing = [_key_id(key) for key in registered_bounds() if key not in REFERENCES]
    assert not missing, (
        f"registered bounds without a reference case in tests/test_registry_references.py: {missing}"
    )


def _apply(op: Any, ctx: BoundContext, x: torch.Tensor) -> torch.Tensor:
    if isinstance(op, tuple):  # a fused pair of modules
        for m in op:
            x = m(x)
        return x
    return ctx.apply(op, x)


def _float64(op: Any) -> Any:
    if isinstance(op, nn.Module):
        return copy.deepcopy(op).double()
    if isinstance(op, tuple):
        return tuple(_float64(m) for m in op)
    return op


def max_window_quotient(f: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...]) -> float:
    """max over pixels p of ‖f(2·e_p) − f(e_p)‖: √(number of windows containing p)."""
    best = 0.0
    for p in range(math.prod(shape)):
        e = torch.zeros(math.prod(shape), dtype=torch.float64)
        e[p] = 1.0
        e = e.view(1, *shape)
        best = max(best, float((f(2 * e) - f(e)).norm()))
    return best


@pytest.mark.parametrize("key,ref", CASES, ids=[f"{_key_id(k)}-{i}" for i, (k, _) in enumerate(CASES)])
def test_registered_bound_against_its_reference(key: Any, ref: Reference) -> None:
    bound = registered_bounds().get(key)
    if bound is None:
        pytest.skip(f"{_key_id(key)} is registered by a test that has not run in this session")
    if isinstance(ref.op, tuple):
        assert lookup_fusion(*ref.op) is bound, "the case does not exercise its key"
    elif isinstance(ref.op, nn.Module):
        assert lookup_bound(ref.op, "") is bound, "the case does not exercise its key"
    else:
        assert ref.op is key or ref.op == key, "the case does not exercise its key"
    ctx = BoundContext("certify", "reference", ref.shape, CertifySettings(), {}, ref.args, ref.kwargs)
    with torch.no_grad():
        bound.validate(ref.op, ctx)
        certified = bound.certify(ref.op, ctx).value
    op = _float64(ref.op)

    def f(x: torch.Tensor) -> torch.Tensor:
        return _apply(op, ctx, x)

    if ref.kind == "slope":
        assert ref.closed_form <= certified <= ref.closed_form * (1 + 1e-6)
        grid = torch.linspace(-8, 8, 160_001, dtype=torch.float64).view(1, -1)
        with torch.no_grad():
            values = f(grid).flatten()
        slopes = (values[1:] - values[:-1]).abs() / (grid[0, 1] - grid[0, 0])
        assert float(slopes.max()) <= certified * (1 + 1e-9), "a secant slope exceeds the bound"
        assert float(slopes.max()) >= ref.closed_form * (1 - 1e-3), "the closed form is not reached"
        return
    with torch.no_grad():
        reference = max_window_quotient(f, ref.shape) if ref.kind == "maxpool" else None
    if ref.kind == "residual":
        reference = residual_jacobian_norm(ref.op, ref.shape)
    if reference is None:
        reference = spectral_norm(jacobian(f, ref.shape))
    assert certified >= reference, f"certified {certified!r} below the exact {reference!r}"
    if ref.tight:
        assert certified <= reference * (1 + 1e-6), f"certified {certified!r} is not the exact {reference!r}"
    else:
        assert certified <= reference * 1.5, f"certified {certified!r} is far above the exact {reference!r}"


@pytest.mark.parametrize("key,ref", CASES, ids=[f"{_key_id(k)}-{i}" for i, (k, _) in enumerate(CASES)])
def test_registered_bound_has_a_sound_rounding_model(key: Any, ref: Reference) -> None:
    """Every registered bound declares how its operation rounds (the float32 certificate needs
    it): an operation claimed exact gives bitwise the float64 result in float32, and any other
    stays within γ_terms·(gain·‖x‖ + offset) on random inputs."""
    from lmt.bounds import Rounding
    from lmt.bounds.rounding import FLOAT32_UNIT_ROUNDOFF, gamma

    bound = registered_bounds().get(key)
    if bound is None:
        pytest.skip(f"{_key_id(key)} is registered by a test that has not run in this session")
    ctx = BoundContext("certify", "reference", ref.shape, CertifySettings(), {}, ref.args, ref.kwargs)
    with torch.no_grad():
        certified = bound.certify(ref.op, ctx).value
        model = bound.rounding(ref.op, ctx, certified)
        assert isinstance(model, Rounding)
        x = (4 * torch.rand(1, *ref.shape, generator=GEN) - 2).float()  # batch 1: some cases fix shapes
        op32 = copy.deepcopy(ref.op) if isinstance(ref.op, (nn.Module, tuple)) else ref.op
        got = _apply(op32, ctx, x).double()
        want = _apply(_float64(ref.op), ctx, x.double())
    error = (got - want).flatten(1).norm(dim=1)
    if model.terms == 0:
        assert torch.equal(got, want), f"{_key_id(key)} is declared exact but rounds"
        return
    allowed = gamma(model.terms, FLOAT32_UNIT_ROUNDOFF) * (model.gain * x.double().flatten(1).norm(dim=1) + model.offset)
    assert (error <= allowed).all(), f"{_key_id(key)}: float32 error {float(error.max()):.3g} > model {float(allowed.min()):.3g}"
