"""The accuracy-against-radius figure: certified accuracy (solid) and accuracy under attack
(dashed: the smallest distance over every attack that was run, (D) of the inequality chain)
against the L2 radius; where the runs have randomized-smoothing columns, the smoothed
classifier's certified accuracy too (dotted, "RS (probabilistic)"), so that one figure shows
every kind of certificate. With several seeds each curve is the mean over seeds, with a band
from the smallest to the largest seed's value: the spread between trainings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lmt.soundness import attacked_rows  # noqa: E402

from lmt.report.tables import smoothed_correct  # noqa: E402

# (curve, line style, legend suffix), in drawing order
CURVES = (("certified", "-", "certified"), ("attacked", "--", "under attacks"), ("smoothed", ":", "RS (probabilistic)"))


def accuracy_curves(examples: pd.DataFrame, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Certified accuracy (over every example) and under-attack accuracy (all attacks, over the
    attacked examples) of one run at every radius of ``grid``."""
    radii = examples["certified_radius"].to_numpy()[:, None]
    dists = examples.loc[attacked_rows(examples), "min_attack_distance"].to_numpy()[:, None]
    return (radii >= grid).mean(0), (dists > grid).mean(0)


def smoothed_curve(examples: pd.DataFrame, grid: np.ndarray) -> np.ndarray | None:
    """The smoothed classifier's certified accuracy at every radius of ``grid`` (correct, not
    abstained, ``rs_radius`` ≥ r; as in :func:`lmt.report.tables.smoothing_metrics`), or None
    where the run has no randomized-smoothing columns."""
    if "rs_radius" not in examples:
        return None
    correct = smoothed_correct(examples).to_numpy()[:, None]
    return (correct & (examples["rs_radius"].to_numpy()[:, None] >= grid)).mean(0)


def run_curves(examples: pd.DataFrame, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Every curve one run has, keyed as in :data:`CURVES`."""
    certified, attacked = accuracy_curves(examples, grid)
    curves = {"certified": certified, "attacked": attacked}
    smoothed = smoothed_curve(examples, grid)
    if smoothed is not None:
        curves["smoothed"] = smoothed
    return curves


def plot_spread(ax: plt.Axes, grid: np.ndarray, seeds: list[np.ndarray], style: str, colour: str, label: str) -> None:
    """The mean over seeds as a line; with several seeds, a shaded min–max band behind it."""
    stacked = np.vstack(seeds)
    ax.plot(grid, stacked.mean(0), style, color=colour, label=label)
    if len(seeds) > 1:
        ax.fill_between(grid, stacked.min(0), stacked.max(0), color=colour, alpha=0.15, linewidth=0)


def plot_accuracy_vs_radius(
    runs: Iterable[tuple[str, int, pd.DataFrame]], max_radius: float, title: str = "",
    curves: Sequence[str] = tuple(key for key, _, _ in CURVES),
) -> plt.Figure:
    """One colour per method; curves averaged over seeds, min–max bands with several seeds;
    only the kinds in ``curves`` (keys of :data:`CURVES`)."""
    grid = np.linspace(0.0, max_radius, 301)
    per_method: dict[str, list[dict[str, np.ndarray]]] = {}
    for method, _, examples in runs:
        per_method.setdefault(method, []).append(run_curves(examples, grid))
    fig, ax = plt.subplots(figsize=(6, 4) if len(per_method) <= 6 else (10, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(per_method) > len(colours):
        colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    for i, (method, seeds) in enumerate(per_method.items()):
        for key, style, suffix in (c for c in CURVES if c[0] in curves):
            values = [curves[key] for curves in seeds if key in curves]
            if values:
                plot_spread(ax, grid, values, style, colours[i % len(colours)], f"{method}: {suffix}")
    ax.set_xlabel("L2 radius (pixels in [0, 1])")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, max_radius)
    ax.grid(alpha=0.3)
    if len(per_method) <= 6:
        ax.legend(fontsize=8)
    else:  # many curves: the legend beside the axes, not over them
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
