"""The trade-off table of a sweep: per swept value, clean accuracy against certified accuracy.

Built from the long per-run metrics table (``tables/metrics.csv``: method, seed, metric, value;
:func:`lmt.report.tables.metrics_table`) and the experiment's recorded ``sweeps``
(:mod:`lmt.sweeps`), so a sweep is read as one series rather than as unrelated tagged methods.
One row per run label: its sweep (the configured label), the swept parameters' values, the
number of seeds, and mean and sample standard deviation over seeds of the clean accuracy, the
certified accuracy at every radius and the median certified radius.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lmt.report.formatting import mean_std
from lmt.sweeps import sweep_runs

CLEAN = "clean_accuracy"
MEDIAN_RADIUS = "median_certified_radius"


def certified(radius: float) -> str:
    """The metric name of the certified accuracy at ``radius`` (as the metrics table has it)."""
    return f"certified_accuracy@{radius:g}"


def tradeoff_table(metrics: pd.DataFrame, sweeps: Mapping[str, Any], radii: Sequence[float]) -> pd.DataFrame:
    """One row per swept run, sweeps in their configured order, values in the sweep's order."""
    wanted = [CLEAN, *(certified(r) for r in radii), MEDIAN_RADIUS]
    rows = []
    for base, sweep in sweeps.items():
        for label, values in sweep_runs(sweep):
            run = metrics[metrics["method"] == label]
            if run.empty:
                raise KeyError(f"the metrics have no run {label!r} of the sweep {base!r}")
            row: dict[str, Any] = {"sweep": base, "method": label, **values, "n_seeds": int(run["seed"].nunique())}
            for name in wanted:
                per_seed = run.loc[run["metric"] == name, "value"].astype(float)
                if per_seed.empty:
                    raise KeyError(f"the metrics of run {label!r} have no {name!r}")
                row[name] = float(per_seed.mean())
                row[f"{name}_std"] = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def swept_params(sweeps: Mapping[str, Any]) -> list[str]:
    """Every swept parameter, in the order the sweeps name them."""
    return list(dict.fromkeys(p for sweep in sweeps.values() for p in sweep["params"]))


def tradeoff_display(table: pd.DataFrame, params: Sequence[str], radii: Sequence[float]) -> pd.DataFrame:
    """Accuracies in percent, 'mean ± std' over several seeds; a parameter a sweep does not
    vary is a dash in its rows."""
    out = pd.DataFrame({"sweep": table["sweep"], "run": table["method"]})
    for param in params:
        out[param] = ["—" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else str(v) for v in table[param]]
    out["seeds"] = table["n_seeds"]

    def cells(name: str, percent: bool) -> list[str]:
        return [mean_std(row[name], row[f"{name}_std"], int(row["n_seeds"]), percent) for _, row in table.iterrows()]

    out["clean (%)"] = cells(CLEAN, True)
    for r in radii:
        out[f"certified @{r:g} (%)"] = cells(certified(r), True)
    out["median certified radius"] = cells(MEDIAN_RADIUS, False)
    return out


TRADEOFF_NOTE = (
    "Mean ± sample standard deviation over seeds where there are several. Certified accuracy at r: the fraction "
    "of test examples with certified radius ≥ r (L2, pixels in [0, 1])."
)
