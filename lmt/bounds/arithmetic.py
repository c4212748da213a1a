"""Bounds of arithmetic with constants, negation, means over axes and padding.

* ``x * c``, ``c * x``, ``x / c`` (operator, ``torch`` and Tensor-method forms) for a constant c:
  a Python number, a parameter or buffer, or a computation on them. Broadcasting copies each
  entry x_i to some outputs, each multiplied by its own c, so the exact norm of
  x ↦ c ⊙ broadcast(x) is sqrt(max_i Σ_{copies of x_i} c²) — max |c| when x is not expanded.
  A trainable c is bounded differentiably in training mode. A constant divided by the input
  (``2 / x``), rounding division and a product of two input-dependent tensors (``x * x``, which
  the graph rejects) have no global Lipschitz constant: errors that name them.
* ``-x``, ``+x``: 1, exact in floating point.
* ``x.mean(dims)`` over non-batch axes: each output averages its own k entries, exactly 1/√k.
* ``F.pad`` and the padding modules (constant, reflect, replicate, circular): each output
  copies at most one input entry (or is the fill value), so AᵀA is the diagonal of copy
  counts and the norm is exactly sqrt(largest copy count), read off Aᵀ·1.

Addition and subtraction (of branches, or of a branch and a constant), concatenation and
stacking are combiners (:mod:`lmt.bounds.combiners`).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import padding

from lmt.bounds.constants import resolve
from lmt.bounds.numerics import with_margin
from lmt.bounds.pooling import ShapeBound
from lmt.bounds.registry import (
    EXACT, INPUT, BoundContext, LayerBound, LayerCertificate, Rounding, UnboundedOperationError,
    register_bound, register_constant_bound,
)


def copies(factor: torch.Tensor, input_shape: tuple[int, ...]) -> int:
    """How many outputs each input entry is copied to when broadcast against ``factor``
    (an error if the factor broadcasts over the batch axis)."""
    example = (1, *input_shape)
    if factor.dim() > len(example) or (factor.dim() == len(example) and factor.shape[0] != 1):
        raise UnboundedOperationError(
            f"a constant of shape {tuple(factor.shape)} broadcasts over the batch axis of inputs "
            f"of shape (N, {', '.join(map(str, input_shape))}): it mixes or repeats examples"
        )
    return math.prod(torch.broadcast_shapes(example, factor.shape)) // math.prod(example)


def scale_norm(factor: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Exact ‖x ↦ factor ⊙ x‖₂ for one example x of shape (1, *input_shape), both broadcast."""
    example = (1, *input_shape)
    if copies(factor, input_shape) == 1:  # a diagonal map
        return factor.abs().max()
    out = torch.broadcast_shapes(example, factor.shape)
    return (factor * factor).expand(out).sum_to_size(example).max().sqrt()


