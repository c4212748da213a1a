"""One table across a config's experiments at one radius: what ``lmt-bench overview`` writes.

Each experiment's own published file (:mod:`lmt.publish`) compares the methods it trained on one
network; a reader of ``config/modern_mnist.yaml`` wants one row per (network, method) at the
radius of the literature (1.58 on MNIST) — clean and certified accuracy with their confidence
intervals, the median certified radius, randomized smoothing's probabilistic certified accuracy
where the experiment has it, and the training wall time — with the published anchors of the
config's ``report.published`` set below it. Every cell is read from the run's
``tables/summary.csv`` and Snakemake benchmarks; the revisions come from the same provenance
records that ``publish`` reads (and it refuses a dirty or mixed run the same way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lmt.io import atomic_path
from lmt.publish import (
    PublishError, benchmark_seconds, check_settings, duration, load_settings, machine_of, provenance_records,
    revision_lines_of, shown_path,
)
from lmt.report.formatting import interval, mean_std
from lmt.report.stages import save_figure


def _radius_key(radius: float) -> str:
    return f"{radius:g}"


def overview_rows(results_dir: Path, experiments: Sequence[str], models: dict[str, str], radius: float) -> pd.DataFrame:
    """One row per (experiment, method) with the numbers at ``radius`` (fractions, seconds)."""
    r = _radius_key(radius)
    rows = []
    for experiment in experiments:
        path = results_dir / experiment / "tables" / "summary.csv"
        if not path.exists():
            raise PublishError(f"missing {path}: run the experiment's aggregate stage first")
        summary = pd.read_csv(path)
        if f"certified_accuracy@{r}" not in summary.columns:
            raise PublishError(f"{path} has no certified accuracy at radius {r} (report.radii must include it)")
        for row in summary.to_dict("records"):
            times = [seconds for job, seconds in benchmark_seconds(results_dir / experiment).items()
                     if job.startswith(f"train/{row['method']}_seed")]
            rows.append({
                "experiment": experiment, "model": models[experiment], "method": row["method"],
                "n_seeds": int(row["n_seeds"]), "n_examples": row["n_examples"],
                **{key: row.get(key, math.nan) for key in (
                    "clean_accuracy", "clean_accuracy_std", "clean_accuracy_ci_low", "clean_accuracy_ci_high",
                    f"certified_accuracy@{r}", f"certified_accuracy@{r}_std", f"certified_accuracy@{r}_ci_low",
                    f"certified_accuracy@{r}_ci_high", "median_certified_radius", "median_certified_radius_std",
                    f"smoothed_certified_accuracy@{r}", f"smoothed_certified_accuracy@{r}_std",
                    f"smoothed_certified_accuracy@{r}_ci_low", f"smoothed_certified_accuracy@{r}_ci_high",
                )},
                "train_seconds": sum(times) / len(times) if times else math.nan,
            })
    return pd.DataFrame(rows)


def overview_display(rows: pd.DataFrame, radius: float) -> pd.DataFrame:
    """The formatted table: 'mean ± std [CI]' accuracies, the radius, minutes of training."""
    r = _radius_key(radius)

    def accuracy(row: pd.Series, key: str) -> str:
        if math.isnan(row[key]):
            return "—"
        return (f"{mean_std(row[key], row[f'{key}_std'], row['n_seeds'], True)} "
                f"{interval(row[f'{key}_ci_low'], row[f'{key}_ci_high'])}")

    return pd.DataFrame({
        "network": rows["model"],
        "method": rows["method"],
        "seeds": rows["n_seeds"],
        "test examples": [f"{n:g}" for n in rows["n_examples"]],
        "clean (%)": [accuracy(row, "clean_accuracy") for _, row in rows.iterrows()],
        f"certified @{r} (%)": [accuracy(row, f"certified_accuracy@{r}") for _, row in rows.iterrows()],
        "median certified radius": [mean_std(row["median_certified_radius"], row["median_certified_radius_std"],
                                             row["n_seeds"], False) for _, row in rows.iterrows()],
        f"RS certified @{r} (%, probabilistic)": [accuracy(row, f"smoothed_certified_accuracy@{r}")
                                                  for _, row in rows.iterrows()],
        "training (wall, per seed)": [duration(s) if not math.isnan(s) else "—" for s in rows["train_seconds"]],
    })


def anchors_display(published_sets: Sequence[str], radius: float) -> pd.DataFrame:
    """The published sets' numbers at ``radius`` (certified, and randomized smoothing's
    probabilistic ones), and clean accuracies, each with its source."""
    from lmt.report.published import published_numbers

    r = _radius_key(radius)
    wanted = {"clean_accuracy", f"certified_accuracy@{r}", f"smoothed_certified_accuracy@{r}"}
    return pd.DataFrame([
        {"method": n.method, "quantity": n.quantity, "value": f"{n.value:g} {n.unit}", "status": n.status,
         "source": n.source}
        for published_set in published_sets for n in published_numbers(published_set) if n.metric in wanted
    ])


def accuracy_figure(results_dir: Path, rows: pd.DataFrame, max_radius: float) -> Any:
    """Certified accuracy against the radius for every (network, method) row of the overview in
    one figure — the deterministic certificates solid, randomized smoothing's (probabilistic,
    of the smoothed classifier) dotted — from each seed's per-example table."""
    from lmt.report.accuracy_figure import plot_accuracy_vs_radius

    runs = []
    for row in rows.itertuples():
        paths = sorted((results_dir / row.experiment / "runs" / row.method).glob("seed*/examples.csv"))
        if not paths:
            raise PublishError(f"no per-example table (examples.csv) for {row.experiment}/{row.method} under "
                               f"{results_dir}")
        runs += [(f"{row.model}: {row.method}", int(p.parent.name.removeprefix("seed")), pd.read_csv(p))
                 for p in paths]
    return plot_accuracy_vs_radius(runs, max_radius, "certified accuracy, every network and certificate kind",
                                   curves=("certified", "smoothed"))


