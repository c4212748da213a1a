"""The soundness gate: no certificate may exceed what an attack or a gradient shows.

Two checks on one run's per-example table, both fatal:

* certified radius (A) > smallest attack distance (D): an adversarial example lies inside the
  certified ball, so the certificate is wrong;
* certified radius (A) > the gradient-based radius (B) beyond float tolerance: a measured
  gradient norm ‖∇ₓ(F_y − F_i)‖ exceeds the certified Lipschitz bound of that pair, so the
  bound is not an upper bound.

The error names the run, every offending example id, and the numbers.
"""

from __future__ import annotations

import pandas as pd

GRADIENT_RTOL = 1e-4  # float32 gradients against float64 bounds
SHOWN_ROWS = 50


class SoundnessError(AssertionError):
    """A certified radius exceeds an attack distance or a gradient-based radius."""


def attack_labels(frame: pd.DataFrame) -> list[str]:
    """Attacks with a ``<attack>_distance`` and ``<attack>_success`` column, in table order."""
    suffix = "_distance"
    return [
        c[: -len(suffix)] for c in frame.columns
        if c.endswith(suffix) and f"{c[: -len(suffix)]}_success" in frame.columns
    ]


def attack_columns(frame: pd.DataFrame) -> list[str]:
    """The ``<attack>_distance`` columns, in table order."""
    return [f"{label}_distance" for label in attack_labels(frame)]


def _describe(frame: pd.DataFrame, mask: pd.Series, columns: list[str], what: str) -> str:
    bad = frame.loc[mask, ["example_id", *columns]]
    ids = bad["example_id"].tolist()
    text = f"{len(bad)} example(s) {what}; ids: {ids}\n"
    text += bad.head(SHOWN_ROWS).to_string(index=False, float_format=lambda v: f"{v:.6g}")
    if len(bad) > SHOWN_ROWS:
        text += f"\n... and {len(bad) - SHOWN_ROWS} more row(s), ids listed above"
    return text


def check_soundness(frame: pd.DataFrame, run_label: str) -> None:
    """Raise :class:`SoundnessError` if any example of ``frame`` breaks the chain's sound part."""
    problems = []
    attacks = attack_columns(frame)
    values = frame[["certified_radius", *attacks]]
    if "radius_global_grad" in frame:
        values = values.join(frame[["radius_global_grad"]])
    if values.isna().any().any():
        nan = values.isna().any(axis=1)
        problems.append(_describe(frame, nan, list(values.columns), "have NaN radii or distances"))
    radius = frame["certified_radius"]
    if attacks:
        beaten = radius > frame["min_attack_distance"]
        if beaten.any():
            problems.append(
                _describe(frame, beaten, ["certified_radius", *attacks, "min_attack"],
                          "have a certified radius larger than an attack distance")
            )
    if "radius_global_grad" in frame:
        grad = frame["radius_global_grad"]
        above = radius > grad * (1 + GRADIENT_RTOL)
        if above.any():
            problems.append(
                _describe(frame, above, ["certified_radius", "radius_global_grad"],
                          "have a certified radius larger than margin / (a measured gradient norm), "
                          "so a certified Lipschitz bound is below a gradient norm")
            )
    if problems:
        raise SoundnessError(f"{run_label}: the certificates are unsound.\n" + "\n\n".join(problems))
