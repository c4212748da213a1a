"""The soundness gate: no certificate may exceed what an attack or a gradient shows, and
nothing non-finite passes.

Checks on one run's per-example table, all fatal:

* a NaN or infinite margin, Lipschitz bound or radius (certified, Prop. 1, gradient-based), or
  a NaN attack distance (an attack that fails records +inf, which is allowed): the numbers
  cannot be trusted, so the gate fails closed instead of reporting a radius. One exact +inf is
  allowed: ``radius_without_rounding`` (a diagnostic, never a certificate) when every pair
  bound of an example is exactly 0 and its margins positive: a constant logit difference never
  flips (a collapsed network whose head rows are all equal). Its certified radius, which pays
  for rounding, stays finite and is still required to be. The gradient-based radii (B) and (C)
  of the inequality chain (diagnostics too) are +inf for the same network: every measured
  gradient norm is exactly 0, and :func:`lmt.certify.radii` gives a positive margin over a zero
  bound +inf (and a non-positive one 0);

* certified radius (A) > smallest attack distance (D): an adversarial example lies inside the
  certified ball, so the certificate is wrong;
* certified radius (A) > the gradient-based radius (B) beyond float tolerance: a measured
  gradient norm ‖∇ₓ(F_y − F_i)‖ exceeds the certified Lipschitz bound of that pair, so the
  bound is not an upper bound;
* a layer that promises a Lipschitz constant by construction (the 1-Lipschitz layers of
  :mod:`lmt.models.lipschitz_layers`) has a certified bound above its promise by more than
  ``PROMISE_RTOL`` (column ``promise_excess``; the layers are listed under ``promises`` in
  ``bounds.json``): the radii stay sound (they use the certified bound, never the promise), but
  the network is not what its construction claims (too few series terms, a power-iteration
  estimate below the norm), so the run fails (:func:`check_promises`).

Randomized smoothing (``rs_*`` columns, :mod:`lmt.smoothing`, only where configured) certifies
another classifier: the smoothed classifier g(x) = argmax_c P(f(x + ε) = c), not the network f
that the attacks and the Lipschitz-margin certificate concern. An attack distance found on f
is no upper bound for g's radius (g can be robust where f is not, and the reverse), so the
gate does **not** compare ``rs_radius`` with attack distances, with the certified radius or with
(B); and its guarantee is probabilistic (per example with probability ≥ 1 − α), so no
comparison could prove it wrong anyway. What the gate checks, all fatal:

* ``rs_p_lower`` and ``rs_radius`` are finite numbers (never NaN or ±inf);
* 0 ≤ ``rs_p_lower`` ≤ 1 and ``rs_radius`` ≥ 0;
* ``rs_abstain`` is a boolean, and abstaining ⇔ ``rs_p_lower`` ≤ 1/2; an abstention has radius 0,
  a certified example a positive radius;
* ``rs_prediction`` is a class index (an integer ≥ 0), ``rs_count`` (where present) an integer ≥ 0.

The error names the run, every offending example id, and the numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

GRADIENT_RTOL = 1e-4  # float32 gradients against float64 bounds
PROMISE_RTOL = 1e-6  # certified / promised − 1 above this breaks a layer's promise
SHOWN_ROWS = 50


class SoundnessError(AssertionError):
    """A certified radius exceeds an attack distance or a gradient-based radius, or a number
    the certificate rests on is not finite."""


class NonFiniteError(SoundnessError, ValueError):
    """A bound, margin or radius is NaN or infinite: an error, never a radius."""


# Columns that must be finite wherever present (body_bound only for Prop. 2 certificates).
FINITE_COLUMNS = ("margin", "lipschitz_bound", "body_bound", "rounding_slack", "radius_prop1",
                  "certified_radius", "radius_without_rounding", "radius_global_grad",
                  "radius_local_grad", "promise_excess")
# Of those, the columns where +inf is an exact answer rather than a failure (see the module doc).
PLUS_INF_EXACT = ("radius_without_rounding", "radius_global_grad", "radius_local_grad")


def broken_promises(promises: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of :meth:`lmt.bounds.CertifiedBound.promises` whose certified bound exceeds
    the promise by more than ``PROMISE_RTOL`` (relative)."""
    return [p for p in promises if not p["excess"] <= PROMISE_RTOL]


def promise_message(promises: list[dict[str, Any]]) -> str:
    broken = broken_promises(promises)
    lines = [f"  {p['layer']} ({p['type']}): promised {p['promised']:.9g}, certified {p['certified']:.9g} "
             f"(+{p['excess']:.3g} relative)" for p in broken]
    return (f"{len(broken)} layer(s) certified above the Lipschitz constant their construction promises "
            f"(tolerance {PROMISE_RTOL:g} relative); the radii use the certified bounds and stay sound, but "
            "the layers are not what they claim (too few series terms? a norm estimate below the norm?):\n"
            + "\n".join(lines))


