"""BatchNorm bounds: standalone (max_c |z_c|) and fused with the convolution before it.

Eval-mode BatchNorm is the affine map x ↦ z ⊙ x + b per channel, z = γ/sqrt(running_var + eps),
so its Lipschitz constant is max_c |z_c| (exact). A Conv2d whose only user is a BatchNorm2d is
bounded as the one operator diag(z)·Conv (notes §2.4), which is tighter than the product.

Training mode, as the official code: z uses the current mini-batch variance as a differentiable
tensor (recorded by a forward pre-hook during the training forward pass), so the LMT gradient
reaches γ and, through the batch statistics, the earlier layers. Before any training-mode
forward pass (or in eval mode) the running variance is used. A standalone BatchNorm's training
bound is the exact max_c |z_c| (the official code took a noisy power step on the diagonal).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping
from weakref import WeakKeyDictionary, WeakSet

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lmt.bounds.conv import Conv2dBound, conv_rounding
from lmt.bounds.numerics import with_margin
from lmt.bounds.registry import (
    BoundContext, LayerBound, LayerCertificate, Rounding, UnboundedOperationError, register_bound, register_fusion,
)

_BATCH_VAR: WeakKeyDictionary[_BatchNorm, torch.Tensor] = WeakKeyDictionary()
_HOOKED: WeakSet[_BatchNorm] = WeakSet()


def _record_batch_var(module: _BatchNorm, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: keep the (differentiable) biased batch variance of a training pass."""
    if module.training:
        x = args[0]
        dims = [0, *range(2, x.dim())]
        _BATCH_VAR[module] = x.var(dim=dims, unbiased=False)


def record_batch_statistics(module: _BatchNorm) -> None:
    """Attach the batch-variance hook once per module."""
    if module not in _HOOKED:
        module.register_forward_pre_hook(_record_batch_var)
        _HOOKED.add(module)


def recorded_batch_variances(modules: Iterable[_BatchNorm]) -> dict[_BatchNorm, torch.Tensor]:
    """The batch variances that training bounds of ``modules`` read now: those recorded by the
    last training-mode forward pass, for the modules in training mode."""
    return {m: _BATCH_VAR[m] for m in modules if m.training and m in _BATCH_VAR}


@contextmanager
def batch_variances_as(variances: Mapping[_BatchNorm, torch.Tensor]) -> Iterator[None]:
    """Inside the block, training bounds read ``variances`` instead of the recorded ones (a
    CUDA graph's static inputs); the recorded ones are back afterwards."""
    saved = {m: _BATCH_VAR.get(m) for m in variances}
    _BATCH_VAR.update(variances)
    try:
        yield
    finally:
        for module, variance in saved.items():
            if variance is None:
                _BATCH_VAR.pop(module, None)
            else:
                _BATCH_VAR[module] = variance


def bn_scale(module: _BatchNorm, ctx: BoundContext) -> torch.Tensor:
    """z = γ / sqrt(var + eps): training-pass batch variance in train mode if recorded (or
    given in ``ctx.batch_variances``), otherwise (and always at certification, in float64) the
    running variance."""
    var = None
    if ctx.mode == "train" and module.training:
        record = _BATCH_VAR if ctx.batch_variances is None else ctx.batch_variances
        var = record.get(module)
    if var is None:
        if module.running_var is None:
            raise UnboundedOperationError(
                f"{type(module).__name__} {ctx.name!r} has no running statistics "
                "(track_running_stats=False): in eval mode it normalises with batch statistics, "
                "which is not a fixed affine map, so it has no Lipschitz bound here"
            )
        var = module.running_var
    if ctx.mode == "certify":
        var = var.detach().double()
    scale = torch.rsqrt(var + module.eps)
    if module.weight is not None:
        gamma = module.weight.double() if ctx.mode == "certify" else module.weight
        scale = gamma * scale
    return scale.detach() if ctx.mode == "certify" else scale


