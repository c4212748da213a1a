"""Per-example results → accuracy metrics per run → summary tables per method.

Definitions (all on the same test examples):

* certified accuracy at r: fraction with certified radius ≥ r (misclassified points have 0);
* accuracy under an attack at r: fraction whose attack distance is > r (a misclassified point
  has distance 0, an attack failure +inf); "all attacks" uses the smallest distance over every
  attack that was run, (D) of the inequality chain;
* the chain ratios (B)/(A), (C)/(B), (D)/(C): see :mod:`lmt.inequality_chain`;
* where the runs have randomized-smoothing columns (:mod:`lmt.smoothing`): the smoothed
  classifier's accuracy (fraction not abstained whose ``rs_prediction`` is the label) and its
  certified accuracy at r (those with ``rs_radius`` ≥ r as well). Probabilistic: each example's
  radius holds with probability ≥ 1 − α, and it certifies the smoothed classifier, not the
  network.

Every accuracy (a count of test examples) gets an exact binomial 95 % interval in the summary
(:mod:`lmt.report.intervals`): of the one seed's count, or of the count pooled over the seeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lmt.inequality_chain import chain_ratios
from lmt.report.formatting import interval, mean_std
from lmt.report.intervals import CONFIDENCE, clopper_pearson, successes
from lmt.soundness import attack_labels, attacked_rows

ALL_ATTACKS = "all_attacks"  # metric prefix of the smallest distance over the attacks
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"  # suffixes of an accuracy's confidence bounds in the summary


def run_metrics(examples: pd.DataFrame, radii: Sequence[float]) -> dict[str, float]:
    """Scalar metrics of one (method, seed) run. Clean, certified and smoothed accuracies count
    every example of the table; attack accuracies, success rates and distances only the attacked
    ones (``attacked``, the first ``attack.n_examples``; all where the column is absent)."""
    correct = examples["label"] == examples["prediction"]
    attacked = examples[attacked_rows(examples)]
    attacks = attack_labels(examples)
    distances = {a: attacked[f"{a}_distance"] for a in attacks}
    if attacks:
        distances[ALL_ATTACKS] = attacked["min_attack_distance"]
    metrics = {
        "n_examples": float(len(examples)),
        N_ATTACKED: float(len(attacked)) if attacks else 0.0,
        "clean_accuracy": float(correct.mean()),
        "median_certified_radius": float(examples["certified_radius"].median()),
    }
    if attacks:
        metrics["median_min_attack_distance"] = float(distances[ALL_ATTACKS].median())
    if "radius_without_rounding" in examples:  # what floating-point soundness costs (lmt.certify)
        exact = examples["radius_without_rounding"]
        positive = exact > 0
        loss = 1 - examples.loc[positive, "certified_radius"] / exact[positive]
        metrics["median_rounding_radius_loss"] = float(loss.median()) if positive.any() else 0.0
    for a in attacks:
        metrics[f"median_{a}_distance"] = float(distances[a].median())
        metrics[f"{a}_success_rate"] = float(attacked[f"{a}_success"].astype(bool).mean())
    for r in radii:
        metrics[f"certified_accuracy@{r:g}"] = float((examples["certified_radius"] >= r).mean())
        for name, dist in distances.items():
            metrics[f"{name}_accuracy@{r:g}"] = float((dist > r).mean())
    if "rs_radius" in examples:
        metrics.update(smoothing_metrics(examples, radii))
    return metrics


N_ATTACKED = "n_attacked"  # metric: how many examples the attacks ran on


def is_attack_metric(name: str) -> bool:
    """Whether a metric is counted over the attacked examples only (see :func:`run_metrics`)."""
    return name.endswith(("_success_rate", "_distance")) or (
        "_accuracy@" in name and not name.startswith(("certified_", f"{SMOOTHED}_"))
    )


SMOOTHED = "smoothed"  # metric prefix of the randomized-smoothing certificate


def smoothing_metrics(examples: pd.DataFrame, radii: Sequence[float]) -> dict[str, float]:
    """The smoothed classifier's accuracy, abstention rate, median radius over its correct
    predictions (0 elsewhere) and certified accuracy at each radius: the fraction of examples
    with ``rs_prediction`` = label, not abstained, and ``rs_radius`` ≥ r."""
    abstain = smoothed_abstained(examples)
    correct = smoothed_correct(examples)
    radius = examples["rs_radius"].where(correct, 0.0)
    metrics = {
        f"{SMOOTHED}_accuracy": float(correct.mean()),
        f"{SMOOTHED}_abstain_rate": float(abstain.mean()),
        f"median_{SMOOTHED}_radius": float(radius.median()),
    }
    for r in radii:
        metrics[f"{SMOOTHED}_certified_accuracy@{r:g}"] = float((correct & (examples["rs_radius"] >= r)).mean())
    return metrics


def smoothed_abstained(examples: pd.DataFrame) -> pd.Series:
    """Where the smoothed classifier abstained (``rs_abstain`` as read back from CSV: bool or text)."""
    return examples["rs_abstain"].astype(str).str.lower().isin(["true", "1", "1.0"])


def smoothed_correct(examples: pd.DataFrame) -> pd.Series:
    """Where the smoothed classifier predicted the label and did not abstain."""
    return (examples["rs_prediction"] == examples["label"]) & ~smoothed_abstained(examples)


def is_accuracy(name: str) -> bool:
    """Whether a metric is a fraction of the test examples (a binomial count, so it gets a
    confidence interval): clean, certified, under-attack and smoothed accuracies."""
    return name in ("clean_accuracy", f"{SMOOTHED}_accuracy") or "_accuracy@" in name


def metrics_table(runs: Iterable[tuple[str, int, pd.DataFrame]], radii: Sequence[float]) -> pd.DataFrame:
    """Tidy long table: method, seed, metric, value."""
    rows = [
        {"method": method, "seed": seed, "metric": name, "value": value}
        for method, seed, examples in runs
        for name, value in run_metrics(examples, radii).items()
    ]
    return pd.DataFrame(rows, columns=["method", "seed", "metric", "value"])


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per method: mean (and std over seeds) of every metric, in the metrics' order,
    then each accuracy's Clopper–Pearson bounds (``<metric>_ci_low``, ``<metric>_ci_high``)."""
    order = list(dict.fromkeys(metrics["metric"]))
    grouped = metrics.groupby(["method", "metric"], sort=False)["value"]
    mean = grouped.mean().unstack("metric")[order]
    std = grouped.std(ddof=1).unstack("metric")[order].add_suffix("_std")
    seeds = metrics.groupby("method", sort=False)["seed"].nunique().rename("n_seeds")
    return pd.concat([seeds, mean, std, pooled_intervals(metrics)], axis=1).reset_index()


