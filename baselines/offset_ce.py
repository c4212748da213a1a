"""Offset cross-entropy of the 1-Lipschitz-network literature (beyond the paper).

AOL (Prach & Lampert 2022) and "1-Lipschitz Layers Compared" (Prach et al. 2024) train
1-Lipschitz networks with the cross-entropy of temperature-scaled logits whose true-class
logit is lowered by an offset: loss = T·CE((z − offset·e_y)/T). A logit margin of √2·ε·L (L
the network's Lipschitz bound) certifies radius ε by Prop. 1, so the offset is √2·ε·L with L
the training-mode bound (1 for a network of 1-Lipschitz layers: their training bound is the
promise; the certificate recomputes it from the weights). 1-Lipschitz Layers Compared trains at
twice the radius it reports (ε_train = 2·36/255, a margin of 2√2·36/255).

The defaults were checked against that code (github berndprach/1LipschitzLayersCompared):
``LipCrossEntropyLoss.forward`` computes T·CE((z − margin·e_y)/T), and the CIFAR-10 ConvNet-S/M
runs' ``dumped_setting.yml`` files (for example
``data/runs/CIFAR10/final_training_24h/ConvNetS/AOLConv2d/…/dumped_setting.yml``) set
``margin: 0.3993`` (= √2·2·36/255) and ``temperature: 0.25``: the same loss and values as here.
For MNIST at 1.58 the configs set ``eps`` themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmt.methods import Method, StepContext, register_method
from lmt.params import CheckedParams, param


@register_method("offset_ce")
class OffsetCrossEntropy(Method):
    """AOL / 1-Lipschitz Layers Compared: T·CE((z − √2·ε·L·e_y)/T), L the network's bound
    (beyond the paper)."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        eps: float = param(2 * 36 / 255, "Training radius ε: the true logit is lowered by √2·ε·L "
                           "(default 2·36/255, the doubled radius of 1-Lipschitz Layers Compared).", ge=0)
        temperature: float = param(0.25, "Temperature T of the scaled cross-entropy T·CE(z′/T).", gt=0)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = ctx.model(x)
        lipschitz = ctx.bound.training_bound().total
        offset = math.sqrt(2) * self.params.eps * lipschitz
        shifted = logits - offset * F.one_hot(y, logits.shape[1]).to(logits.dtype)
        t = self.params.temperature
        return t * F.cross_entropy(shifted / t, y), logits
