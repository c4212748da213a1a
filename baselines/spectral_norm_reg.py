"""Spectral norm regularisation (Yoshida & Miyato 2017; §6.2 baseline, λ = 0.01).

Adds λ/2 · Σ_W σ(W)² over the weight tensors (conv kernels as (C_out, C_in·kh·kw) matrices),
σ from one power-iteration step per update with persistent vectors, so the gradient is
λ·σ·u vᵀ as in the paper. Applied to weight tensors only — the official hook also touched
its power-iteration vectors (notes §5.4.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmt.methods import Method, StepContext, cross_entropy_loss, register_method
from lmt.params import CheckedParams, param


def weight_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every conv/linear weight as a matrix (C_out, fan_in), keyed by parameter name."""
    return {
        name: module.weight.flatten(1)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    }


@register_method("spectral_norm_reg")
class SpectralNormRegularization(Method):
    """Yoshida & Miyato 2017: + λ/2·Σσ(W)², one power-iteration step per update."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        lam: float = param(0.01, "λ, the weight of the penalty λ/2·Σσ(W)².", ge=0)

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.vectors: dict[str, torch.Tensor] = {}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """Σ σ(W)² with one power-iteration step per weight (u, v detached)."""
        total = torch.zeros((), device=next(model.parameters()).device)
        for name, w in weight_matrices(model).items():
            v = self.vectors.get(name)
            if v is None or v.shape[0] != w.shape[1]:
                v = torch.randn(w.shape[1], device=w.device)
            with torch.no_grad():
                u = F.normalize(w @ v, dim=0)
                v = F.normalize(w.T @ u, dim=0)
            self.vectors[name] = v
            total = total + (u @ w @ v) ** 2
        return total

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits = cross_entropy_loss(ctx, x, y)
        return loss + self.params.lam / 2 * self.penalty(ctx.model), logits

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.vectors.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.vectors = {k: v.clone() for k, v in state.items()}
