"""Where results live; shared by the Snakemake rules and the CLI so both write the same tree."""

from __future__ import annotations


def results_dir(experiment: str) -> str:
    return f"results/{experiment}"


def run_dir(experiment: str, method: str, seed: int | str) -> str:
    """One (method, seed) run; the wildcards "{method}" and "{seed}" pass through unchanged."""
    return f"{results_dir(experiment)}/runs/{method}/seed{seed}"


TABLES = ("summary", "attacks", "table1", "inequality_chain", "bound_comparison")
FIGURES = ("accuracy_vs_radius", "bound_comparison", "inequality_chain", "certified_vs_attack",
           "certified_perturbations")


def table_stem(experiment: str, name: str) -> str:
    """``<stem>.csv``, ``.md`` and ``.tex`` of one table."""
    return f"{results_dir(experiment)}/tables/{name}"


def figure_stem(experiment: str, name: str) -> str:
    """``<stem>.png`` and ``.pdf`` of one figure."""
    return f"{results_dir(experiment)}/figures/{name}"


def experiment_outputs(experiment: str, published: bool) -> list[str]:
    """Every table and figure file of one experiment (the published comparison only where the
    experiment names a published set)."""
    tables = [*TABLES, "published"] if published else list(TABLES)
    return [f"{table_stem(experiment, t)}.{ext}" for t in tables for ext in ("csv", "md", "tex")] + [
        f"{figure_stem(experiment, f)}.{ext}" for f in FIGURES for ext in ("png", "pdf")
    ]
