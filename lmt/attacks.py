"""Attack upper bounds on the minimal L2 perturbation, behind our own interface, with Foolbox.

:func:`minimal_l2` returns, per example, the L2 distance of the closest adversarial example an
attack found, re-checked by our own forward pass: +inf where the attack failed (Foolbox returns
an all-zeros image there), 0 where the input is already misclassified.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters (foolbox issue #702)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    warnings.filterwarnings("ignore", message=".*scipy.ndimage.filters.*", category=DeprecationWarning)
    import foolbox as fb


@dataclass(frozen=True)
class CWBudget:
    """Carlini–Wagner L2; the defaults are the paper's budget (notes §4.1, §7)."""

    steps: int = 100
    stepsize: float = 1e-2
    binary_search_steps: int = 9
    initial_const: float = 1e-3
    confidence: float = 0.0

    def attack(self) -> Any:
        return fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=self.binary_search_steps,
            steps=self.steps,
            stepsize=self.stepsize,
            confidence=self.confidence,
            initial_const=self.initial_const,
            abort_early=True,
        )


ATTACKS = {"cw": CWBudget}


@dataclass
class AttackResult:
    distance: torch.Tensor  # (N,) float64: +inf where no adversarial example was found
    success: torch.Tensor  # (N,) bool
    budget: dict[str, Any]


def minimal_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: CWBudget,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> AttackResult:
    """Smallest L2 adversarial distance found per example, inputs in [0, 1].

    Runs on ``device`` (default: where the model is); results are returned on the CPU.
    """
    if device is None:
        device = next(model.parameters()).device
    model = model.eval().to(device)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    attack = budget.attack()
    distances, successes = [], []
    for start in tqdm(range(0, len(y), batch_size), desc="C&W", disable=not progress, mininterval=2.0):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        _, adv, _ = attack(fmodel, xb, yb, epsilons=None)
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
    return AttackResult(torch.cat(distances), torch.cat(successes), asdict(budget))
