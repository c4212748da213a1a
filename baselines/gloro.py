"""GloRo (Leino et al. 2021), beyond the paper: cross-entropy over the logits plus a ⊥ logit.

With j the predicted class and K_ji = L_G·‖w_j − w_i‖ the pairwise Lipschitz bounds of the
training-mode bound (K_ji = √2·L_F for a network without a linear head, e.g. the 1-Lipschitz
networks), ⊥ = max_{i≠j} (z_i + ε·K_ji); the true label is never ⊥, so the loss
pushes every training point to be certified at radius ε. The pairwise bound is the same as
LMT's Prop. 2 margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmt.losses import prop2_margin
from lmt.methods import Method, StepContext, check_warmup, register_method, warmed_up
from lmt.params import CheckedParams, param


@register_method("gloro")
class GloRo(Method):
    """Leino et al. 2021: cross-entropy with the ⊥ logit from pairwise Lipschitz bounds (beyond
    the paper)."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        eps: float = param(0.3, "Radius ε at which every training point is pushed to be certified.", ge=0)
        eps_start: float | None = param(
            None, "The ε a linear per-iteration warm-up starts from (GloRo's own code ramps ε); null for none.", ge=0,
        )
        warmup_epochs: float = param(0.0, "Epochs over which ε rises from eps_start to eps.", ge=0)

        def __post_init__(self) -> None:
            super().__post_init__()
            check_warmup("eps", self.eps, "eps_start", self.eps_start, self.warmup_epochs)

    def eps_at(self, epoch: float) -> float:
        """ε after ``epoch`` (fractional) epochs of training."""
        return warmed_up(self.params.eps, self.params.eps_start, self.params.warmup_epochs, epoch)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = ctx.model(x)
        bound = ctx.bound.training_bound(need_total=False)  # computed anyway without a linear head
        predicted = logits.argmax(1)
        eps = self.eps_at(ctx.epoch)
        if bound.body is None:  # no linear head (1-Lipschitz networks): K_ji = √2·L_F (Prop. 1)
            shift = math.sqrt(2) * eps * bound.total
            margin = shift * (1 - F.one_hot(predicted, logits.shape[1]).to(logits.dtype))
        else:
            margin = prop2_margin(predicted, eps, bound.body, bound.head_weight)
        shifted = logits + margin
        bottom = shifted.scatter(1, predicted[:, None], float("-inf")).max(dim=1, keepdim=True).values
        return F.cross_entropy(torch.cat([logits, bottom], dim=1), y), logits

    def log_values(self, ctx: StepContext) -> dict[str, float]:
        return {"eps": self.eps_at(ctx.epoch)}
