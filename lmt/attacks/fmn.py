"""Fast Minimum Norm L2 (Pintor et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass

from lmt.attacks.base import FoolboxMinimization
from lmt.attacks.foolbox_import import fb
from lmt.attacks.registry import ATTACKS
from lmt.params import param


@ATTACKS.register("fmn")
@dataclass(frozen=True)
class FMN(FoolboxMinimization):
    """Fast Minimum Norm L2 (Foolbox L2FMNAttack).

    Foolbox's ``max_stepsize=1.0`` overshoots badly on [0, 1] images; 0.1 is the default here.
    """

    foolbox_class = fb.attacks.L2FMNAttack

    steps: int = param(100, "Iterations.", ge=1)
    max_stepsize: float = param(0.1, "Initial step size (Foolbox's 1.0 overshoots on [0, 1] images).", gt=0)
    gamma: float = param(0.05, "Initial step of the norm update (epsilon changes by a factor 1 ± gamma).", gt=0, lt=1)
