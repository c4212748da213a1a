"""Adversarial training baselines: the mini-batch is replaced by attacked examples.

* ``cw_adv`` (§6.1): Carlini–Wagner L2 examples with 30 Adam steps, lr 1e-2, one binary-search
  step, constant 1, κ = 0 (the official ``cw_30_1_1_1`` config). Where C&W finds nothing, the
  clean example is kept (Foolbox returns an all-zeros image there).
* ``pgd_adv`` (beyond the paper): L2 PGD (Madry et al.) at a fixed radius ``eps``.

Examples are generated with the model in eval mode (dropout off, BatchNorm running statistics).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmt.methods import Method, StepContext, cross_entropy_loss, register_method
from lmt.params import check_bounds

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*scipy.ndimage.filters.*", category=DeprecationWarning)
    import foolbox as fb


def attacked(model: nn.Module, attack: Any, x: torch.Tensor, y: torch.Tensor, epsilons: Any) -> torch.Tensor:
    """Adversarial versions of ``x`` (clean where the attack failed), model mode restored."""
    was_training = model.training
    model.eval()
    try:
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
        _, adv, success = attack(fmodel, x, y, epsilons=epsilons)
    finally:
        model.train(was_training)
    keep = success.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(keep, adv, x).detach()


@register_method("cw_adv")
class CWAdversarialTraining(Method):
    @dataclass(frozen=True)
    class Params:
        steps: int = 30
        stepsize: float = 1e-2
        binary_search_steps: int = 1
        initial_const: float = 1.0
        confidence: float = 0.0

        def __post_init__(self) -> None:
            check_bounds(self, "steps", "binary_search_steps", ge=1)
            check_bounds(self, "stepsize", "initial_const", gt=0)
            check_bounds(self, "confidence", ge=0)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        attack = fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=p.binary_search_steps, steps=p.steps, stepsize=p.stepsize,
            confidence=p.confidence, initial_const=p.initial_const, abort_early=True,
        )
        return cross_entropy_loss(ctx, attacked(ctx.model, attack, x, y, None), y)


@register_method("pgd_adv")
class PGDAdversarialTraining(Method):
    @dataclass(frozen=True)
    class Params:
        eps: float = 1.0
        steps: int = 10
        rel_stepsize: float = 0.25

        def __post_init__(self) -> None:
            check_bounds(self, "eps", "rel_stepsize", gt=0)
            check_bounds(self, "steps", ge=1)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        attack = fb.attacks.L2PGD(rel_stepsize=p.rel_stepsize, steps=p.steps, random_start=True)
        return cross_entropy_loss(ctx, attacked(ctx.model, attack, x, y, p.eps), y)