def write_overview(results_dir: str | Path, config: str | Path, radius: float, out: str | Path,
                   experiments: Sequence[str] | None = None, allow_dirty: bool = False) -> Path:
    """Write the overview of ``config``'s experiments (or only ``experiments``) in
    ``results_dir`` at ``radius`` to the Markdown file ``out``; every experiment is checked
    (present, clean revision, settings as configured) before the file is written."""
    from lmt.config import load_config

    results_dir = Path(results_dir)
    experiments = list(experiments or load_config(config)["experiments"])
    settings = load_settings(config, experiments)
    revision_lines, machines = [], set()
    for experiment in experiments:
        experiment_dir = results_dir / experiment
        records = provenance_records(experiment_dir) if experiment_dir.is_dir() else []
        if not records:
            raise PublishError(f"no results for experiment {experiment!r} under {results_dir}")
        check_settings(settings[experiment], records, experiment_dir)
        revision_lines += [line.replace("- ", f"- `{experiment}`: ", 1)
                           for line in revision_lines_of(records, experiment_dir, allow_dirty)]
        machines.add(machine_of(records))
    rows = overview_rows(results_dir, experiments, {e: settings[e]["model"] for e in experiments}, radius)
    published = {settings[e].get("report", {}).get("published") for e in experiments} - {None}
    anchors = anchors_display(sorted(published), radius)
    r = _radius_key(radius)
    lines = [
        f"# Overview of `{shown_path(config)}` at radius {r}",
        "",
        f"Written by `lmt-bench overview` from `{results_dir.name}/`; do not edit by hand. Each experiment's own "
        "file beside this one has its full provenance, tables and figures.",
        "",
        "## Provenance",
        "",
        *revision_lines,
        f"- machine: {'; '.join(sorted(machines))}",
        "",
        f"## Overview at {r}",
        "",
        overview_display(rows, radius).to_markdown(index=False),
        "",
        "Accuracies over the test examples each experiment certified (column seeds: training seeds; ± the "
        "standard deviation over seeds), with Clopper–Pearson 95 % intervals. Certified: the deterministic "
        "certificate of the network itself. RS: randomized smoothing, a certificate of another classifier (the "
        "smoothed one) that holds with probability ≥ 1 − α per example. Training: wall time of one seed's training "
        "job (its Snakemake benchmark) as it ran: jobs sharing the machine make it longer.",
        "",
    ]
    if not anchors.empty:
        lines += ["## Published numbers", "", anchors.to_markdown(index=False), ""]
    out = Path(out)
    figure = accuracy_figure(results_dir, rows, max(max(settings[e]["report"]["radii"]) for e in experiments))
    lines += ["## Figure", "", f"![certified accuracy against the radius]({out.with_suffix('.png').name})", "",
              "Certified accuracy against the L2 radius for every network and method: solid, the network's own "
              "deterministic certificate; dotted, randomized smoothing's (probabilistic, of the smoothed "
              "classifier).", ""]
    save_figure(figure, out.with_suffix(""), formats=("png",))
    with atomic_path(out) as tmp:
        Path(tmp).write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return out
