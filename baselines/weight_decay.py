"""Weight decay (§6.2 baseline): cross-entropy with L2 decay on every parameter (Chainer's
``WeightDecay`` hook decays all parameters, biases and BatchNorm included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmt.methods import Method, StepContext, cross_entropy_loss, register_method
from lmt.params import CheckedParams, param


@register_method("weight_decay")
class WeightDecay(Method):
    """Cross-entropy, L2 decay on all parameters."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        weight_decay: float = param(5e-4, "L2 decay on every parameter (biases and BatchNorm included).", ge=0)

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        return [{"params": list(model.parameters()), "weight_decay": self.params.weight_decay}]

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cross_entropy_loss(ctx, x, y)
