"""Parseval networks (Cisse et al. 2017; §6.2 baseline, β = 1e-4).

* After every optimizer step, the retraction W ← (1 + β)·W − β·W Wᵀ W on every conv kernel (as a
  (C_out, C_in·kh·kw) matrix) and every fully connected layer but the last.
* Every convolution's output is scaled by 1/√(kh·kw).
* Residual sums become convex combinations α₀·h + α₁·shortcut, α projected onto the simplex
  after every step.
* Weight decay only on the last fully connected layer.

The scaling and the residual weights are modules with registered Lipschitz bounds (|factor|),
so certificates of Parseval networks stay sound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmt.bounds import BoundContext, register_bound
from lmt.methods import Method, StepContext, cross_entropy_loss, register_method
from lmt.params import CheckedParams, param


class Scale(nn.Module):
    """Multiplication by a fixed factor."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


class ConvexWeight(nn.Module):
    """Multiplication by a learned weight α ≥ 0 (one term of a convex combination)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha


@register_bound(Scale, rounding=1)  # one multiplication
def scale_bound(module: Scale, ctx: BoundContext) -> float:
    return abs(module.factor)


@register_bound(ConvexWeight, rounding=1)
def convex_weight_bound(module: ConvexWeight, ctx: BoundContext) -> torch.Tensor:
    return module.alpha.abs()


def project_to_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto {a ≥ 0, Σ a = 1} (Duchi et al. 2008)."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - 1
    k = torch.arange(1, len(v) + 1, device=v.device, dtype=v.dtype)
    rho = int(torch.nonzero(u - css / k > 0).max())
    return torch.clamp(v - css[rho] / (rho + 1), min=0)


def _scale_convolutions(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            kh, kw = child.kernel_size
            setattr(module, name, nn.Sequential(child, Scale(1 / math.sqrt(kh * kw))))
        else:
            _scale_convolutions(child)


def _last_linear(model: nn.Module) -> nn.Linear | None:
    return next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), None)


@register_method("parseval")
class Parseval(Method):
    """Cisse et al. 2017: retraction W ← (1+β)W − βWWᵀW, conv outputs ×1/√(kh·kw), convex
    residual sums, weight decay on the last layer only."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        beta: float = param(1e-4, "Retraction step β (the retraction converges to σ = 1 only for β < 1).", ge=0, lt=1)
        weight_decay: float = param(5e-4, "Weight decay on the last fully connected layer only.", ge=0)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        _scale_convolutions(model)
        for block in model.modules():
            if hasattr(block, "mix_residual") and hasattr(block, "mix_shortcut"):
                block.mix_residual = ConvexWeight(0.5)
                block.mix_shortcut = ConvexWeight(0.5)
        return model

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        last = _last_linear(model)
        last_ids = {id(p) for p in last.parameters()} if last is not None else set()
        rest = [p for p in model.parameters() if id(p) not in last_ids]
        groups = [{"params": rest, "weight_decay": 0.0}]
        if last is not None:
            groups.append({"params": list(last.parameters()), "weight_decay": self.params.weight_decay})
        return groups

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cross_entropy_loss(ctx, x, y)

    @torch.no_grad()
    def after_step(self, ctx: StepContext) -> None:
        beta = self.params.beta
        last = _last_linear(ctx.model)
        for module in ctx.model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module is not last:
                w = module.weight.view(module.weight.shape[0], -1)
                w.copy_((1 + beta) * w - beta * (w @ w.T @ w))
        for block in ctx.model.modules():
            if isinstance(getattr(block, "mix_residual", None), ConvexWeight):
                pair = torch.stack([block.mix_residual.alpha, block.mix_shortcut.alpha])
                projected = project_to_simplex(pair)
                block.mix_residual.alpha.copy_(projected[0])
                block.mix_shortcut.alpha.copy_(projected[1])
