"""Arithmetic with constants, means and padding in traced models: what is refused (with the
operation named), trainable and live constants, and the floating-point rounding models.
Exactness against explicit Jacobians is in tests/test_registry_references.py and
tests/test_exact_network_bounds.py."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import NetworkBound, UnboundedOperationError


class Lambda(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor], **members: torch.Tensor | nn.Module) -> None:
        super().__init__()
        self.fn = fn
        for name, value in members.items():
            if isinstance(value, nn.Module):
                self.add_module(name, value)
            elif isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            else:
                self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


REFUSED = [
    ("2 / x", lambda s, x: 2 / s.fc(x), {}, "truediv.*divided by an input-dependent"),
    ("x * x", lambda s, x: s.fc(x) * s.fc(x), {}, "'mul'.*2 input-dependent"),
    ("x * f(x)", lambda s, x: x * s.fc(x), {}, "'mul'.*2 input-dependent"),
    ("x.mean()", lambda s, x: s.fc(x).mean(), {}, "'mean'.*batch axis"),
    ("floor division", lambda s, x: torch.div(s.fc(x), 2, rounding_mode="floor"), {}, "'div'.*rounding"),
    ("constant over the batch", lambda s, x: s.fc(x) * s.c, {"c": torch.ones(2, 4)}, "'mul'.*batch axis"),
    ("division by zero", lambda s, x: s.fc(x) / s.c, {"c": torch.tensor([1.0, 0.0, 2.0, 3.0])}, "'truediv'.*zero"),
]


@pytest.mark.parametrize("name,fn,members,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_operations_without_a_global_bound_are_errors_naming_them(name, fn, members, message) -> None:
    model = Lambda(fn, fc=nn.Linear(4, 4), **members)
    with pytest.raises(UnboundedOperationError, match=message):
        NetworkBound(model, (4,))


def test_a_trainable_factor_is_bounded_differentiably() -> None:
    """x * α and x * w[:, None] with parameters: the training bound is |α|·max|w| (exact) and
    its gradient reaches both parameters."""
    alpha, w = nn.Parameter(torch.tensor(-1.5)), nn.Parameter(torch.tensor([0.5, -2.0, 1.0]))
    model = Lambda(lambda s, x: (x * s.alpha) * s.w[:, None], alpha=alpha, w=w)
    network = NetworkBound(model, (3, 4))
    total = network.training_bound().total
    assert float(total.detach()) == pytest.approx(3.0)
    total.backward()
    assert float(alpha.grad) == pytest.approx(-2.0)  # d|α|·2/dα
    assert w.grad.tolist() == pytest.approx([0.0, -1.5, 0.0])  # only the largest |w| counts


def test_constants_follow_the_current_parameters_and_buffers() -> None:
    """A constant computed from a parameter (w[:, None]) or a buffer is evaluated when bounded,
    not frozen when the network was traced."""
    model = Lambda(lambda s, x: x * s.w[:, None] / s.scale, w=nn.Parameter(torch.ones(3)), scale=torch.tensor(2.0))
    network = NetworkBound(model, (3, 4))
    assert network.certified_bound().total == pytest.approx(0.5)
    with torch.no_grad():
        model.w[1] = 6.0
        model.scale.fill_(4.0)
    assert network.certified_bound().total == pytest.approx(1.5)


def test_a_bare_layer_is_the_whole_model() -> None:
    """nn.Conv2d as the model: one step (its forward is not traced into conv2d/pad calls); a
    bare Linear is its own head (body bound 1)."""
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")
    network = NetworkBound(conv, (2, 6, 6))
    assert [row["type"] for row in network.certified_bound().layers] == ["Conv2d"]
    network.training_bound().total.backward()
    assert conv.weight.grad.abs().sum() > 0
    linear = NetworkBound(nn.Linear(5, 3), (5,)).certified_bound()
    assert linear.body == 1.0 and linear.head_weight.shape == (3, 5)


# -- rounding models: float32 evaluation against float64 ---------------------------------------

U32 = 2.0**-24


def _gamma(terms: int) -> float:
    return terms * U32 / (1 - terms * U32)


ROUNDED = {
    "x * 0.1": (lambda s, x: x * 0.1, {}, (6, 5)),
    "x / 3": (lambda s, x: x / 3, {}, (6, 5)),
    "x * c, expanded": (lambda s, x: x * s.c, {"c": torch.tensor([[0.3], [-1.7], [2.9]])}, (1, 7)),
    "x / c": (lambda s, x: torch.div(x, s.c), {"c": torch.tensor([0.3, -7.0, 1.1])}, (3,)),
    "mean over 4000": (lambda s, x: x.mean((1, 2)), {}, (3, 50, 80)),
    "pad with 0.1": (lambda s, x: F.pad(x, (2, 1), value=0.1), {}, (3, 4)),
    "reflect pad": (lambda s, x: F.pad(x, (2, 1, 1, 1), mode="reflect"), {}, (2, 3, 4)),
    "-x": (lambda s, x: -x, {}, (5,)),
}


@pytest.mark.parametrize("name", list(ROUNDED))
def test_rounding_model_bounds_the_float32_error(name: str) -> None:
    """‖fl(op(x̂)) − op(x̂)‖ ≤ γ_terms·(gain·‖x̂‖ + offset) for float32 inputs x̂ of very
    different magnitudes, with op(x̂) evaluated in float64 (exact to 1e-16)."""
    fn, members, shape = ROUNDED[name]
    model = Lambda(fn, **members)
    network = NetworkBound(model, shape)
    (step,) = [s for s in network.steps if s.kind == "layer"]
    ctx = network.context(step, "certify")
    lipschitz = step.bound.certify(step.target, ctx).value
    model_ = step.bound.rounding(step.target, ctx, lipschitz)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, *shape, generator=gen) * 10 ** torch.randint(-3, 4, (64,) + (1,) * len(shape), generator=gen)
    rounded = model(x).double()
    exact = Lambda(fn, **{k: v.double() for k, v in members.items()})(x.double())
    error = (rounded - exact).flatten(1).norm(dim=1)
    allowed = _gamma(model_.terms) * (model_.gain * x.double().flatten(1).norm(dim=1) + model_.offset)
    worst = float((error / allowed.clamp_min(1e-300)).max())
    assert bool((error <= allowed).all()), f"{name}: error {worst}× what the model allows"
    if model_.terms == 0:
        assert float(error.max()) == 0.0
    assert math.isfinite(model_.gain)
