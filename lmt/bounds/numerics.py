"""Float64 results made safe for certificates: never below the exact value they stand for.

A certified bound is computed in float64, rounded to nearest, and can land a few ulps below
the real number it stands for (an SVD's σ_max, √3, a sum). Two remedies:

* :func:`with_margin` for a value computed with rounding (numerical linear algebra, square
  roots, reciprocals, sums): a relative ``ROUNDING_MARGIN`` of 1e-9, far above those errors
  (a modest multiple of 1e-16) and far below anything a certificate cares about. Values that
  are exact in floating point (1, 0.25, max |c| of the parameters) need none.
* :func:`product_up` for the products of the graph propagation: the float product, or the next
  float up when rounding went down, so that chains of exact factors stay exact.
"""

from __future__ import annotations

import math
from fractions import Fraction

ROUNDING_MARGIN = 1e-9


def with_margin(value: float) -> float:
    """``value`` inflated by the relative ``ROUNDING_MARGIN`` (for a rounded float64 result)."""
    return value * (1 + ROUNDING_MARGIN)


def product_up(a: float, b: float) -> float:
    """The smallest float ≥ a·b for a, b ≥ 0 (exact rational comparison)."""
    product = a * b
    if math.isfinite(product) and Fraction(product) < Fraction(a) * Fraction(b):
        return math.nextafter(product, math.inf)
    return product
