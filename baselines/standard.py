"""Standard training: plain softmax cross-entropy (the paper's unregularised model)."""

from __future__ import annotations

import torch

from lmt.methods import Method, StepContext, cross_entropy_loss, register_method


@register_method("standard")
class Standard(Method):
    """Cross-entropy."""

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cross_entropy_loss(ctx, x, y)
