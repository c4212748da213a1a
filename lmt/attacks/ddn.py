"""Decoupled Direction and Norm (Rony et al. 2019) with Foolbox's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from lmt.attacks.base import FoolboxMinimization
from lmt.attacks.foolbox_import import fb
from lmt.attacks.registry import ATTACKS
from lmt.params import param


@ATTACKS.register("ddn")
@dataclass(frozen=True)
class DDN(FoolboxMinimization):
    """Decoupled Direction and Norm (Foolbox DDNAttack)."""

    foolbox_class = fb.attacks.DDNAttack

    steps: int = param(100, "Iterations.", ge=1)
    init_epsilon: float = param(1.0, "Initial norm of the perturbation.", gt=0)
    gamma: float = param(0.05, "Factor by which the norm changes per step.", gt=0, lt=1)