def check_promises(promises: list[dict[str, Any]], run_label: str) -> None:
    """Raise :class:`SoundnessError` naming every layer whose certified bound breaks its promise."""
    if broken_promises(promises):
        raise SoundnessError(f"{run_label}: {promise_message(promises)}")


def non_finite_problems(frame: pd.DataFrame, columns: list[str] | None = None,
                        allow_inf: tuple[str, ...] = PLUS_INF_EXACT) -> list[str]:
    """One message per column of ``frame`` with NaN, −inf or +inf entries, naming the column and
    the example ids; +inf passes in the ``allow_inf`` columns (a failed attack's distance, the
    exact radius of a constant logit difference), −inf never does."""
    problems = []
    for column in columns if columns is not None else [c for c in FINITE_COLUMNS if c in frame]:
        values = pd.to_numeric(frame[column], errors="coerce")
        if column == "body_bound" and "certificate" in frame:
            values = values[frame["certificate"] == "prop2"]
        bad = values.isna() | (values == -np.inf if column in allow_inf else ~np.isfinite(values))
        if bad.any():
            ids = frame.loc[bad[bad].index, "example_id"].tolist()
            shown = ids[:SHOWN_ROWS]
            more = f" (and {len(ids) - SHOWN_ROWS} more)" if len(ids) > SHOWN_ROWS else ""
            what = "NaN or -inf" if column in allow_inf else "NaN or infinite"
            problems.append(f"column {column!r} is {what} for {len(ids)} example(s); ids: {shown}{more}")
    return problems


def require_finite(frame: pd.DataFrame, run_label: str, columns: list[str] | None = None) -> None:
    """Raise :class:`NonFiniteError` naming the run, the column and the example ids."""
    problems = non_finite_problems(frame, columns)
    if problems:
        raise NonFiniteError(f"{run_label}: non-finite numbers, so no certificate is reported.\n" + "\n".join(problems))


def require_finite_parameters(model: Any, run_label: str) -> None:
    """Raise :class:`NonFiniteError` naming every parameter or buffer with NaN or inf entries
    (a diverged training run): nothing computed from them could be trusted."""
    bad = [name for name, t in [*model.named_parameters(), *model.named_buffers()]
           if t.is_floating_point() and not bool(t.detach().isfinite().all())]
    if bad:
        raise NonFiniteError(f"{run_label}: the trained model has NaN or inf in {bad} (training "
                             "diverged: check its train_log.csv and the learning rate)")


