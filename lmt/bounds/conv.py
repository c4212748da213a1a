"""Bounds of ``nn.Conv2d`` (any stride, padding, padding mode, dilation and groups).

Training: one persistent power-iteration step on the actual convolution (explicit adjoint).
Certification (``CertifySettings.conv_method``):

* ``"fft"`` (default, guaranteed): for layers whose input or output has at most
  ``CertifySettings.explicit_max_dim`` entries (the MNIST networks), the exact norm from the
  eigenvalues of the explicit Gram matrix; otherwise the smallest of three deterministic upper bounds — the
  circular-spectrum bound (:mod:`lmt.bounds.conv_spectrum`), Cor. 1 (√n·‖W′‖₂) and the
  Frobenius norm of the full operator. The minimum of guaranteed bounds is guaranteed.
* ``"power_iteration"``: the official code's float64 power iteration with the Thm 2 error
  term (an upper bound with high probability only, so never mixed with the above).

:func:`comparison_bounds` gives the Fig. 3 bounds of a kernel (also used by Conv+BN).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds.conv_spectrum import ROUNDING_MARGIN, circular_spectrum_bound, largest_singular_values
from lmt.bounds.linear_operator import LinearOperatorBound
from lmt.bounds.numerics import with_margin
from lmt.bounds.power_iteration import LinearMap, autograd_adjoint, gram_apply
from lmt.bounds.registry import BoundContext, LayerCertificate, Rounding, register_bound
from lmt.bounds.rounding import nonnegative_operator_bound
from lmt.bounds.windows import Axis, conv_axes


def conv_map(module: nn.Conv2d, weight: torch.Tensor) -> LinearMap:
    """The bias-free convolution of ``module`` (its padding mode included) with ``weight``."""
    return lambda x: module._conv_forward(x, weight, None)


def kernel_matrix_norm(weight: torch.Tensor, groups: int, ord: str | int) -> float:
    """Norm of W′ (the kernel reshaped to C_out × C_in·kh·kw) as the per-window map: block-
    diagonal over groups, so the spectral norm is the largest over groups."""
    w = weight.detach().double().reshape(groups, weight.shape[0] // groups, -1)
    if ord == "fro":
        return float(w.norm())
    return float(largest_singular_values(w).max())


def operator_frobenius(weight: torch.Tensor, axes: tuple[Axis, Axis]) -> float:
    """‖A‖_F of the full convolution operator, exactly, for every padding mode."""
    w = weight.detach().double()
    s_h = torch.as_tensor(axes[0].tap_gram, dtype=torch.float64, device=w.device)
    s_w = torch.as_tensor(axes[1].tap_gram, dtype=torch.float64, device=w.device)
    return math.sqrt(max(float(torch.einsum("ocab,ae,ocef,bf->", w, s_h, w, s_w)), 0.0))


def comparison_bounds(weight: torch.Tensor, axes: tuple[Axis, Axis], groups: int) -> dict[str, float]:
    """Cor. 1, Cisse et al. (Parseval), Peck et al. (as implemented here) and Frobenius bounds
    of the convolution with ``weight`` (notes §2.3). n = the largest number of (window, tap)
    pairs that read one input pixel, counted exactly for the layer's padding and dilation."""
    n = axes[0].overlap * axes[1].overlap
    spectral = kernel_matrix_norm(weight, groups, 2)
    kh, kw = weight.shape[2:]
    return {
        "cor1": math.sqrt(n) * spectral,
        "cisse": math.sqrt(kh * kw) * spectral,
        # Frobenius-type Cor. 1: √n·‖W′‖_F (the official helper sums the squared kernel).
        "peck": math.sqrt(n) * kernel_matrix_norm(weight, groups, "fro"),
        "frobenius": operator_frobenius(weight, axes),
    }


