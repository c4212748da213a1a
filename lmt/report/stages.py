"""The experiment-level stages: every table and figure of one experiment from its runs' files.

Shared by the Snakemake rules (workflow/rules/analysis.smk, report.smk) and the ``lmt-bench``
CLI. Each stage takes the subset of the experiment's settings that it reads
(:mod:`lmt.stage_config`). Tables go to ``<stem>.csv``/``.md``/``.tex``, figures to
``<stem>.png``/``.pdf``; each output set gets a ``<stem>.provenance.json`` (that subset,
package versions, git revision, device, wall time, inputs). Every file is written atomically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lmt import stage_config
from lmt.bounds.comparison import COLUMNS
from lmt.io import atomic_path, write_csv, write_json
from lmt.paths import FIGURE_FORMATS, ExperimentPaths
from lmt.provenance import record
from lmt.report.bound_figure import bound_comparison_table, plot_bound_comparison
from lmt.report.chain_figure import plot_chain_ratios
from lmt.report.accuracy_figure import plot_accuracy_vs_radius
from lmt.report.formatting import write_table
from lmt.report.gap import RS_RADIUS, gap_display, gap_note, gap_table, plot_gap
from lmt.report.perturbations import PerturbationPanel, certified_perturbation_figure
from lmt.report.published import comparison_display, comparison_table, published_numbers
from lmt.report.scatter_figure import plot_certified_vs_attack
from lmt.report.tradeoff_figure import plot_tradeoff
from lmt.report.tradeoff_table import TRADEOFF_NOTE, swept_params, tradeoff_display, tradeoff_table
from lmt.report.tables import (
    CHAIN_NOTE,
    attack_display,
    attack_table,
    chain_display,
    chain_table,
    interval_note,
    metrics_table,
    summary_display,
    summary_table,
    table1,
    table1_display,
)
from lmt.run import prepare_stage
from lmt.soundness import attack_labels
from lmt.stage_config import StageConfig
from lmt.train import load_trained

Runs = list[tuple[str, int, pd.DataFrame]]


def read_runs(paths: Sequence[str], labels: Sequence[tuple[str, int]]) -> Runs:
    """(method, seed, table) per run, in the configured order."""
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} files for {len(labels)} runs")
    return [(method, seed, pd.read_csv(path)) for path, (method, seed) in zip(paths, labels)]


def _provenance(stem: str | Path, config: StageConfig, started: float, inputs: Sequence[str]) -> None:
    write_json(
        Path(f"{stem}.provenance.json"),
        record(config, "cpu", time.perf_counter() - started, inputs=[str(p) for p in inputs]),
    )


def save_figure(fig: Any, stem: str | Path, formats: Sequence[str] = FIGURE_FORMATS) -> None:
    """``stem``.<format> for each format, each written atomically; closes the figure."""
    import matplotlib.pyplot as plt

    for fmt in formats:
        with atomic_path(Path(f"{stem}.{fmt}")) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150)
    plt.close(fig)


def aggregate_stage(
    config: StageConfig, example_paths: Sequence[str], labels: Sequence[tuple[str, int]],
    metrics_csv: str, summary_stem: str, attacks_stem: str, table1_stem: str,
) -> pd.DataFrame:
    """Long metrics per run; the per-method summary; the per-(method, attack) table; Table 1."""
    started = time.perf_counter()
    radii = config["report"]["radii"]
    runs = read_runs(example_paths, labels)
    metrics = metrics_table(runs, radii)
    summary = summary_table(metrics)
    write_csv(metrics_csv, metrics)
    seeds_note = interval_note()
    summary_note = seeds_note
    if "smoothing" in config:  # randomized smoothing is on: say what its columns guarantee
        smoothing = config["smoothing"]
        summary_note += (
            f" RS: randomized smoothing (Cohen et al. 2019, σ = {smoothing['sigma']:g}); RS certified accuracy at r "
            f"counts examples whose smoothed prediction is the label, not abstained, with radius ≥ r. Probabilistic: "
            f"each radius holds with probability ≥ 1 − α = {1 - smoothing['alpha']:g} per example, for the "
            "smoothed classifier, not the network itself (so it is not compared with attack distances).")
    write_table(summary_stem, summary, summary_display(summary),
                "Clean, certified and under-attack accuracy per method.", summary_note)
    per_attack = attack_table(summary, attack_labels(runs[0][2]), radii)
    write_table(attacks_stem, per_attack, attack_display(per_attack),
                "Accuracy under each attack (distance > r) and median distance per method.",
                "Means over seeds; all_attacks: the smallest distance over every attack.")
    attack = config["report"]["table1_attack"]
    first = table1(summary, attack, radii)
    write_table(table1_stem, first, table1_display(first, attack, radii),
                f"Table 1: clean accuracy, accuracy under {attack} (distance > r) and certified fraction (radius ≥ r).",
                seeds_note)
    for stem in (summary_stem, attacks_stem, table1_stem):
        _provenance(stem, config, started, example_paths)
    return summary


def chain_stage(
    config: StageConfig, example_paths: Sequence[str], labels: Sequence[tuple[str, int]], stem: str
) -> pd.DataFrame:
    """Ratios (B)/(A), (C)/(B), (D)/(C) of the inequality chain per (method, seed)."""
    started = time.perf_counter()
    table = chain_table(read_runs(example_paths, labels))
    write_table(stem, table, chain_display(table), "Inequality-chain ratios (Fig. 4).", CHAIN_NOTE)
    _provenance(stem, config, started, example_paths)
    return table


def published_stage(config: StageConfig, summary_csv: str, chain_csv: str, stem: str) -> pd.DataFrame:
    """Verified published numbers of ``report.published`` beside ours."""
    started = time.perf_counter()
    table = comparison_table(config["report"]["published"], pd.read_csv(summary_csv), pd.read_csv(chain_csv),
                             config.get("model"))
    write_table(stem, table, comparison_display(table),
                "Published numbers (verified only, with their sources) beside ours.",
                "Ours: mean ± standard deviation over seeds, at this experiment's scale and budgets.")
    _provenance(stem, config, started, [summary_csv, chain_csv])
    return table


def accuracy_figure_stage(
    config: StageConfig, example_paths: Sequence[str], labels: Sequence[tuple[str, int]], stem: str
) -> None:
    """Certified and under-attack accuracy over [0, 1.5 × the largest tabulated radius]."""
    started = time.perf_counter()
    fig = plot_accuracy_vs_radius(read_runs(example_paths, labels), 1.5 * max(config["report"]["radii"]),
                                  config["experiment"])
    save_figure(fig, stem)
    _provenance(stem, config, started, example_paths)


def bound_comparison_stage(
    config: StageConfig, layer_bound_paths: Sequence[str], labels: Sequence[tuple[str, int]],
    figure_stem: str, table_stem: str,
) -> None:
    """Fig. 3 and its table: per-layer and network bounds by every method."""
    started = time.perf_counter()
    runs = read_runs(layer_bound_paths, labels)
    table = bound_comparison_table(runs)
    display = table[["method", "seed", "layer", "type", *COLUMNS, "certified"]].copy()
    for column in display.columns[4:]:
        display[column] = [f"{v:.4g}" for v in display[column]]
    write_table(table_stem, table, display, "Operator-norm bounds per layer and for the network (Fig. 3).",
                "thm1_2: power iteration with the Thm 2 error term; certified: the bound the certificate used.")
    save_figure(plot_bound_comparison(runs, config["experiment"]), figure_stem)
    for stem in (table_stem, figure_stem):
        _provenance(stem, config, started, layer_bound_paths)


def _published_ratios(config: StageConfig) -> dict[tuple[str, str], float]:
    chosen = config["report"]["published"]
    return {
        (n.method, n.metric[len("chain:"):]): n.value
        for n in (published_numbers(chosen) if chosen is not None else ())
        if n.metric.startswith("chain:")
    }


def chain_figure_stage(
    config: StageConfig, example_paths: Sequence[str], labels: Sequence[tuple[str, int]], stem: str
) -> None:
    """Fig. 4: the chain ratios per example, with the paper's medians where verified."""
    started = time.perf_counter()
    fig = plot_chain_ratios(read_runs(example_paths, labels), _published_ratios(config), config["experiment"])
    save_figure(fig, stem)
    _provenance(stem, config, started, example_paths)