def require_finite_bound(total: float, body: float | None, layers: list[dict[str, Any]], run_label: str) -> None:
    """Raise :class:`NonFiniteError` if the network's certified bound L_F (or L_G) is not a
    finite non-negative number, naming the layers whose bounds are not."""
    for name, value in (("L_F (lipschitz_bound)", total), ("L_G (body_bound)", body)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            culprits = [f"{row['layer']} ({row['type']}): {row['bound']}" for row in layers
                        if not np.isfinite(row["bound"])]
            raise NonFiniteError(f"{run_label}: the certified Lipschitz bound {name} is {value}, so no "
                                 f"certificate is reported; non-finite layer bounds: {culprits or 'none'}")


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


def describe_examples(frame: pd.DataFrame, mask: pd.Series, columns: list[str], what: str) -> str:
    bad = frame.loc[mask, ["example_id", *columns]]
    ids = bad["example_id"].tolist()
    text = f"{len(bad)} example(s) {what}; ids: {ids}\n"
    text += bad.head(SHOWN_ROWS).to_string(index=False, float_format=lambda v: f"{v:.6g}")
    if len(bad) > SHOWN_ROWS:
        text += f"\n... and {len(bad) - SHOWN_ROWS} more row(s), ids listed above"
    return text


SMOOTHING_COLUMNS = ("rs_prediction", "rs_count", "rs_p_lower", "rs_radius", "rs_abstain")


def _as_bool(column: pd.Series) -> pd.Series | None:
    """A column of booleans (as pandas reads them from CSV, or 0/1), or None if it is not one."""
    if column.dtype == bool:
        return column
    text = column.astype(str).str.lower()
    if text.isin(["true", "false", "1", "0", "1.0", "0.0"]).all():
        return text.isin(["true", "1", "1.0"])
    return None


def smoothing_problems(frame: pd.DataFrame) -> list[str]:
    """One message per broken invariant of the randomized-smoothing columns (module docstring);
    none where the table has no ``rs_radius``. Never compares them with attacks or the
    Lipschitz-margin certificate: they certify the smoothed classifier, another classifier."""
    if "rs_radius" not in frame:
        return []
    missing = [c for c in SMOOTHING_COLUMNS if c != "rs_count" and c not in frame]
    if missing:
        return [f"randomized smoothing: columns {missing} are missing beside 'rs_radius'"]
    problems = non_finite_problems(frame, ["rs_p_lower", "rs_radius"])
    p = pd.to_numeric(frame["rs_p_lower"], errors="coerce")
    radius = pd.to_numeric(frame["rs_radius"], errors="coerce")
    finite = np.isfinite(p) & np.isfinite(radius)

    def flag(mask: pd.Series, what: str) -> None:
        mask = mask.fillna(False).astype(bool) & finite
        if mask.any():
            problems.append(describe_examples(frame, mask, [c for c in SMOOTHING_COLUMNS if c in frame], what))

    flag((p < 0) | (p > 1), "have a smoothing probability bound rs_p_lower outside [0, 1]")
    flag(radius < 0, "have a negative smoothing radius rs_radius")
    for column in ("rs_prediction", "rs_count"):
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce")
            flag(~(np.isfinite(values) & (values >= 0) & (values == np.round(values))) | values.isna(),
                 f"have a {column} that is not an integer ≥ 0")
    abstain = _as_bool(frame["rs_abstain"])
    if abstain is None:
        problems.append("column 'rs_abstain' is not boolean")
        return problems
    flag(abstain & (radius != 0), "abstain (rs_abstain) with a smoothing radius other than 0")
    flag(~abstain & ~(radius > 0), "are not abstained but have smoothing radius 0")
    flag(abstain != (p <= 0.5), "have rs_abstain inconsistent with rs_p_lower ≤ 1/2")
    return problems


CHAIN_COLUMNS = ("radius_global_grad", "radius_local_grad")  # computed on the attacked examples only


def attacked_rows(frame: pd.DataFrame) -> pd.Series:
    """Which rows were attacked: the ``attacked`` column (lmt.pipeline.merge_stage), else every
    row (a table from before the column existed attacked every example)."""
    if "attacked" not in frame:
        return pd.Series(True, index=frame.index)
    attacked = _as_bool(frame["attacked"])
    if attacked is None:
        raise SoundnessError("column 'attacked' holds values other than true/false, so which examples were "
                             "attacked is unknown")
    return attacked


def check_soundness(frame: pd.DataFrame, run_label: str) -> None:
    """Raise :class:`SoundnessError` if any example of ``frame`` breaks the chain's sound part,
    or the randomized-smoothing columns their invariants (:func:`smoothing_problems`)."""
    attacks = attack_columns(frame)
    attacked = attacked_rows(frame)
    problems = non_finite_problems(frame, [c for c in FINITE_COLUMNS if c in frame and c not in CHAIN_COLUMNS])
    problems += non_finite_problems(frame[attacked], [c for c in CHAIN_COLUMNS if c in frame])
    problems += smoothing_problems(frame)
    # a failed attack is +inf; only examples outside the attacked prefix may lack a distance
    problems += non_finite_problems(frame[attacked], attacks, allow_inf=tuple(attacks))
    if "min_attack_distance" in frame:
        problems += non_finite_problems(frame[attacked], ["min_attack_distance"], allow_inf=("min_attack_distance",))
    if "attacked" in frame and attacks:
        stray = ~attacked & frame[attacks].notna().any(axis=1)
        if stray.any():
            problems.append(describe_examples(frame, stray, ["attacked", *attacks], "have attack distances but are marked not attacked"))
    radius = frame["certified_radius"]
    if attacks:
        beaten = radius > frame["min_attack_distance"]
        if beaten.any():
            problems.append(
                describe_examples(frame, beaten, ["certified_radius", *attacks, "min_attack"],
                          "have a certified radius larger than an attack distance")
            )
    if "radius_global_grad" in frame:
        grad = frame["radius_global_grad"]
        above = radius > grad * (1 + GRADIENT_RTOL)
        if above.any():
            problems.append(
                describe_examples(frame, above, ["certified_radius", "radius_global_grad"],
                          "have a certified radius larger than margin / (a measured gradient norm), "
                          "so a certified Lipschitz bound is below a gradient norm")
            )
    if "promise_excess" in frame:
        excess = pd.to_numeric(frame["promise_excess"], errors="coerce")
        if (excess > PROMISE_RTOL).any():
            problems.append(
                f"a layer's certified Lipschitz bound exceeds the constant its construction promises by "
                f"{float(excess.max()):.3g} relative (tolerance {PROMISE_RTOL:g}); bounds.json lists every "
                "layer under 'promises' (promised, certified)"
            )
    if problems:
        raise SoundnessError(f"{run_label}: the certificates are unsound.\n" + "\n\n".join(problems))
