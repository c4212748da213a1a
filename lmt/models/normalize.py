"""Input normalisation inside a model, with its Lipschitz bound registered next to it.

Models that normalise their [0, 1] inputs per channel, (x − mean)/std, keep the certified radius
in pixel units when the normalisation is part of the model: the layer is diag(1/std) up to a
shift, so its Lipschitz constant is exactly 1/min |std| (notes §7).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from lmt.bounds import BoundContext, Rounding, register_bound
from lmt.bounds.numerics import with_margin


class Normalize(nn.Module):
    """(x − mean) / std per channel (dimension 1)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s == 0 for s in std):
            raise ValueError("mean and std need one entry per channel, std non-zero")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


def normalize_rounding(module: Normalize, ctx: BoundContext, lipschitz: float) -> Rounding:
    """fl(fl(x − m)/s): two roundings relative to (|x| + |m|)/|s|."""
    spatial = math.prod(ctx.input_shape[1:])
    shift = (module.mean.double().abs() / module.std.double().abs()).norm()
    return Rounding(2, lipschitz, float(shift) * math.sqrt(spatial))


@register_bound(Normalize, rounding=normalize_rounding)
def normalize_bound(module: Normalize, ctx: BoundContext) -> Tensor:
    """1 / min |std| (exact: the layer is diagonal up to a shift)."""
    std = module.std.double() if ctx.mode == "certify" else module.std
    value = 1.0 / std.abs().min()
    return value if ctx.mode == "train" else with_margin(float(value))  # a rounded division
