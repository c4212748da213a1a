"""The attack interface and the one place attacks are run (as Foolbox's ``MinimizationAttack``).

An attack is a frozen dataclass whose fields, declared with :func:`lmt.params.param`, are its
budget. ``perturb`` returns candidate adversarial examples for one batch; :func:`minimal_l2`
runs any attack batch by batch on the model's device and returns, per example, the L2 distance
of the closest adversarial example it found, **re-checked by our own forward pass**: +inf where
the attack failed (C&W returns an all-zeros image there), 0 where the input is already
misclassified. :class:`FoolboxMinimization` is the shared wrapper of an attack that Foolbox runs
in minimisation mode.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from tqdm import tqdm

from lmt.attacks.foolbox_import import fb
from lmt.attacks.registry import registered_name
from lmt.params import CheckedParams

BOUNDS = (0.0, 1.0)  # every attack works in the [0, 1] pixel space the certificates use


@dataclass(frozen=True)
class Attack(CheckedParams, abc.ABC):
    """A minimal-L2 attack and its budget; subclasses are frozen dataclasses registered with
    ``@ATTACKS.register(name)``, their fields declared with :func:`lmt.params.param`."""

    @property
    def name(self) -> str:
        """The registered name: what the budget and the results are recorded as."""
        return registered_name(type(self))

    @abc.abstractmethod
    def perturb(self, fmodel: fb.PyTorchModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Candidate adversarial examples for one batch; :func:`minimal_l2` checks them."""

    def budget(self) -> dict[str, Any]:
        """What produced the numbers: the attack's name and every budget parameter."""
        return {"attack": self.name, **dataclasses.asdict(self)}


class FoolboxMinimization(Attack):
    """An attack that Foolbox runs in minimisation mode (``epsilons=None``): the fields are the
    keyword arguments of ``foolbox_class`` (override :meth:`foolbox_attack` where they are not)."""

    foolbox_class: ClassVar[type[fb.attacks.base.MinimizationAttack]]

    def foolbox_attack(self) -> fb.attacks.base.MinimizationAttack:
        """The Foolbox attack at this budget."""
        return self.foolbox_class(**dataclasses.asdict(self))

    def perturb(self, fmodel: fb.PyTorchModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, adv, _ = self.foolbox_attack()(fmodel, x, y, epsilons=None)
        return adv


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with no parameter requiring a gradient, restored on exit.

    Foolbox (through EagerPy) differentiates with ``loss.backward()``, which otherwise also
    computes and accumulates every weight gradient: on the Wong & Kolter CNN that doubles the
    cost of an attack step. The input gradient, and so every attack's result, is the same."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in trainable:
            p.requires_grad_(True)


@dataclass
class AttackResult:
    distance: torch.Tensor  # (N,) float64: +inf where no adversarial example was found
    success: torch.Tensor  # (N,) bool
    budget: dict[str, Any]


def minimal_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> AttackResult:
    """Smallest L2 adversarial distance ``attack`` finds per example, inputs in [0, 1].

    Runs on ``device`` (default: where the model is); results are returned on the CPU.
    """
    if device is None:
        device = next(model.parameters()).device
    model = model.eval().to(device)
    fmodel = fb.PyTorchModel(model, bounds=BOUNDS, device=device)
    distances, successes = [], []
    for start in tqdm(range(0, len(y), batch_size), desc=attack.name, disable=not progress, mininterval=2.0):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        with frozen_parameters(model):
            adv = attack.perturb(fmodel, xb, yb)
        with torch.no_grad():
            # Trust only what our own forward pass confirms.
            fooled = model(adv).argmax(1) != yb
            dist = (adv - xb).flatten(1).double().norm(dim=1)
            dist = torch.where(fooled, dist, torch.full_like(dist, float("inf")))
            # Already misclassified: distance 0 (Foolbox's tanh round trip returns ~1e-5).
            wrong = model(xb).argmax(1) != yb
            dist = torch.where(wrong, torch.zeros_like(dist), dist)
        distances.append(dist.cpu())
        successes.append((fooled | wrong).cpu())
    return AttackResult(torch.cat(distances), torch.cat(successes), attack.budget())