def explicit_operator_norm(
    linear_map: LinearMap, input_shape: tuple[int, ...], device: torch.device,
    max_dim: int = 4096, chunk: int = 256,
) -> float | None:
    """σ_max of a float64 linear map from its explicit Gram matrix AᵀA or AAᵀ (the smaller
    one, at most max_dim² entries), built with the map and its autograd adjoint; None if both
    sides have more than ``max_dim`` entries."""
    probe = torch.zeros(1, *input_shape, dtype=torch.float64, device=device)
    output_shape = tuple(linear_map(probe).shape[1:])
    d_in, d_out = math.prod(input_shape), math.prod(output_shape)
    if min(d_in, d_out) > max_dim:
        return None
    columns = []
    with torch.no_grad():
        if d_in <= d_out:
            for start in range(0, d_in, chunk):
                basis = torch.eye(d_in, dtype=torch.float64, device=device)[start : start + chunk]
                columns.append(gram_apply(linear_map, basis.view(-1, *input_shape)).flatten(1))
        else:
            for start in range(0, d_out, chunk):
                basis = torch.eye(d_out, dtype=torch.float64, device=device)[start : start + chunk]
                zeros = torch.zeros(len(basis), *input_shape, dtype=torch.float64, device=device)
                _, adjoint = torch.func.vjp(linear_map, zeros)
                columns.append(linear_map(adjoint(basis.view(-1, *output_shape))[0]).flatten(1))
    gram = torch.cat(columns)
    gram = (gram + gram.T) / 2
    return math.sqrt(max(float(torch.linalg.eigvalsh(gram)[-1]), 0.0)) * (1 + ROUNDING_MARGIN)


def conv_rounding(conv: nn.Conv2d, input_shape: tuple[int, ...]) -> Rounding:
    """The rounding model of one convolution with its bias (see :class:`Rounding`)."""
    weight = conv.weight.detach().double().cpu()
    cpu_conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, bias=False, padding_mode=conv.padding_mode)
    gain = nonnegative_operator_bound(conv_map(cpu_conv, weight.abs()), input_shape)
    terms = math.prod(weight.shape[1:]) + (conv.bias is not None)
    offset = 0.0
    if conv.bias is not None:
        out = conv_map(cpu_conv, weight)(torch.zeros(1, *input_shape, dtype=torch.float64)).shape
        offset = float(conv.bias.detach().double().norm()) * math.sqrt(math.prod(out[2:]))
    return Rounding(terms, gain, offset)


def deterministic_bound(weight: torch.Tensor, axes: tuple[Axis, Axis], groups: int) -> LayerCertificate:
    """The smallest of the guaranteed bounds: circular spectrum, Cor. 1, operator Frobenius."""
    spectral = circular_spectrum_bound(weight, axes, groups)
    others = comparison_bounds(weight, axes, groups)
    candidates = [
        (spectral.value, spectral.description),
        (with_margin(others["cor1"]), "cor1(sqrt(n)*||W'||_2; deterministic)"),
        (with_margin(others["frobenius"]), "frobenius(||A||_F of the full operator; deterministic)"),
    ]
    value, method = min(candidates, key=lambda c: c[0])
    return LayerCertificate(value, method)


# Largest unfolded input (C_in·kh·kw × output pixels, batch 1) for which the training step
# uses im2col. Measured on the CPU (2 cores, torch 2.x; benchmarks in the commit message): at
# batch size 1 a convolution call and its backward cost ~100-300 µs of fixed overhead, so
# unfold + matrix products are 2-3x faster for the small and the strided layers (W&K, LeNet, the
# WRN shortcuts and strided convs), while for large stride-1 layers (WRN 3x3 at 32x32 with 64
# channels, 590k entries) the unfold/fold copies make im2col up to 2x slower than the conv.
IM2COL_MAX_ENTRIES = 1 << 17


def output_spatial(conv: nn.Conv2d, spatial: tuple[int, ...]) -> tuple[int, int]:
    """(H_out, W_out) of a zero-padded convolution on an input of spatial size ``spatial``."""
    h, w = (
        (size + 2 * pad - dil * (k - 1) - 1) // st + 1
        for size, pad, dil, k, st in zip(
            spatial, conv.padding, conv.dilation, conv.kernel_size, conv.stride
        )
    )
    return h, w


def unfolded_entries(conv: nn.Conv2d, spatial: tuple[int, ...]) -> int:
    """Entries of the unfolded input of one example: C_in·kh·kw × output pixels."""
    return conv.in_channels * math.prod(conv.kernel_size) * math.prod(output_spatial(conv, spatial))


def im2col_maps(
    conv: nn.Conv2d, weight: torch.Tensor, spatial: tuple[int, int]
) -> tuple[LinearMap, LinearMap]:
    """A zero-padded, single-group convolution as matrix products with its unfolded input:
    A x = W′ · unfold(x) (differentiable in ``weight``; the unfolded input carries no gradient
    in the power iteration) and the exact adjoint Aᵀ y = fold(W′ᵀ · y) for the layer's stride,
    padding and dilation. ``fold`` is told the input size, so pixels that no window reads (the
    last row and column of a strided layer on an even input) get zero, as in the operator."""
    matrix = weight.reshape(weight.shape[0], -1)
    detached = matrix.detach()
    geometry = {"kernel_size": conv.kernel_size, "dilation": conv.dilation,
                "padding": conv.padding, "stride": conv.stride}
    out_shape = (matrix.shape[0], *output_spatial(conv, spatial))

    # Batch size 1 (the training step) as unbatched 2-D products: mm, not an expanded bmm.
    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return (matrix @ F.unfold(x[0], **geometry)).view(1, *out_shape)
        return torch.matmul(matrix, F.unfold(x, **geometry)).view(x.shape[0], *out_shape)

    def adjoint(y: torch.Tensor) -> torch.Tensor:
        if y.shape[0] == 1:
            return F.fold(detached.T @ y[0].flatten(1), spatial, **geometry)[None]
        return F.fold(torch.matmul(detached.T, y.flatten(2)), spatial, **geometry)

    return forward, adjoint


