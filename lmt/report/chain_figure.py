"""Fig. 4 of the paper: how loose each step of the inequality chain (A) ≤ (B) ≤ (C) ≤ (D) is,
as the per-example ratios (B)/(A), (C)/(B), (D)/(C) (pooled over seeds).

The paper's plot type is not recorded (notes §4.1), so the ratios are drawn as box plots on a
log axis; the paper's quoted medians for its unregularised MNIST model are marked where given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import Formatter  # noqa: E402

from lmt.inequality_chain import RATIOS, per_example_ratios  # noqa: E402


class _RatioFormatter(Formatter):
    """Plain numbers ("0.5", "1.1", "40") on a log axis. Minor ticks are labelled only while
    their labels cannot crowd: every one on an axis under half a decade, those at 2 and 5 × 10^k
    on one under two decades, none on a longer one."""

    def __init__(self, minor: bool) -> None:
        self.minor = minor

    def __call__(self, x: float, pos: int | None = None) -> str:
        if x <= 0:
            return ""
        if self.minor:
            low, high = sorted(self.axis.get_view_interval())
            decades = np.log10(high / low) if low > 0 else np.inf
            mantissa = round(x / 10 ** np.floor(np.log10(x) + 1e-9), 6)
            if decades > 2 or (decades > 0.5 and mantissa not in (2.0, 5.0)):
                return ""
        return f"{x:.3g}"


def plot_chain_ratios(
    runs: Sequence[tuple[str, int, pd.DataFrame]],
    published: Mapping[tuple[str, str], float] | None = None,
    title: str = "",
) -> plt.Figure:
    """One panel per ratio, one box per method; ``published[(method, ratio)]`` is drawn as a
    red diamond labelled 'paper'."""
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    for method, _, examples in runs:
        for ratio, values in per_example_ratios(examples).items():
            pooled.setdefault(method, {}).setdefault(ratio, []).append(values)
    methods = list(pooled)
    ratios = [f"({u})/({l})" for u, l in RATIOS]
    fig, axes = plt.subplots(1, len(ratios), figsize=(3.4 * len(ratios), 3.6), squeeze=False)
    for ax, ratio in zip(axes[0], ratios):
        data = [np.concatenate(pooled[m][ratio]) for m in methods]
        ax.boxplot(data, whis=(5, 95), showfliers=False, medianprops={"color": "black"})
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_RatioFormatter(minor=False))
        ax.yaxis.set_minor_formatter(_RatioFormatter(minor=True))
        if not any(len(values) for values in data):  # e.g. nothing certified: (B)/(A) undefined
            ax.text(0.5, 0.7, "no example where both\nvalues are finite and positive", transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, color="grey")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_title(ratio, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        for i, method in enumerate(methods, start=1):
            value = (published or {}).get((method, ratio))
            if value is not None:
                ax.plot([i], [value], "D", color="tab:red", label="paper (median)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("ratio (box: quartiles, whiskers: 5–95 %)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
