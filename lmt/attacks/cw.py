"""Carlini–Wagner L2 at the paper's budget (notes §4.1, §7)."""

from __future__ import annotations

from dataclasses import dataclass

from lmt.attacks.base import FoolboxMinimization
from lmt.attacks.foolbox_import import fb
from lmt.attacks.registry import ATTACKS
from lmt.params import param


@ATTACKS.register("cw")
@dataclass(frozen=True)
class CW(FoolboxMinimization):
    """Carlini–Wagner L2 (Foolbox L2CarliniWagnerAttack). Defaults: the paper's budget.

    Also the attack of C&W adversarial training (``cw_adv``), at that method's budget.
    """

    foolbox_class = fb.attacks.L2CarliniWagnerAttack

    steps: int = param(100, "Adam steps per binary-search step (paper 100).", ge=1)
    stepsize: float = param(1e-2, "Adam learning rate (paper 1e-2).", gt=0)
    binary_search_steps: int = param(9, "Binary-search steps on the constant (paper 9).", ge=1)
    initial_const: float = param(1e-3, "Initial trade-off constant (paper 1e-3).", gt=0)
    confidence: float = param(0.0, "Confidence κ (paper 0).", ge=0)
    abort_early: bool = param(True, "Stop a binary-search step when the loss stalls (Foolbox).")