def scatter_figure_stage(
    config: StageConfig, example_paths: Sequence[str], labels: Sequence[tuple[str, int]], stem: str
) -> None:
    """Certified radius against the smallest attack distance, per example."""
    started = time.perf_counter()
    save_figure(plot_certified_vs_attack(read_runs(example_paths, labels), config["experiment"]), stem)
    _provenance(stem, config, started, example_paths)


def gap_stage(
    config: StageConfig, example_paths: Sequence[str], labels: Sequence[tuple[str, int]],
    figure_stem: str, table_stem: str,
) -> pd.DataFrame:
    """The certificate–attack gap (:mod:`lmt.report.gap`): per method, the per-example intervals
    [best deterministic certificate, smallest attack distance] summarised, and drawn."""
    started = time.perf_counter()
    runs = read_runs(example_paths, labels)
    table = gap_table(runs)
    smoothed = any(RS_RADIUS in examples for _, _, examples in runs)
    write_table(table_stem, table, gap_display(table),
                "Certificate–attack gap: per example [best certified radius, smallest attack distance].",
                gap_note(config.get("smoothing"), smoothed))
    save_figure(plot_gap(runs, config["experiment"]), figure_stem)
    for stem in (table_stem, figure_stem):
        _provenance(stem, config, started, example_paths)
    return table


