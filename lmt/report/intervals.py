"""Binomial confidence intervals for accuracies: which differences between methods are more
than the luck of which test examples were drawn.

An accuracy here is a count of successes among n test examples; its exact (Clopper–Pearson)
interval needs no normal approximation, so it stays valid at 0 % and 100 % and for the small
test sets of toy runs, where Wald intervals collapse to a point.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta

CONFIDENCE = 0.95  # two-sided level of every interval in the tables


def clopper_pearson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided binomial interval (Clopper & Pearson 1934) for a proportion observed as
    ``successes`` of ``n``: the α/2 quantile of Beta(x, n − x + 1) and the 1 − α/2 quantile of
    Beta(x + 1, n − x), with the conventions 0 at x = 0 and 1 at x = n. NaNs for n = 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n]; got {successes} of {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    if n == 0:
        return float("nan"), float("nan")
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


def successes(accuracy: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """The integer counts behind accuracies stored as fractions ``count / n`` (rounded, so the
    float division is undone exactly)."""
    return np.rint(np.asarray(accuracy, dtype=float) * np.asarray(n, dtype=float)).astype(int)