@register_bound(nn.Conv2d)
class Conv2dBound(LinearOperatorBound):
    """Operator norm of the actual convolution (stride, padding and its mode, dilation, groups)."""

    def weight(self, module: nn.Conv2d, ctx: BoundContext, detach: bool) -> torch.Tensor:
        weight = module.weight.detach() if detach else module.weight
        return weight.double() if ctx.mode == "certify" else weight

    def conv(self, module: Any) -> nn.Conv2d:
        return module

    def linear_map(self, module: nn.Conv2d, ctx: BoundContext, detach: bool) -> LinearMap:
        return conv_map(self.conv(module), self.weight(module, ctx, detach))

    def training_maps(self, module: Any, ctx: BoundContext) -> tuple[LinearMap, LinearMap]:
        """The convolution with its (differentiable) kernel, and its exact adjoint. Zero
        padding, one group and an unfolded input of at most ``IM2COL_MAX_ENTRIES`` entries: the
        im2col maps (:func:`im2col_maps`); other zero-padded layers: the convolution and its
        input gradient (``conv2d_input``, which knows the input size, so no row or column is
        lost for strided layers); other padding modes: the convolution and autograd's adjoint."""
        conv = self.conv(module)
        weight = self.weight(module, ctx, detach=False)
        u = ctx.state["u"]
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            return conv_map(conv, weight), autograd_adjoint(conv_map(conv, weight.detach()), u)
        spatial = tuple(u.shape[2:])
        if conv.groups == 1 and unfolded_entries(conv, spatial) <= IM2COL_MAX_ENTRIES:
            return im2col_maps(conv, weight, spatial)
        input_size = tuple(u.shape)
        detached = weight.detach()

        def adjoint(y: torch.Tensor) -> torch.Tensor:
            return torch.nn.grad.conv2d_input(
                input_size, detached, y, conv.stride, conv.padding, conv.dilation, conv.groups
            )

        return conv_map(conv, weight), adjoint

    def parameters(self, module: Any) -> list[torch.Tensor]:
        return [self.conv(module).weight]

    def certify_adjoint(self, module: Any, ctx: BoundContext) -> LinearMap | None:
        """Zero padding: the convolution's input gradient (``conv2d_input``, told the input
        size, so exact for strided layers), the same kernel autograd's vector–Jacobian product
        calls, without re-running the convolution; other padding modes: autograd's."""
        conv = self.conv(module)
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            return None
        weight = self.weight(module, ctx, detach=True)
        input_size = (ctx.settings.n_starts, *ctx.input_shape)
        return lambda y: torch.nn.grad.conv2d_input(
            input_size, weight, y, conv.stride, conv.padding, conv.dilation, conv.groups
        )

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        if ctx.settings.conv_method == "power_iteration":
            return super().certify(module, ctx)
        conv = self.conv(module)
        weight = self.weight(module, ctx, detach=True)
        exact = explicit_operator_norm(
            conv_map(conv, weight), ctx.input_shape, weight.device, ctx.settings.explicit_max_dim
        )
        if exact is not None:
            return LayerCertificate(exact, "exact(eigvalsh of the explicit Gram matrix; deterministic)")
        return deterministic_bound(weight, conv_axes(conv, ctx.input_shape), conv.groups)

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """fl(conv(x) + b): per output a dot product of C_in/groups·kh·kw terms plus the bias;
        ‖|A|‖₂ by the Schur test on the convolution with |W| (padding mode included)."""
        return conv_rounding(self.conv(module), ctx.input_shape)

    def compare(self, module: Any, ctx: BoundContext) -> dict[str, float]:
        conv = self.conv(module)
        weight = self.weight(module, ctx, detach=True)
        bounds = comparison_bounds(weight, conv_axes(conv, ctx.input_shape), conv.groups)
        power = self.power_iteration(module, ctx)
        return {"thm1_2": power.upper, "estimate": power.lower, **bounds}
