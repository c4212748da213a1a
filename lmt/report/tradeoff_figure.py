"""The trade-off figure of a sweep: clean accuracy (x) against certified accuracy at one radius
(y), one point per swept value, labelled by it, one series per sweep. A larger LMT c guards a
larger radius at some clean accuracy: the curve shows where a sweep stops paying."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lmt.report.tradeoff_table import CLEAN, certified  # noqa: E402


def value_label(values: Mapping[str, Any]) -> str:
    """``c=1`` or ``c=1, warmup_epochs=5``: how a point is labelled."""
    return ", ".join(f"{p}={v:g}" if isinstance(v, float) else f"{p}={v}" for p, v in values.items())


def _errors(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    """The std over seeds as error bars (None where every run has a single seed)."""
    std = frame[f"{name}_std"].to_numpy(dtype=float)
    return None if np.isnan(std).all() else np.nan_to_num(std)


def plot_tradeoff(table: pd.DataFrame, sweeps: Mapping[str, Any], radius: float, title: str = "") -> plt.Figure:
    """One series per sweep from the trade-off table (:func:`lmt.report.tradeoff_table.tradeoff_table`);
    error bars are the standard deviations over seeds where there are several."""
    y_name = certified(radius)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (base, sweep) in enumerate(sweeps.items()):
        rows = table[table["sweep"] == base]
        x, y = rows[CLEAN].to_numpy(dtype=float), rows[y_name].to_numpy(dtype=float)
        colour = colours[i % len(colours)]
        ax.errorbar(x, y, xerr=_errors(rows, CLEAN), yerr=_errors(rows, y_name), fmt="o-", color=colour,
                    capsize=3, label=f"{base}: {', '.join(sweep['params'])}")
        for (_, row), xi, yi in zip(rows.iterrows(), x, y):
            ax.annotate(value_label({p: row[p] for p in sweep["params"]}), (xi, yi), textcoords="offset points",
                        xytext=(4, 4), fontsize=8, color=colour)
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel(f"certified accuracy at r = {radius:g}")
    ax.margins(0.2)  # room for the value labels; the points fill the panel
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
