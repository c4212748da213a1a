"""Gaussian data augmentation: the base classifier of randomized smoothing (beyond the paper).

Cohen, Rosenfeld and Kolter (ICML 2019, arXiv:1902.02918, §4 and their ``code/train.py``)
train the base classifier f on x + ε, ε ~ N(0, σ²I), with the σ that smoothing will use, so
that f is accurate under the noise that CERTIFY draws (:mod:`lmt.smoothing`). As in their code
the noisy input is not clipped to the pixel box, and a fresh ε is drawn for every example at
every step. The noise comes from torch's global generator, whose state every checkpoint saves,
so a resumed run draws the same noise. The logged training accuracy is that of the noisy batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmt.methods import Method, StepContext, register_method
from lmt.params import CheckedParams, param


@register_method("gaussian_noise")
class GaussianNoiseTraining(Method):
    """Cross-entropy on Gaussian-noise-augmented inputs (Cohen et al. 2019)."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        sigma: float = param(0.25, "Standard deviation σ of the training noise, in [0, 1] pixel units "
                             "(use certify.smoothing's σ).", gt=0)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = ctx.model(x + self.params.sigma * torch.randn_like(x))
        return F.cross_entropy(logits, y), logits
