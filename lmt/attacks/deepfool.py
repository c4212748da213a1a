"""DeepFool L2 with the official code's config."""

from __future__ import annotations

from dataclasses import dataclass

from lmt.attacks.base import FoolboxMinimization
from lmt.attacks.foolbox_import import fb
from lmt.attacks.registry import ATTACKS
from lmt.params import param


@ATTACKS.register("deepfool")
@dataclass(frozen=True)
class DeepFool(FoolboxMinimization):
    """DeepFool L2 (Foolbox L2DeepFoolAttack). Defaults: the official code's config."""

    foolbox_class = fb.attacks.L2DeepFoolAttack

    steps: int = param(50, "Maximum iterations (official code 50).", ge=1)
    overshoot: float = param(0.02, "Overshoot of the boundary (official code 0.02).", ge=0)
    candidates: int = param(10, "Most likely classes considered.", ge=2)
