"""How the bounds of several inputs combine (notes §2.1), registered like layer bounds.

* Addition and subtraction (of two branches, or of a branch and a constant): the bounds add,
  Lip(f ± g) ≤ Lip(f) + Lip(g). Floating point rounds the result once per entry.
* Concatenation and stacking: the bounds add in quadrature, sqrt(Σ Lip(fᵢ)²). Exact in floating
  point: the entries are copied.

An input used twice (``x + x``) appears twice in the list of bounds.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from lmt.bounds.registry import Combiner, register_combiner


def total(bounds: list[Any]) -> Any:
    """Σ L, for floats (certification, float64) and tensors (training) alike."""
    return sum(bounds[1:], bounds[0])


def quadrature(bounds: list[Any]) -> Any:
    """sqrt(Σ L²), for floats (certification, float64) and tensors (training) alike."""
    return total([b * b for b in bounds]) ** 0.5


SUM = Combiner("sum", total, exact=False)
QUADRATURE = Combiner("quadrature", quadrature, exact=True)

register_combiner(
    [operator.add, operator.iadd, torch.add, "add", "add_", operator.sub, operator.isub, torch.sub, "sub"], SUM
)
register_combiner([torch.cat, torch.stack], QUADRATURE)
