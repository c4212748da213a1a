"""Certified radius against the smallest attack distance, per example: the soundness invariant
(every point on or above the diagonal) and the gap the certificate leaves, at a glance."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_certified_vs_attack(runs: Sequence[tuple[str, int, pd.DataFrame]], title: str = "") -> plt.Figure:
    """One colour per method (all seeds); correctly classified examples with a finite attack
    distance (misclassified ones sit at (0, 0), failed attacks at +inf)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    seen: dict[str, str] = {}
    for method, _, examples in runs:
        keep = (examples["label"] == examples["prediction"]) & np.isfinite(examples["min_attack_distance"])
        x = examples.loc[keep, "certified_radius"].to_numpy(dtype=float)
        y = examples.loc[keep, "min_attack_distance"].to_numpy(dtype=float)
        colour = seen.setdefault(method, colours[len(seen) % len(colours)])
        ax.scatter(x, y, s=6, alpha=0.5, color=colour, label=method if len(x) and method not in ax.get_legend_handles_labels()[1] else None)
        if len(y):
            top = max(top, float(y.max()), float(x.max()))
    top = top * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="black", lw=0.8, label="certified = attack")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("certified radius (A)")
    ax.set_ylabel("smallest attack distance (D)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