def pooled_intervals(metrics: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per method, the Clopper–Pearson interval of every accuracy: of the count of one seed's n
    examples (``n_attacked`` for attack accuracies, else ``n_examples``), at the mean count over
    the method's seeds (rounded). The seeds share the test examples, so pooling their counts
    would treat repeats as new draws and overstate the precision; this interval bounds what the
    finite test set leaves open, the ± beside it the spread between trainings."""
    counts = metrics[metrics["metric"].isin(["n_examples", N_ATTACKED])].set_index(["method", "seed", "metric"])["value"]
    rows = metrics[metrics["metric"].map(is_accuracy)].copy()
    which_n = np.where(rows["metric"].map(is_attack_metric), N_ATTACKED, "n_examples")
    index = pd.MultiIndex.from_arrays([rows["method"], rows["seed"], which_n])
    rows["n"] = counts.reindex(index).to_numpy()
    rows["count"] = successes(rows["value"], rows["n"])
    per_method = rows.groupby(["method", "metric"], sort=False).agg(count=("count", "mean"), n=("n", "min"))
    bounds = [clopper_pearson(int(round(c)), int(k), confidence) for c, k in zip(per_method["count"], per_method["n"])]
    per_method[CI_LOW], per_method[CI_HIGH] = [b[0] for b in bounds], [b[1] for b in bounds]
    names = list(dict.fromkeys(rows["metric"]))
    wide = {side: per_method[side].unstack("metric") for side in (CI_LOW, CI_HIGH)}
    return pd.DataFrame({f"{name}{side}": wide[side][name] for name in names for side in (CI_LOW, CI_HIGH)})


def _headline(name: str) -> bool:
    """The summary's Markdown shows certified and all-attack accuracies and the two medians."""
    return name in ("n_examples", N_ATTACKED, "clean_accuracy", "median_certified_radius", "median_min_attack_distance",
                     f"{SMOOTHED}_accuracy") or (
        name.startswith(("certified_accuracy@", f"{ALL_ATTACKS}_accuracy@", f"{SMOOTHED}_certified_accuracy@"))
    )


def _cell(row: pd.Series, name: str) -> str:
    """'mean ± std' of one summary metric (percent for accuracies), then '[low, high]' where the
    summary has its confidence interval."""
    text = mean_std(row[name], row.get(f"{name}_std", float("nan")), int(row["n_seeds"]), "accuracy" in name)
    if f"{name}{CI_LOW}" in row.index and not pd.isna(row[name]):
        text += " " + interval(row[f"{name}{CI_LOW}"], row[f"{name}{CI_HIGH}"])
    return text


def _cells(summary: pd.DataFrame, name: str) -> list[str]:
    """One display cell of ``name`` per method (see :func:`_cell`)."""
    return [_cell(row, name) for _, row in summary.iterrows()]


def interval_note(confidence: float = CONFIDENCE) -> str:
    """What the tables' '±' and '[low, high]' mean, for the notes under them."""
    return (
        "Cells: mean ± sample standard deviation over the n seeds (column seeds; no ± with one seed). "
        "Accuracies in %, followed by [low, high]: the Clopper–Pearson (exact binomial) "
        f"{100 * confidence:g} % confidence interval over the test examples (of one seed's count; with several "
        "seeds, at the mean count), so it shows what the finite test set leaves open, the ± what the training "
        "seed changes. Attack accuracies count the attacked examples only (column attacked)."
    )


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """The headline columns with accuracies in percent ('mean ± std' over several seeds); the
    per-attack columns are in the attack table, all of them in summary.csv. Randomized
    smoothing's columns (where present) are headed "RS … (p ≥ 1−α)": probabilistic. Accuracy
    cells end with their confidence interval, '[low, high]' (see :func:`interval_note`)."""
    out = pd.DataFrame({"method": summary["method"], "seeds": summary["n_seeds"]})
    for name in summary.columns:
        if name in ("method", "n_seeds") or name.endswith(("_std", CI_LOW, CI_HIGH)) or not _headline(name):
            continue
        if name in ("n_examples", N_ATTACKED):
            out["examples" if name == "n_examples" else "attacked"] = summary[name].astype(int)
            continue
        header = name.replace("_accuracy@", " acc. @").replace("_", " ")
        if name.startswith(SMOOTHED):  # probabilistic, per example (see the table's note)
            header = header.replace(f"{SMOOTHED} ", "RS ") + " (p ≥ 1−α)"
        out[header + (" (%)" if "accuracy" in name else "")] = _cells(summary, name)
    return out


def table1(summary: pd.DataFrame, attack: str, radii: Sequence[float]) -> pd.DataFrame:
    """Table 1 of the paper: per method, clean accuracy, accuracy under ``attack`` (the
    fraction with attack distance > r) and the certified fraction (radius ≥ r) at each r;
    means and standard deviations over seeds, and the confidence bounds where the summary has them."""
    columns = ["clean_accuracy"]
    for r in radii:
        columns += [f"{attack}_accuracy@{r:g}", f"certified_accuracy@{r:g}"]
    missing = [c for c in columns if c not in summary.columns]
    if missing:
        raise KeyError(f"the summary has no {missing}: was attack {attack!r} run?")
    suffixes = ("", "_std", CI_LOW, CI_HIGH)
    keep = ["method", "n_seeds"] + [f"{name}{s}" for name in columns for s in suffixes if f"{name}{s}" in summary]
    return summary[keep].copy()


def table1_display(table: pd.DataFrame, attack: str, radii: Sequence[float]) -> pd.DataFrame:
    """Table 1 in percent: one 'under <attack>' and one 'certified' column per radius; each cell
    'mean ± std [low, high]' (see :func:`interval_note`)."""
    label = "all attacks" if attack == ALL_ATTACKS else attack
    out = pd.DataFrame({"method": table["method"], "seeds": table["n_seeds"]})
    out["clean (%)"] = _cells(table, "clean_accuracy")
    for r in radii:
        out[f"{label} @{r:g} (%)"] = _cells(table, f"{attack}_accuracy@{r:g}")
        out[f"certified @{r:g} (%)"] = _cells(table, f"certified_accuracy@{r:g}")
    return out


def attack_table(summary: pd.DataFrame, attacks: Sequence[str], radii: Sequence[float]) -> pd.DataFrame:
    """One row per (method, attack), means over seeds: success rate, median distance, accuracy
    under the attack at every radius; plus an ``all_attacks`` row (the smallest distance)."""
    rows = []
    for _, row in summary.iterrows():
        for a in [*attacks, ALL_ATTACKS]:
            single = a != ALL_ATTACKS
            out = {
                "method": row["method"],
                "attack": a,
                "n_seeds": int(row["n_seeds"]),
                "success_rate": row[f"{a}_success_rate"] if single else float("nan"),
                "median_distance": row[f"median_{a}_distance" if single else "median_min_attack_distance"],
            }
            for r in radii:
                out[f"accuracy@{r:g}"] = row[f"{a}_accuracy@{r:g}"]
            rows.append(out)
    return pd.DataFrame(rows)


def attack_display(table: pd.DataFrame) -> pd.DataFrame:
    """The attack table with rates in percent (means over seeds)."""
    out = table.copy()
    for column in out.columns:
        if column == "success_rate" or column.startswith("accuracy@"):
            out[column] = [("—" if pd.isna(v) else f"{100 * v:.1f}") for v in out[column]]
    out["median_distance"] = [f"{v:.3f}" for v in out["median_distance"]]
    out.columns = [
        c.replace("accuracy@", "acc. @").replace("_", " ") + (" (%)" if ("acc" in c or c == "success_rate") else "")
        for c in out.columns
    ]
    return out


def chain_table(runs: Iterable[tuple[str, int, pd.DataFrame]]) -> pd.DataFrame:
    """Chain ratios per (method, seed): one row per ratio with median, mean and counts."""
    frames = []
    for method, seed, examples in runs:
        ratios = chain_ratios(examples)
        ratios.insert(0, "seed", seed)
        ratios.insert(0, "method", method)
        frames.append(ratios)
    return pd.concat(frames, ignore_index=True)


CHAIN_NOTE = (
    "Median (mean) over the examples where both values are finite and positive. (A) certified "
    "radius, (B) margin / global gradient-based Lipschitz lower bound, (C) margin / per-batch "
    "lower bound, (D) smallest attack distance."
)


def chain_display(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, seed), median (mean) of each ratio."""
    rows = []
    for (method, seed), group in table.groupby(["method", "seed"], sort=False):
        row = {"method": method, "seed": seed}
        for _, r in group.iterrows():
            row[r["ratio"]] = f"{r['median']:.3g} ({r['mean']:.3g}), n = {r['n_examples']}"
        rows.append(row)
    return pd.DataFrame(rows)