def _as_factor(value: Any, ctx: BoundContext) -> torch.Tensor:
    """The constant operand as a real tensor: float64 and detached in certify mode (a Python
    number is converted to float64 directly, not through the default dtype)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise UnboundedOperationError(f"the constant operand {value!r} is not a real number or tensor")
    if not isinstance(value, torch.Tensor):
        return torch.tensor(float(value), dtype=torch.float64 if ctx.mode == "certify" else None)
    factor = value
    if factor.is_complex():
        raise UnboundedOperationError("a complex constant factor is not supported")
    if ctx.mode == "certify":
        return factor.detach().double()
    return factor if factor.is_floating_point() else factor.float()


class ScaleBound(LayerBound):
    """Multiplication (``divide=False``) or division by a constant: the exact norm of
    x ↦ c ⊙ x or x ↦ x / c with broadcasting (:func:`scale_norm`)."""

    def __init__(self, divide: bool) -> None:
        self.divide = divide

    def factor(self, op: Any, ctx: BoundContext) -> torch.Tensor:
        """c (multiplication) or 1/c (division), after checking which operand is the input;
        in certify mode (also run once at tracing), that its entries are finite and non-zero
        (not in training, where a check would wait for the device at every step)."""
        unknown = set(ctx.kwargs) - {"input", "other", "rounding_mode"}
        if unknown:
            raise UnboundedOperationError(f"unsupported arguments {sorted(unknown)}")
        if ctx.kwargs.get("rounding_mode") is not None:
            raise UnboundedOperationError("division with rounding is piecewise constant, not Lipschitz")
        operands = [*ctx.args, *(ctx.kwargs[k] for k in ("input", "other") if k in ctx.kwargs)]
        if len(operands) != 2:
            raise UnboundedOperationError(f"expected two operands, got {len(operands)}")
        position = next(i for i, a in enumerate(operands) if a is INPUT)
        if self.divide and position != 0:
            raise UnboundedOperationError(
                "a constant divided by an input-dependent tensor has no global Lipschitz bound"
            )
        factor = _as_factor(resolve(operands[1 - position]), ctx)
        if ctx.mode == "certify" and self.divide and bool((factor == 0).any()):
            raise UnboundedOperationError("division by a constant with a zero entry")
        factor = 1 / factor if self.divide else factor
        if ctx.mode == "certify" and not bool(torch.isfinite(factor).all()):
            raise UnboundedOperationError("the constant factor is not finite")
        return factor

    def value(self, op: Any, ctx: BoundContext) -> torch.Tensor:
        return scale_norm(self.factor(op, ctx), ctx.input_shape)

    def validate(self, op: Any, ctx: BoundContext) -> None:
        with torch.no_grad():
            self.value(op, ctx)

    def train(self, op: Any, ctx: BoundContext) -> torch.Tensor:
        return self.value(op, ctx)

    def certify(self, op: Any, ctx: BoundContext) -> LayerCertificate:
        """max |c| is exact; a reciprocal or a sum of squares gets the rounding margin."""
        factor = self.factor(op, ctx)
        m = copies(factor, ctx.input_shape)
        value = float(scale_norm(factor, ctx.input_shape))
        if self.divide or m > 1:
            value = with_margin(value)
        word = "1/c" if self.divide else "c"
        return LayerCertificate(value, f"exact(sqrt(max over inputs of sum of ({word})^2 over its {m} copies))")

    def rounding(self, op: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """|fl(c·x) − c·x| ≤ γ·|c·x| per entry, so ‖error‖ ≤ γ·L·M: one rounding for the
        product, one for c rounded to the evaluation dtype (0.1 is no float32), and for a
        division one for the reciprocal that kernels may multiply by."""
        return Rounding(3 if self.divide else 2, gain=lipschitz)


MULTIPLY = [operator.mul, torch.mul, torch.multiply, "mul", "multiply"]
DIVIDE = [operator.truediv, torch.div, torch.divide, torch.true_divide, "div", "divide", "true_divide"]
register_bound(*MULTIPLY)(ScaleBound(divide=False))
register_bound(*DIVIDE)(ScaleBound(divide=True))

# Negation and unary plus: isometries, exact in floating point.
register_constant_bound(
    [operator.neg, torch.neg, torch.negative, "neg", "negative", operator.pos, torch.positive, "positive"],
    1.0, rounding=0,
)


@register_bound(torch.mean, "mean")
class MeanBound(ShapeBound):
    """Mean over non-batch axes: each output averages its own k inputs, so ‖A‖ = 1/√k."""

    def count(self, ctx: BoundContext) -> int:
        """k: the number of entries each output averages."""
        dims = ctx.argument(1, "dim", ctx.kwargs.get("axis"))
        if isinstance(dims, int):
            dims = (dims,)
        ndim = len(ctx.input_shape) + 1
        axes = {d % ndim for d in dims or ()}
        if not axes or 0 in axes:
            raise UnboundedOperationError(
                "a mean over the batch axis mixes examples; average over the other axes only"
            )
        return math.prod(ctx.input_shape[d - 1] for d in axes)

    def value(self, op: Any, ctx: BoundContext) -> tuple[float, str]:
        k = self.count(ctx)
        return with_margin(1 / math.sqrt(k)), f"exact(1/sqrt(k), k={k})"

    def validate(self, op: Any, ctx: BoundContext) -> None:
        self.count(ctx)

    def rounding(self, op: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """A sum of k terms and a division (or a multiplication by a rounded 1/k): k + 1
        roundings; the operator has entries ≥ 0, so ‖|A|‖ = ‖A‖ = L."""
        return Rounding(self.count(ctx) + 1, gain=lipschitz)


def copy_count_norm(op: Any, ctx: BoundContext) -> float:
    """sqrt(largest number of outputs that copy one input entry): the exact norm of a map
    each of whose outputs copies at most one input entry or is a constant (AᵀA is diagonal)."""
    x = torch.zeros(1, *ctx.input_shape, dtype=torch.float64)
    out, vjp = torch.func.vjp(lambda v: ctx.apply(op, v), x)
    (counts,) = vjp(torch.ones_like(out))
    return with_margin(math.sqrt(float(counts.max()))) if counts.numel() else 0.0


_PAD_MODULES = [
    padding._ConstantPadNd, padding._ReflectionPadNd, padding._ReplicationPadNd, padding._CircularPadNd,
]


@register_bound(F.pad, *_PAD_MODULES)
class PadBound(ShapeBound):
    """Padding in any mode: sqrt(largest copy count), exact (reflect/replicate/circular padding
    copy border entries; constant padding adds constants, an isometry up to a shift)."""

    def value(self, op: Any, ctx: BoundContext) -> tuple[float, str]:
        return copy_count_norm(op, ctx), "exact(sqrt(largest copy count))"

    def fill(self, op: Any, ctx: BoundContext) -> float:
        """The constant written into the padding (0 for the copying modes)."""
        if isinstance(op, nn.Module):
            return float(getattr(op, "value", 0.0))
        if ctx.argument(2, "mode", "constant") != "constant":
            return 0.0
        return float(ctx.argument(3, "value", None) or 0.0)

    def rounding(self, op: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """Copies are exact; a fill value may be rounded to the evaluation dtype (one rounding
        of at most |value| on each of the output's entries)."""
        fill = self.fill(op, ctx)
        if fill == 0:
            return EXACT
        with torch.no_grad():
            numel = ctx.apply(op, torch.zeros(1, *ctx.input_shape, dtype=torch.float64)).numel()
        return Rounding(1, 0.0, abs(fill) * math.sqrt(numel))
