"""Registered bounds of the layers the networks use.

Linear layers (``nn.Linear``, ``nn.Conv2d``) are bounded by the operator norm of their bias-free
map: one persistent power-iteration step in training, and in certification an exact SVD for
fully connected layers and a float64 multi-start power iteration with error term for
convolutions. Activations and shape operations have closed-form constants (notes §2.5–2.6).
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds.power_iteration import LinearMap, certified_operator_norm, training_step
from lmt.bounds.registry import (
    BoundContext,
    Certified,
    LayerBound,
    register_bound,
    register_constant_bound,
)


class LinearOperatorBound(LayerBound):
    """Operator norm of a layer's bias-free linear map, with a persistent vector ``u``."""

    def linear_map(self, module: Any, weight: torch.Tensor) -> LinearMap:
        raise NotImplementedError

    def state_shapes(self, module: Any, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {"u": (1, *input_shape)}

    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        weight = module.weight
        sigma, u_next = training_step(
            self.linear_map(module, weight), self.linear_map(module, weight.detach()), ctx.state["u"]
        )
        ctx.state["u"].copy_(u_next)
        return sigma

    def certify(self, module: Any, ctx: BoundContext) -> Certified:
        weight = module.weight.detach().double()
        value = certified_operator_norm(
            self.linear_map(module, weight),
            ctx.input_shape,
            ctx.settings.n_iter,
            ctx.settings.n_starts,
            ctx.settings.seed,
            weight.device,
        )
        return Certified(
            value,
            f"power_iteration(float64, {ctx.settings.n_iter} it x {ctx.settings.n_starts} starts"
            ", Thm 2 error term; upper bound w.h.p.)",
        )


@register_bound(nn.Linear)
class LinearBound(LinearOperatorBound):
    """Spectral norm ‖W‖₂: exact SVD at certification."""

    def linear_map(self, module: nn.Linear, weight: torch.Tensor) -> LinearMap:
        return lambda x: F.linear(x, weight)

    def certify(self, module: nn.Linear, ctx: BoundContext) -> Certified:
        weight = module.weight.detach().double()
        return Certified(float(torch.linalg.matrix_norm(weight, ord=2)), "exact(svd)")


@register_bound(nn.Conv2d)
class Conv2dBound(LinearOperatorBound):
    """Operator norm of the actual convolution (stride, padding, dilation, groups)."""

    def linear_map(self, module: nn.Conv2d, weight: torch.Tensor) -> LinearMap:
        if module.padding_mode != "zeros":
            raise NotImplementedError(
                f"Conv2d with padding_mode={module.padding_mode!r} has no registered bound yet"
            )
        return lambda x: F.conv2d(
            x, weight, None, module.stride, module.padding, module.dilation, module.groups
        )


# Parameter-free operations (notes §2.6): 1-Lipschitz activations, identity-like shape changes.
_ONE: list[Any] = [
    nn.ReLU, F.relu, torch.relu, "relu",
    nn.Tanh, torch.tanh, F.tanh, "tanh",
    nn.Flatten, torch.flatten, "flatten", "view", "reshape", "contiguous",
    nn.Identity,
    nn.Dropout, F.dropout,  # the certificate is for eval mode, where dropout is the identity
]
register_constant_bound(_ONE, 1.0)
register_constant_bound([nn.Sigmoid, torch.sigmoid, F.sigmoid, "sigmoid"], 0.25)


@register_bound(nn.LeakyReLU)
def leaky_relu_bound(module: nn.LeakyReLU, ctx: BoundContext) -> float:
    """max(1, |negative_slope|)."""
    return max(1.0, abs(module.negative_slope))


# How several inputs combine (notes §2.1): addition adds, concatenation adds in quadrature.
COMBINERS: dict[Any, Callable[[list[torch.Tensor]], torch.Tensor]] = {
    operator.add: lambda ls: sum(ls[1:], ls[0]),
    torch.add: lambda ls: sum(ls[1:], ls[0]),
    "add": lambda ls: sum(ls[1:], ls[0]),
    torch.cat: lambda ls: torch.sqrt(sum(l**2 for l in ls)),
}
