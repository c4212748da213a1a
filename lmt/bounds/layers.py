"""Registered bounds of fully connected layers and parameter-free operations.

``nn.Linear``: one persistent power-iteration step in training, an exact SVD at certification.
Activations and shape operations have closed-form constants (notes §2.5–2.6; the paper's
App. D Table 2). Convolutions, BatchNorm, pooling, arithmetic and the combinations of
several inputs (:mod:`lmt.bounds.combiners`) live in their own modules.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds.linear_operator import LinearOperatorBound
from lmt.bounds.numerics import with_margin
from lmt.bounds.power_iteration import LinearMap
from lmt.bounds.registry import (
    BoundContext,
    LayerCertificate,
    Rounding,
    elementwise_rounding,
    register_bound,
    register_constant_bound,
)


@register_bound(nn.Linear)
class LinearBound(LinearOperatorBound):
    """Spectral norm ‖W‖₂: exact SVD at certification (with the float64 rounding margin)."""

    def linear_map(self, module: nn.Linear, ctx: BoundContext, detach: bool) -> LinearMap:
        weight = module.weight.detach() if detach else module.weight
        if ctx.mode == "certify":
            weight = weight.double()
        return lambda x: F.linear(x, weight)

    def training_maps(self, module: nn.Linear, ctx: BoundContext) -> tuple[LinearMap, LinearMap]:
        """W x and yᵀ W. For the training step's single vector, W x is a matrix–vector product:
        its weight gradient is a fresh outer product, which autograd adds in place to the main
        loss's gradient of W (F.linear's is a transposed view, which costs an extra W-sized
        allocation and copy per step)."""
        weight = module.weight
        detached = weight.detach()

        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.dim() == 2 and x.shape[0] == 1:
                return torch.mv(weight, x[0])[None]
            return F.linear(x, weight)

        return forward, (lambda y: y @ detached)

    def certify(self, module: nn.Linear, ctx: BoundContext) -> LayerCertificate:
        weight = module.weight.detach().double()
        return LayerCertificate(with_margin(float(torch.linalg.matrix_norm(weight, ord=2))), "exact(svd)")

    def rounding(self, module: nn.Linear, ctx: BoundContext, lipschitz: float) -> Rounding:
        """fl(W x + b): a dot product of in_features terms plus the bias, per output."""
        from lmt.bounds.rounding import absolute_matrix_norm

        bias = module.bias
        return Rounding(
            module.in_features + (bias is not None),
            absolute_matrix_norm(module.weight),
            0.0 if bias is None else float(bias.detach().double().norm()),
        )

    def compare(self, module: nn.Linear, ctx: BoundContext) -> dict[str, float]:
        """A fully connected layer is a 1×1 convolution on a 1×1 input: n = 1."""
        weight = module.weight.detach().double()
        spectral = float(torch.linalg.matrix_norm(weight, ord=2))
        frobenius = float(weight.norm())
        return {"thm1_2": spectral, "cor1": spectral, "cisse": spectral, "peck": frobenius,
                "frobenius": frobenius}


# Parameter-free operations (notes §2.6). Exact in floating point: piecewise-linear
# activations that select or clamp, and shape changes that move entries without arithmetic
# (isometries onto their image).
_EXACT_ONE: list[Any] = [
    nn.ReLU, F.relu, torch.relu, "relu", nn.ReLU6, F.relu6, nn.Hardtanh, F.hardtanh,
    nn.Flatten, torch.flatten, "flatten", "view", "reshape", "contiguous", nn.Unflatten,
    "permute", torch.permute, "transpose", torch.transpose, "squeeze", torch.squeeze,
    "unsqueeze", torch.unsqueeze,
    nn.Identity,
    # The certificate is for eval mode, where dropout is the identity (notes §2.6).
    nn.modules.dropout._DropoutNd, F.dropout, F.dropout2d,
]
register_constant_bound(_EXACT_ONE, 1.0, rounding=0)

# Transcendental activations: libm/SLEEF-style kernels are accurate to a few ulps of the
# result; we allow TRANSCENDENTAL_TERMS roundings relative to |f(x)| + 1 per entry (the
# absolute part covers exp(x) − 1 style cancellation near 0).
TRANSCENDENTAL_TERMS = 8


def transcendental_rounding(op: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
    return elementwise_rounding(TRANSCENDENTAL_TERMS, op, ctx, lipschitz, absolute=1.0)


register_constant_bound(
    [nn.Tanh, torch.tanh, F.tanh, "tanh",
     nn.Softplus, F.softplus,  # derivative sigmoid(βx) ∈ (0, 1)
     nn.CELU],  # derivative exp(x/α) ≤ 1 for x < 0
    1.0, rounding=transcendental_rounding,
)
register_constant_bound([nn.Sigmoid, torch.sigmoid, F.sigmoid, "sigmoid"], 0.25, rounding=transcendental_rounding)


def _call_arg(ctx: BoundContext, position: int, name: str, default: Any) -> Any:
    """A function call's argument by position or keyword (modules carry it as an attribute)."""
    if len(ctx.args) > position:
        return ctx.args[position]
    return ctx.kwargs.get(name, default)


@register_bound(nn.LeakyReLU, rounding=1)  # one multiplication on the negative side
def leaky_relu_bound(module: nn.LeakyReLU, ctx: BoundContext) -> float:
    """max(1, |negative_slope|)."""
    return max(1.0, abs(module.negative_slope))


@register_bound(F.leaky_relu, rounding=1)
def leaky_relu_function_bound(function: Any, ctx: BoundContext) -> float:
    """max(1, |negative_slope|)."""
    return max(1.0, abs(_call_arg(ctx, 1, "negative_slope", 0.01)))


def _elu_rounding(op: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
    """α·(exp(x) − 1): relative to |f(x)| + |α| (cancellation near 0)."""
    alpha = op.alpha if isinstance(op, nn.Module) else _call_arg(ctx, 1, "alpha", 1.0)
    return elementwise_rounding(TRANSCENDENTAL_TERMS, op, ctx, lipschitz, absolute=abs(alpha))


@register_bound(nn.ELU, rounding=_elu_rounding)
def elu_bound(module: nn.ELU, ctx: BoundContext) -> float:
    """ELU's derivative is 1 for x > 0 and α·eˣ < α for x < 0: max(1, |α|)."""
    return max(1.0, abs(module.alpha))


@register_bound(F.elu, rounding=_elu_rounding)
def elu_function_bound(function: Any, ctx: BoundContext) -> float:
    """max(1, |α|)."""
    return max(1.0, abs(_call_arg(ctx, 1, "alpha", 1.0)))
