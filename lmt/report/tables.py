"""Per-example results → accuracy metrics per run → a summary table per method.

Definitions (all on the same test examples):

* certified accuracy at r: fraction with certified radius ≥ r (misclassified points have 0);
* accuracy under attack at r: fraction whose smallest attack distance is > r (a misclassified
  point has distance 0, an attack failure +inf).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

PER_EXAMPLE_COLUMNS = [
    "example_id", "label", "prediction", "margin", "lipschitz_bound", "body_bound",
    "radius_prop1", "certified_radius", "cw_distance", "cw_success",
]


def run_metrics(examples: pd.DataFrame, radii: Sequence[float]) -> dict[str, float]:
    """Scalar metrics of one (method, seed) run."""
    correct = examples["label"] == examples["prediction"]
    metrics = {
        "n_examples": float(len(examples)),
        "clean_accuracy": float(correct.mean()),
        "median_certified_radius": float(examples["certified_radius"].median()),
        "median_cw_distance": float(examples["cw_distance"].median()),
    }
    for r in radii:
        metrics[f"certified_accuracy@{r:g}"] = float((examples["certified_radius"] >= r).mean())
        metrics[f"cw_accuracy@{r:g}"] = float((examples["cw_distance"] > r).mean())
    return metrics


def metrics_table(runs: Iterable[tuple[str, int, pd.DataFrame]], radii: Sequence[float]) -> pd.DataFrame:
    """Tidy long table: method, seed, metric, value."""
    rows = [
        {"method": method, "seed": seed, "metric": name, "value": value}
        for method, seed, examples in runs
        for name, value in run_metrics(examples, radii).items()
    ]
    return pd.DataFrame(rows, columns=["method", "seed", "metric", "value"])


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per method: mean (and std over seeds) of every metric, in the metrics' order."""
    order = list(dict.fromkeys(metrics["metric"]))
    grouped = metrics.groupby(["method", "metric"], sort=False)["value"]
    mean = grouped.mean().unstack("metric")[order]
    std = grouped.std(ddof=0).unstack("metric")[order].add_suffix("_std")
    seeds = metrics.groupby("method", sort=False)["seed"].nunique().rename("n_seeds")
    return pd.concat([seeds, mean, std], axis=1).reset_index()


def summary_markdown(summary: pd.DataFrame) -> str:
    """Markdown with accuracies in percent ('mean ± std' when there are several seeds)."""
    metrics = [c for c in summary.columns if c not in ("method", "n_seeds") and not c.endswith("_std")]
    out = pd.DataFrame({"method": summary["method"], "seeds": summary["n_seeds"]})
    for name in metrics:
        if name == "n_examples":
            out["examples"] = summary[name].astype(int)
            continue
        is_acc = "accuracy" in name
        scale = 100.0 if is_acc else 1.0
        fmt = "{:.1f}" if is_acc else "{:.3f}"

        def cell(i: int) -> str:
            text = fmt.format(summary[name].iloc[i] * scale)
            if summary["n_seeds"].iloc[i] > 1:
                text += " ± " + fmt.format(summary[f"{name}_std"].iloc[i] * scale)
            return text

        header = name.replace("_accuracy@", " acc. @").replace("_", " ") + (" (%)" if is_acc else "")
        out[header] = [cell(i) for i in range(len(summary))]
    return out.to_markdown(index=False) + "\n"
