"""The accuracy-against-radius figure: certified accuracy (solid) and accuracy under attack
(dashed: the smallest distance over every attack that was run, (D) of the inequality chain)
against the L2 radius."""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def accuracy_curves(examples: pd.DataFrame, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Certified and under-attack (all attacks) accuracy of one run at every radius of ``grid``."""
    radii = examples["certified_radius"].to_numpy()[:, None]
    dists = examples["min_attack_distance"].to_numpy()[:, None]
    return (radii >= grid).mean(0), (dists > grid).mean(0)


def plot_accuracy_vs_radius(
    runs: Iterable[tuple[str, int, pd.DataFrame]], max_radius: float, title: str = ""
) -> plt.Figure:
    """One colour per method; curves averaged over seeds."""
    grid = np.linspace(0.0, max_radius, 301)
    per_method: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for method, _, examples in runs:
        per_method.setdefault(method, []).append(accuracy_curves(examples, grid))
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, curves) in enumerate(per_method.items()):
        certified = np.mean([c for c, _ in curves], axis=0)
        attacked = np.mean([a for _, a in curves], axis=0)
        colour = colours[i % len(colours)]
        ax.plot(grid, certified, "-", color=colour, label=f"{method}: certified")
        ax.plot(grid, attacked, "--", color=colour, label=f"{method}: under attacks")
    ax.set_xlabel("L2 radius (pixels in [0, 1])")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, max_radius)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