def tradeoff_stage(config: StageConfig, metrics_csv: str, figure_stem: str, table_stem: str) -> pd.DataFrame:
    """Each sweep's clean against certified accuracy per swept value: the table (every radius,
    the median certified radius) and the figure (at ``report.tradeoff_radius``, resolved)."""
    started = time.perf_counter()
    sweeps, radii = config["sweeps"], config["report"]["radii"]
    table = tradeoff_table(pd.read_csv(metrics_csv), sweeps, radii)
    write_table(table_stem, table, tradeoff_display(table, swept_params(sweeps), radii),
                "Clean and certified accuracy per swept value.", TRADEOFF_NOTE)
    save_figure(plot_tradeoff(table, sweeps, config["report"]["tradeoff_radius"], config["experiment"]), figure_stem)
    for stem in (table_stem, figure_stem):
        _provenance(stem, config, started, [metrics_csv])
    return table


def perturbation_figure_stage(
    config: StageConfig, model_paths: Sequence[str], example_paths: Sequence[str],
    labels: Sequence[tuple[str, int]], stem: str,
) -> None:
    """Fig. 5: for the first seed of each method, the first ``report.n_perturbation_examples``
    test examples with a positive certified radius, beside perturbations of that size."""
    started = time.perf_counter()
    test = prepare_stage(config).test
    count = config["report"]["n_perturbation_examples"]
    panels, seen = [], set()
    for model_path, examples_path, (method, _) in zip(model_paths, example_paths, labels):
        if method in seen:
            continue
        seen.add(method)
        examples = pd.read_csv(examples_path)
        chosen = examples[examples["certified_radius"] > 0].head(count)
        if chosen.empty:
            continue  # nothing certified: nothing to show for this method
        ids = torch.as_tensor(chosen["example_id"].to_numpy())
        # Strictly inside the certified ball (the certificate covers ‖δ‖ < r).
        radii = torch.as_tensor(chosen["certified_radius"].to_numpy() * (1 - 1e-6), dtype=torch.float32)
        model = load_trained(model_path, "cpu").model
        panels.append(PerturbationPanel(method, model, test.x[ids], test.y[ids], radii))
    if not panels:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.text(0.5, 0.5, f"{config['experiment']}: no method certified any test example (first seed):\n"
                "every certified radius is 0, so there is no perturbation to show", ha="center", va="center")
        ax.axis("off")
    else:
        fig = certified_perturbation_figure(panels, config["experiment"])
    save_figure(fig, stem)
    _provenance(stem, config, started, [*model_paths, *example_paths])


def report_experiment(experiment: Mapping[str, Any], labels: Sequence[tuple[str, int]]) -> list[str]:
    """Every table and figure of one experiment (its whole resolved settings) from the runs'
    files at their standard paths (what the Snakemake rules produce), each stage given its
    subset of the settings; returns the Markdown tables' paths."""
    paths = ExperimentPaths(experiment["experiment"])
    runs = [paths.run(method, seed) for method, seed in labels]
    examples = [run.examples for run in runs]
    table, figure = (lambda t: paths.table(t).stem), (lambda f: paths.figure(f).stem)
    aggregate_stage(stage_config.aggregate(experiment), examples, labels, paths.metrics,
                    table("summary"), table("attacks"), table("table1"))
    chain_stage(stage_config.inequality_chain(experiment), examples, labels, table("inequality_chain"))
    gap_stage(stage_config.gap(experiment), examples, labels, figure("gap"), table("gap"))
    written = [paths.table(t) for t in ("table1", "summary", "attacks", "inequality_chain", "gap")]
    if experiment["report"]["published"] is not None:
        published_stage(stage_config.published_comparison(experiment), paths.table("summary").files["csv"],
                        paths.table("inequality_chain").files["csv"], table("published"))
        written.append(paths.table("published"))
    accuracy_figure_stage(stage_config.accuracy_figure(experiment), examples, labels, figure("accuracy_vs_radius"))
    chain_figure_stage(stage_config.chain_figure(experiment), examples, labels, figure("inequality_chain"))
    scatter_figure_stage(stage_config.titled_figure(experiment), examples, labels, figure("certified_vs_attack"))
    bound_comparison_stage(stage_config.titled_figure(experiment), [run.layer_bounds for run in runs], labels,
                           figure("bound_comparison"), table("bound_comparison"))
    perturbation_figure_stage(stage_config.perturbation_figure(experiment), [run.model for run in runs],
                              examples, labels, figure("certified_perturbations"))
    if experiment["sweeps"]:
        tradeoff_stage(stage_config.tradeoff(experiment), paths.metrics, figure("tradeoff"), table("tradeoff"))
        written.append(paths.table("tradeoff"))
    return [output.files["md"] for output in written]
