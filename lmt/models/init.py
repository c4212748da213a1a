"""Weight initialisation of the official Chainer code: HeNormal convs, LeCunNormal FCs, zero biases."""

from __future__ import annotations

import math

from torch import nn


def chainer_init_(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            gain = 2.0 if isinstance(module, nn.Conv2d) else 1.0
            nn.init.normal_(module.weight, std=math.sqrt(gain / fan_in))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