# Eval-mode BatchNorm in float32 computes α̂ = fl(γ/sqrt(var + eps)) and β̂ = fl(β − μ·α̂), then
# fl(x·α̂ + β̂): at most 7 roundings relative to |α|·|x| + |μ·α| + |β| per entry; we allow 8.
BATCHNORM_TERMS = 8


def batchnorm_rounding(module: _BatchNorm, ctx: BoundContext, spatial: int) -> Rounding:
    """The rounding model of an eval-mode BatchNorm on inputs with ``spatial`` entries per
    channel: gain max|α|, offset ‖|μ·α| + |β|‖₂ over the whole output."""
    scale = bn_scale(module, ctx).abs().cpu()
    shift = (module.running_mean.detach().double().cpu().abs() * scale
             if module.running_mean is not None else torch.zeros_like(scale))
    if module.bias is not None:
        shift = shift + module.bias.detach().double().cpu().abs()
    return Rounding(BATCHNORM_TERMS, float(scale.max()), float(shift.norm()) * spatial**0.5)


@register_bound(_BatchNorm)
class BatchNormBound(LayerBound):
    """max_c |γ_c| / sqrt(var_c + eps), exact for the eval-mode layer."""

    def prepare(self, module: _BatchNorm) -> None:
        record_batch_statistics(module)

    def train(self, module: _BatchNorm, ctx: BoundContext) -> torch.Tensor:
        return bn_scale(module, ctx).abs().max()

    def certify(self, module: _BatchNorm, ctx: BoundContext) -> LayerCertificate:
        value = with_margin(float(bn_scale(module, ctx).abs().max()))
        return LayerCertificate(value, "exact(max |gamma|/sqrt(running_var+eps))")

    def rounding(self, module: _BatchNorm, ctx: BoundContext, lipschitz: float) -> Rounding:
        shape = ctx.input_shape
        return batchnorm_rounding(module, ctx, math.prod(shape[1:]) if len(shape) > 1 else 1)


@register_fusion(nn.Conv2d, nn.BatchNorm2d)
class ConvBatchNormBound(Conv2dBound):
    """diag(z)·Conv as one operator: the convolution with its kernel scaled per output channel.
    The target is the pair (conv, bn)."""

    def prepare(self, module: tuple[nn.Conv2d, nn.BatchNorm2d]) -> None:
        record_batch_statistics(module[1])

    def conv(self, module: tuple[nn.Conv2d, nn.BatchNorm2d]) -> nn.Conv2d:
        return module[0]

    def parameters(self, module: tuple[nn.Conv2d, nn.BatchNorm2d]) -> list[torch.Tensor]:
        return [module[0].weight]

    def rounding(self, module: tuple[nn.Conv2d, nn.BatchNorm2d], ctx: BoundContext, lipschitz: float) -> Rounding:
        """The convolution, then BatchNorm, as evaluated (two operations). With c = conv(x̂),
        the convolution's error e_c ≤ γ_c·(g_c·M + o_c) is scaled by at most max|α|, and the
        computed ĉ has ‖ĉ‖ ≤ (1 + γ_c)(g_c·M + o_c) ≤ 2(g_c·M + o_c) (γ_c ≤ 1); BatchNorm then
        adds γ_8·(max|α|·‖ĉ‖ + o_bn). With γ = γ_max(c, 8) both fit in one model with
        gain 3·max|α|·g_c and offset 3·max|α|·o_c + o_bn."""
        conv, bn = module
        first = conv_rounding(conv, ctx.input_shape)
        out = conv(torch.zeros(1, *ctx.input_shape, device=conv.weight.device)).shape
        second = batchnorm_rounding(bn, ctx, math.prod(out[2:]))
        return Rounding(
            max(first.terms, second.terms),
            3 * second.gain * first.gain,
            3 * second.gain * first.offset + second.offset,
        )

    def weight(self, module: tuple[nn.Conv2d, nn.BatchNorm2d], ctx: BoundContext, detach: bool) -> torch.Tensor:
        conv, bn = module
        weight = super().weight(conv, ctx, detach) * bn_scale(bn, ctx).view(-1, 1, 1, 1)
        return weight.detach() if detach else weight
