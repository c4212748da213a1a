"""GloRo (Leino et al. 2021), beyond the paper: cross-entropy over the logits plus a ⊥ logit.

With j the predicted class and K_ji = L_G·‖w_j − w_i‖ the pairwise Lipschitz bounds of the
training-mode bound, ⊥ = max_{i≠j} (z_i + ε·K_ji); the true label is never ⊥, so the loss
pushes every training point to be certified at radius ε. The pairwise bound is the same as
LMT's Prop. 2 margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmt.losses import prop2_margin
from lmt.methods import Method, StepContext, register_method
from lmt.params import CheckedParams, param


@register_method("gloro")
class GloRo(Method):
    """Leino et al. 2021: cross-entropy with the ⊥ logit from pairwise Lipschitz bounds (beyond
    the paper)."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        eps: float = param(0.3, "Radius ε at which every training point is pushed to be certified.", ge=0)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = ctx.model(x)
        bound = ctx.bound.training_bound()
        if bound.body is None:
            raise ValueError("gloro needs a network that ends in a linear layer")
        predicted = logits.argmax(1)
        shifted = logits + prop2_margin(predicted, self.params.eps, bound.body, bound.head_weight)
        bottom = shifted.scatter(1, predicted[:, None], float("-inf")).max(dim=1, keepdim=True).values
        return F.cross_entropy(torch.cat([logits, bottom], dim=1), y), logits
