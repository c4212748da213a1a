"""Attack upper bounds on the minimal L2 perturbation, behind our own interface, with Foolbox.

One module per attack, each a small frozen dataclass registered with ``@ATTACKS.register(name)``
(Foolbox's "small base class + registry" style); :mod:`lmt.attacks.base` holds the interface,
the shared Foolbox wrapper and :func:`minimal_l2`, which re-checks every adversarial example
with our own forward pass. Every module of this package is imported here, so a new attack is
one new file. Registered: ``cw`` (C&W-L2, the paper's budget by default), ``pgd`` (L2 PGD with
a per-example bisection over epsilon), ``deepfool`` (L2, the official code's config), ``ddn``,
``fmn``.
"""

from __future__ import annotations

import importlib
import pkgutil

from lmt.attacks.base import Attack, AttackResult, FoolboxMinimization, minimal_l2
from lmt.attacks.registry import ATTACKS, create_attack, list_attacks

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ATTACKS", "Attack", "AttackResult", "FoolboxMinimization", "create_attack", "list_attacks", "minimal_l2"]
