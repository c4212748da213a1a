"""The certificate–attack gap: per example an interval [best certificate, best attack].

Over the examples that were attacked (column ``attacked``) and are correctly classified
(``prediction`` = ``label``), per run (method, seed):

* ``lower``: the largest deterministic certified radius of the example, the maximum over the
  certificate columns present (:data:`DETERMINISTIC_RADII`: the certified radius, Prop. 2 where
  the network ends in a linear layer, and the Prop. 1 radius). ``radius_without_rounding`` is
  not a certificate for the network as evaluated (it ignores floating-point rounding) and the
  gradient-based radii (B) and (C) of the inequality chain are estimates from *lower* bounds of
  the Lipschitz constants, so none of them enters;
* ``upper``: the smallest successful attack distance over every attack that was run (the
  minimum of the ``<attack>_distance`` columns); +inf where no attack broke the example, which
  is legitimate and counted (``frac_upper_inf``), never dropped;
* ``gap`` = upper − lower and ``ratio`` = upper / lower (1 where upper = lower, +inf where
  lower = 0 < upper or upper = +inf).

The true smallest adversarial distance of the example lies in [lower, upper].

Randomized smoothing's radius (``rs_radius``, where the runs have it) certifies another
classifier (the smoothed one, :mod:`lmt.smoothing`) and holds with probability ≥ 1 − α only,
so it never enters ``lower``: the table reports it in separate columns (``rs_*``), headed
"probabilistic (randomized smoothing, smoothed classifier)".

Fail closed (:mod:`lmt.soundness`): a NaN or infinite deterministic radius, a NaN attack
distance on an attacked example, or a lower bound above the upper one (a certificate above an
attack distance) raises, naming the run, the column and the example ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lmt.report.formatting import mean_std
from lmt.soundness import (
    NonFiniteError,
    SoundnessError,
    attack_columns,
    attacked_rows,
    describe_examples,
    non_finite_problems,
)
from lmt.report.tables import smoothed_correct

# Deterministic certificates of the per-example table (lmt.pipeline.certify_stage), each a sound
# lower bound of the smallest adversarial L2 distance of the network as evaluated.
DETERMINISTIC_RADII = ("certified_radius", "radius_prop1")
RS_RADIUS = "rs_radius"

# Per-run metrics, in table order; the rs_* ones only where the runs have randomized smoothing.
METRICS = ("n", "median_lower", "median_upper", "median_gap", "median_ratio", "frac_upper_inf")
RS_METRICS = ("median_rs_radius", "rs_certified_fraction")

GAP_NOTE = (
    "Per correctly classified, attacked example: lower = the largest deterministic certified radius "
    "(max of {radii}), upper = the smallest distance over every attack; the true smallest adversarial "
    "distance lies in [lower, upper]. gap = upper − lower, ratio = upper / lower (∞ where lower = 0). "
    "Medians over the n examples, examples that no attack broke included (upper = ∞, counted in the "
    "column upper = ∞; a median is ∞ where they are half or more). Cells: mean ± sample standard "
    "deviation over the n seeds (column seeds; no ± with one seed)."
)
RS_NOTE = (
    " Probabilistic (randomized smoothing, smoothed classifier): Cohen et al.'s certified radius of the "
    "smoothed classifier on the same examples (0 where it abstains or is wrong), not mixed into lower: it "
    "certifies another classifier and holds with probability ≥ 1 − α{alpha} per example{sigma}."
)


def _correct(frame: pd.DataFrame) -> pd.Series:
    return frame["label"] == frame["prediction"]


def example_intervals(examples: pd.DataFrame, run_label: str = "run") -> pd.DataFrame:
    """One row per attacked, correctly classified example of one run's per-example table:
    ``example_id``, ``lower``, ``upper``, ``gap``, ``ratio`` (module docstring), and
    ``rs_radius`` where the table has it (0 where the smoothed classifier abstains or is wrong).

    Raises :class:`~lmt.soundness.NonFiniteError` for a non-finite deterministic radius or a NaN
    attack distance on these examples, :class:`~lmt.soundness.SoundnessError` for a lower bound
    above the upper one."""
    radii = [c for c in DETERMINISTIC_RADII if c in examples]
    if not radii:
        raise KeyError(f"{run_label}: no deterministic certified radius column ({list(DETERMINISTIC_RADII)})")
    attacks = attack_columns(examples)
    if not attacks:
        raise KeyError(f"{run_label}: no attack distance column (<attack>_distance with <attack>_success): "
                       "the gap needs at least one attack")
    selected = attacked_rows(examples) & _correct(examples)
    frame = examples[selected]
    problems = non_finite_problems(frame, radii)
    problems += non_finite_problems(frame, attacks, allow_inf=tuple(attacks))  # a failed attack is +inf
    if problems:
        raise NonFiniteError(f"{run_label}: non-finite numbers in the certificate–attack gap, so no gap is "
                             "reported.\n" + "\n".join(problems))
    lower = frame[radii].astype(float).max(axis=1)
    upper = frame[attacks].astype(float).min(axis=1)
    above = lower > upper
    if above.any():
        shown = frame.assign(lower=lower, upper=upper)
        raise SoundnessError(f"{run_label}: the certificates are unsound.\n" + describe_examples(
            shown, above, [*radii, *attacks], "have a certified radius larger than an attack distance"))
    low, high = lower.to_numpy(dtype=float), upper.to_numpy(dtype=float)
    ratio = np.full(len(low), np.inf)  # lower = 0 < upper: the certificate leaves everything open
    positive = low > 0
    ratio[positive] = high[positive] / low[positive]  # ∞ where upper = ∞
    ratio[high == low] = 1.0  # a tight interval (both 0 included)
    out = pd.DataFrame({
        "example_id": frame["example_id"].to_numpy(),
        "lower": lower.to_numpy(),
        "upper": upper.to_numpy(),
        "gap": (upper - lower).to_numpy(),
        "ratio": ratio,
    })
    if RS_RADIUS in frame:
        rs = pd.to_numeric(frame[RS_RADIUS], errors="coerce").where(smoothed_correct(frame), 0.0)
        out[RS_RADIUS] = rs.to_numpy(dtype=float)
    return out


def interval_metrics(intervals: pd.DataFrame) -> dict[str, float]:
    """The per-run row of the gap table: n, the medians of lower, upper, gap and ratio (∞
    entries included), the fraction with upper = ∞; where present, the median smoothed radius and
    the fraction the smoothed classifier certifies (radius > 0)."""
    n = len(intervals)

    def median(column: str) -> float:
        return float(intervals[column].median()) if n else float("nan")

    metrics = {
        "n": float(n),
        "median_lower": median("lower"),
        "median_upper": median("upper"),
        "median_gap": median("gap"),
        "median_ratio": median("ratio"),
        "frac_upper_inf": float(np.isinf(intervals["upper"]).mean()) if n else float("nan"),
    }
    if RS_RADIUS in intervals:
        metrics["median_rs_radius"] = median(RS_RADIUS)
        metrics["rs_certified_fraction"] = float((intervals[RS_RADIUS] > 0).mean()) if n else float("nan")
    return metrics


def gap_runs(runs: Iterable[tuple[str, int, pd.DataFrame]]) -> pd.DataFrame:
    """One row per run: method, seed and :func:`interval_metrics`."""
    rows = []
    for method, seed, examples in runs:
        rows.append({"method": method, "seed": seed,
                     **interval_metrics(example_intervals(examples, f"{method}/seed{seed}"))})
    return pd.DataFrame(rows)


def _mean(values: pd.Series) -> float:
    """The mean over seeds, ∞ where any seed is ∞ (no NaN from ∞ − ∞)."""
    if np.isinf(values).any():
        return float("inf")
    return float(values.mean())


def _std(values: pd.Series) -> float:
    """The sample standard deviation over seeds; NaN with one seed or where a seed is ∞."""
    if len(values) < 2 or np.isinf(values).any():
        return float("nan")
    return float(values.std(ddof=1))


def gap_table(runs: Iterable[tuple[str, int, pd.DataFrame]]) -> pd.DataFrame:
    """One row per method (in run order): ``n_seeds``, each metric's mean over seeds and its
    ``<metric>_std`` (sample standard deviation; NaN with one seed)."""
    per_run = gap_runs(runs)
    metrics = [m for m in (*METRICS, *RS_METRICS) if m in per_run]
    rows = []
    for method, group in per_run.groupby("method", sort=False):
        row: dict[str, Any] = {"method": method, "n_seeds": int(group["seed"].nunique())}
        for m in metrics:
            row[m] = _mean(group[m])
        for m in metrics:
            row[f"{m}_std"] = _std(group[m])
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(row: pd.Series, name: str, percent: bool = False) -> str:
    mean, std = row[name], row.get(f"{name}_std", float("nan"))
    if np.isinf(mean):
        return "∞"
    return mean_std(mean, std, int(row["n_seeds"]), percent)


def _count(row: pd.Series) -> str:
    """The number of examples: an integer for one seed, 'mean ± std' (one decimal) for several."""
    mean, std = row["n"], row.get("n_std", float("nan"))
    if int(row["n_seeds"]) > 1 and not pd.isna(std):
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.0f}"


RS_HEADING = "probabilistic (randomized smoothing, smoothed classifier)"


def gap_display(table: pd.DataFrame) -> pd.DataFrame:
    """The gap table for Markdown and LaTeX: medians with three significant digits, the
    fraction with upper = ∞ in percent; the randomized-smoothing columns (where present) headed
    as probabilistic."""
    out = pd.DataFrame({"method": table["method"], "seeds": table["n_seeds"]})
    out["n"] = [_count(row) for _, row in table.iterrows()]
    headers = {"median_lower": "median lower", "median_upper": "median upper", "median_gap": "median gap",
               "median_ratio": "median ratio (×)"}
    for name, header in headers.items():
        out[header] = [_cell(row, name) for _, row in table.iterrows()]
    out["upper = ∞ (%)"] = [_cell(row, "frac_upper_inf", percent=True) for _, row in table.iterrows()]
    if "median_rs_radius" in table:
        out[f"median RS radius, {RS_HEADING}"] = [_cell(row, "median_rs_radius") for _, row in table.iterrows()]
        out[f"RS certified (%), {RS_HEADING}"] = [
            _cell(row, "rs_certified_fraction", percent=True) for _, row in table.iterrows()]
    return out


def gap_note(smoothing: Mapping[str, Any] | None = None, smoothed_columns: bool = False) -> str:
    """The note under the table: what lower, upper, gap and ratio are; with smoothed columns,
    what they certify (σ and α where ``smoothing`` gives them)."""
    note = GAP_NOTE.format(radii=", ".join(DETERMINISTIC_RADII))
    if smoothed_columns:
        alpha = f" = {1 - smoothing['alpha']:g}" if smoothing and "alpha" in smoothing else ""
        sigma = f" (σ = {smoothing['sigma']:g})" if smoothing and "sigma" in smoothing else ""
        note += RS_NOTE.format(alpha=alpha, sigma=sigma)
    return note


def plot_gap(runs: Sequence[tuple[str, int, pd.DataFrame]], title: str = "") -> Any:
    """Per method (one column, every seed pooled): top, each example's interval [lower, upper]
    as a vertical segment, examples sorted by upper then lower, the upper bounds as a curve and
    the lower bounds as dots (examples that no attack broke are marked at the top edge); bottom, a histogram of upper / lower on a log scale (the
    ratios that are ∞, lower = 0 or no attack succeeding, counted in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    methods: dict[str, list[pd.DataFrame]] = {}
    for method, seed, examples in runs:
        methods.setdefault(method, []).append(example_intervals(examples, f"{method}/seed{seed}"))
    n = max(len(methods), 1)
    fig, axes = plt.subplots(2, n, figsize=(max(4.2 * n, 5.0), 7.0), squeeze=False)
    for column, (method, frames) in enumerate(methods.items()):
        top, bottom = axes[0][column], axes[1][column]
        intervals = pd.concat(frames, ignore_index=True).sort_values(["upper", "lower"], kind="stable")
        lower, upper = intervals["lower"].to_numpy(float), intervals["upper"].to_numpy(float)
        rank = np.arange(len(intervals))
        finite = np.isfinite(upper)
        ceiling = max([*upper[finite], *lower, 1e-12]) * 1.08
        shown_upper = np.where(finite, upper, ceiling)
        top.vlines(rank, lower, shown_upper, color="C1", alpha=0.35, lw=0.6, label="interval [lower, upper]")
        top.plot(rank[finite], upper[finite], color="C3", lw=1.4, label="upper: smallest attack distance")
        top.plot(rank, lower, ".", color="C0", ms=2.5, label="lower: best certified radius")
        if (~finite).any():
            top.plot(rank[~finite], np.full((~finite).sum(), ceiling), "^", color="C3", ms=3,
                     label=f"no attack succeeded (upper = ∞): {int((~finite).sum())}")
        top.set_ylim(0, ceiling * 1.05)
        top.set_xlim(0, max(len(intervals) - 1, 1))
        top.set_title(f"{method} ({len(frames)} seed{'s' if len(frames) > 1 else ''}, n = {len(intervals)})",
                      fontsize=10)
        top.set_xlabel("example rank (sorted by upper bound)")
        top.set_ylabel("L2 distance (pixel space [0, 1])")
        top.grid(alpha=0.3)
        top.legend(fontsize=7, loc="upper left")
        ratio = intervals["ratio"].to_numpy(float)
        ok = np.isfinite(ratio) & (ratio > 0)
        infinite = int(np.isinf(ratio).sum())
        if ok.any():
            lo, hi = float(ratio[ok].min()), float(ratio[ok].max())
            bins = np.geomspace(lo, hi * 1.0001, 30) if hi > lo else np.geomspace(lo / 1.1, lo * 1.1, 3)
            bottom.hist(ratio[ok], bins=bins, color="C2", alpha=0.8,
                        label=f"finite: {int(ok.sum())}, median {np.median(ratio[ok]):.3g}")
            bottom.set_xscale("log")
            bottom.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            bottom.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            bottom.xaxis.set_minor_formatter(ticker.NullFormatter())
        if infinite:
            bottom.plot([], [], " ", label=f"∞ (lower = 0 or upper = ∞): {infinite}")
        bottom.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        bottom.set_xlabel("ratio upper / lower (log scale)")
        bottom.set_ylabel("examples")
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=7)
    if not methods:
        axes[0][0].text(0.5, 0.5, "no runs", ha="center", va="center")
    if title:
        fig.suptitle(f"{title}: certificate–attack gap per example", fontsize=11)
    fig.tight_layout()
    return fig
