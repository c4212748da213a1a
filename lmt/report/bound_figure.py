"""Fig. 3 of the paper: operator-norm bounds of each linear layer, and of the whole network,
side by side (from the certify stage's ``layer_bounds.csv``).

Bars: the paper's Thm 1/2 (power iteration with the error term), Cor. 1, Cisse et al. and Peck
et al. as the official code computes them, and the bound our certificate actually used. The
paper's ordering is Thm 1,2 < Cor. 1 < Cisse+ < Peck+; whether its bars are per layer or per
network is not recorded (notes §4.1), so both are shown.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lmt.bounds.comparison import COMPARISON_COLUMNS  # noqa: E402

BARS = {**{c.name: c.label for c in COMPARISON_COLUMNS if c.in_figure}, "certified": "certified (ours)"}


def operator_rows(layer_bounds: pd.DataFrame) -> pd.DataFrame:
    """The rows worth comparing: layers whose bounds differ between methods (convolutions,
    fused conv+BN, linear layers), then the network's L_F ("total")."""
    layers = layer_bounds[layer_bounds["type"] != "network"]
    values = layers[list(BARS)].to_numpy(dtype=float)
    differs = ~np.isclose(np.nanmin(values, axis=1), np.nanmax(values, axis=1), rtol=1e-9)
    rows = layers[differs].copy()
    rows["label"] = [f"{layer}\n{kind}" for layer, kind in zip(rows["layer"], rows["type"])]
    total = layer_bounds[(layer_bounds["type"] == "network") & (layer_bounds["layer"] == "total")].copy()
    total["label"] = "network\nL_F"
    return pd.concat([rows, total], ignore_index=True)


def bound_comparison_table(runs: Sequence[tuple[str, int, pd.DataFrame]]) -> pd.DataFrame:
    """The compared rows of every run, tagged with method and seed (for the CSV)."""
    frames = []
    for method, seed, layer_bounds in runs:
        rows = operator_rows(layer_bounds).drop(columns="label").rename(columns={"method": "bound_method"})
        rows.insert(0, "seed", seed)
        rows.insert(0, "method", method)
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def plot_bound_comparison(runs: Sequence[tuple[str, int, pd.DataFrame]], title: str = "") -> plt.Figure:
    """One panel per method (its first seed), grouped bars per layer on a log axis, the legend
    below the panels. Panels with few layers sit two per row, so the figure stays wider than
    tall (a figure taller than the screen is hard to read in the HTML report); with many layers
    (the WRN's) each panel takes a row of its own, layer names rotated."""
    first: dict[str, pd.DataFrame] = {}
    for method, _, layer_bounds in runs:
        first.setdefault(method, layer_bounds)
    n_groups = max(len(operator_rows(f)) for f in first.values())
    many = n_groups > 8
    n_cols = 1 if many or len(first) == 1 else 2
    n_rows = -(-len(first) // n_cols)
    # Rotated layer names need less width per layer, and more height, than level ones.
    panel = (max(6.0, 0.6 * n_groups), 4.6) if many else (max(6.0, 0.9 * n_groups), 3.2)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel[0] * n_cols, panel[1] * n_rows + 0.5),
                             squeeze=False, layout="constrained")
    width = 0.8 / len(BARS)
    for ax, (method, layer_bounds) in zip(axes.flat, first.items()):
        rows = operator_rows(layer_bounds)
        x = np.arange(len(rows))
        for i, (column, label) in enumerate(BARS.items()):
            ax.bar(x + (i - (len(BARS) - 1) / 2) * width, rows[column].to_numpy(dtype=float), width, label=label)
        ax.set_xticks(x, rows["label"], fontsize=8, rotation=90 if many else 0)
        ax.set_yscale("log")
        ax.set_ylabel("operator-norm bound")
        ax.set_title(method, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(first):]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(BARS), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
