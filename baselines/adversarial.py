"""Adversarial training baselines: the mini-batch is replaced by attacked examples.

* ``cw_adv`` (§6.1): Carlini–Wagner L2 examples with 30 Adam steps, lr 1e-2, one binary-search
  step, constant 1, κ = 0 (the official ``cw_30_1_1_1`` config). Where C&W finds nothing, the
  clean example is kept (Foolbox returns an all-zeros image there).
* ``pgd_adv`` (beyond the paper): L2 PGD (Madry et al.) at a fixed radius ``eps``.

Examples are generated with the model in eval mode (dropout off, BatchNorm running statistics).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmt.attacks.base import BOUNDS, frozen_parameters
from lmt.attacks.cw import CW
from lmt.attacks.foolbox_import import fb
from lmt.methods import Method, StepContext, cross_entropy_loss, register_method
from lmt.params import CheckedParams, param


def attacked(model: nn.Module, attack: Any, x: torch.Tensor, y: torch.Tensor, epsilons: Any) -> torch.Tensor:
    """Adversarial versions of ``x`` (clean where the attack failed), model mode restored."""
    was_training = model.training
    model.eval()
    try:
        fmodel = fb.PyTorchModel(model, bounds=BOUNDS, device=x.device)
        with frozen_parameters(model):  # only the input gradient: the weights' would be discarded
            _, adv, success = attack(fmodel, x, y, epsilons=epsilons)
    finally:
        model.train(was_training)
    keep = success.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(keep, adv, x).detach()


@register_method("cw_adv")
class CWAdversarialTraining(Method):
    """§6.1's C&W adversarial training (30 steps, 1 binary-search step, constant 1)."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        """The C&W budget (the attack ``cw``'s parameters but ``abort_early``, which is on)."""

        steps: int = param(30, "Adam steps of C&W (official cw_30_1_1_1: 30).", ge=1)
        stepsize: float = param(1e-2, "Adam learning rate of C&W.", gt=0)
        binary_search_steps: int = param(1, "Binary-search steps on the C&W constant.", ge=1)
        initial_const: float = param(1.0, "Initial C&W trade-off constant.", gt=0)
        confidence: float = param(0.0, "C&W confidence κ.", ge=0)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attack = CW(**dataclasses.asdict(self.params)).foolbox_attack()
        return cross_entropy_loss(ctx, attacked(ctx.model, attack, x, y, None), y)


@register_method("pgd_adv")
class PGDAdversarialTraining(Method):
    """L2 PGD adversarial training (beyond the paper)."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        eps: float = param(1.0, "L2 radius of the attack.", gt=0)
        steps: int = param(10, "PGD iterations.", ge=1)
        rel_stepsize: float = param(0.25, "Step size relative to eps.", gt=0)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        attack = fb.attacks.L2PGD(rel_stepsize=p.rel_stepsize, steps=p.steps, random_start=True)
        return cross_entropy_loss(ctx, attacked(ctx.model, attack, x, y, p.eps), y)
