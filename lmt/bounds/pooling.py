"""Pooling bounds (the paper's Thm 3, notes §2.5), exact window geometry from PyTorch itself.

* Max pooling: each window's max is 1-Lipschitz in the window's pixels, so the layer is
  √n-Lipschitz with n the largest number of windows containing one pixel (Thm 3); this is
  exact (a pixel that is the max of all its windows moves all of them). n is counted by
  enumerating the windows per axis — padding, dilation and ceil mode included — rather than
  with the notes' closed form, which ignores dilation.
* Average pooling (fixed or adaptive windows) is linear with non-negative entries, so by the
  Schur test ‖A‖₂ ≤ sqrt(max row sum · max column sum), both read off A·1 and Aᵀ·1. For
  windows of kh·kw pixels this is at most √n/√(kh·kw) (the paper's bound; equal when some
  window lies inside the input), 1/√(H·W) for global pooling, and it stays sound for
  ``count_include_pad=False``, ``divisor_override``, ceil mode and uneven adaptive windows.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds.numerics import with_margin
from lmt.bounds.registry import EXACT, BoundContext, LayerBound, LayerCertificate, Rounding, register_bound
from lmt.bounds.windows import Axis


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


class ShapeBound(LayerBound):
    """A parameter-free bound that depends on the input shape: same value in both modes."""

    def value(self, op: Any, ctx: BoundContext) -> tuple[float, str]:
        raise NotImplementedError

    def train(self, op: Any, ctx: BoundContext) -> torch.Tensor:
        return torch.tensor(self.value(op, ctx)[0])

    def certify(self, op: Any, ctx: BoundContext) -> LayerCertificate:
        return LayerCertificate(*self.value(op, ctx))


@lru_cache(maxsize=256)
def max_pool_overlap(
    spatial: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...],
    stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...],
) -> int:
    """n of Thm 3: the product over axes of the largest number of windows containing an index."""
    n = 1
    for size, o, k, s, p, d in zip(spatial, out, kernel, stride, padding, dilation):
        n *= Axis(size, k, s, d, p, p, "zeros", out=o).windows_per_index
    return n


class WindowMaxBound(ShapeBound):
    """√n, n the largest number of windows that contain one input entry (Thm 3); exact in
    floating point (each output selects an entry)."""

    def overlap(self, module: Any, spatial: tuple[int, ...], out: tuple[int, ...]) -> int:
        """n for inputs of spatial size ``spatial`` pooled to ``out``."""
        raise NotImplementedError

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        return EXACT

    def value(self, module: Any, ctx: BoundContext) -> tuple[float, str]:
        if module.return_indices:
            raise TypeError("max pooling with return_indices=True is not supported")
        spatial = tuple(ctx.input_shape[1:])
        with torch.no_grad():
            out = tuple(module(torch.zeros(1, 1, *spatial)).shape[2:])
        n = self.overlap(module, spatial, out)
        return with_margin(math.sqrt(n)), f"thm3(sqrt(n), n={n}; exact)"


@register_bound(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
class MaxPoolBound(WindowMaxBound):
    """Fixed windows: n counted per axis (padding, dilation and ceil mode included)."""

    def overlap(self, module: Any, spatial: tuple[int, ...], out: tuple[int, ...]) -> int:
        dims = len(spatial)
        stride = module.stride if module.stride is not None else module.kernel_size
        return max_pool_overlap(
            spatial, out, _tuple(module.kernel_size, dims),
            _tuple(stride, dims), _tuple(module.padding, dims), _tuple(module.dilation, dims),
        )


def _adaptive_windows(size: int, out: int) -> np.ndarray:
    """How many of PyTorch's adaptive windows [⌊i·size/out⌋, ⌈(i+1)·size/out⌉) contain each index."""
    counts = np.zeros(size, dtype=np.int64)
    for i in range(out):
        counts[(i * size) // out : -(-((i + 1) * size) // out)] += 1
    return counts


@register_bound(nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
class AdaptiveMaxPoolBound(WindowMaxBound):
    """Adaptive windows: n from PyTorch's window boundaries."""

    def overlap(self, module: Any, spatial: tuple[int, ...], out: tuple[int, ...]) -> int:
        return math.prod(int(_adaptive_windows(s, o).max()) for s, o in zip(spatial, out))


def schur_bound(op: Callable[[torch.Tensor], torch.Tensor], spatial: tuple[int, ...]) -> float:
    """sqrt(max row sum · max column sum) of a per-channel linear map with entries ≥ 0 (with
    the float64 rounding margin)."""
    ones = torch.ones(1, 1, *spatial, dtype=torch.float64)
    rows, vjp = torch.func.vjp(op, ones)
    (cols,) = vjp(torch.ones_like(rows))
    return with_margin(math.sqrt(float(rows.max()) * float(cols.max())))


_AVERAGE_POOLS = [
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
]


@register_bound(*_AVERAGE_POOLS)
class AveragePoolBound(ShapeBound):
    """Schur test on the pooling matrix (= √n/√(kh·kw) for plain windows, 1/√(H·W) global)."""

    def rounding(self, op: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """A sum of at most k window entries and one division: k + 1 roundings relative to
        A|x| (A ≥ 0, so ‖A|x|‖ ≤ L·‖x‖). k = the kernel's size for fixed windows, else (adaptive
        windows, functions) every entry of a channel."""
        kernel = getattr(op, "kernel_size", None)
        k = math.prod(_tuple(kernel, len(ctx.input_shape) - 1)) if kernel is not None else math.prod(ctx.input_shape[1:])
        return Rounding(k + 1, lipschitz)

    def value(self, op: Any, ctx: BoundContext) -> tuple[float, str]:
        value = schur_bound(lambda x: ctx.apply(op, x), tuple(ctx.input_shape[1:]))
        return value, "schur(sqrt(max row sum * max column sum); = sqrt(n/(kh*kw)) for plain windows)"
