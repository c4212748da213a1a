"""Where results live; shared by the Snakemake rules and the CLI so both write the same tree."""

from __future__ import annotations


def results_dir(experiment: str) -> str:
    return f"results/{experiment}"


def run_dir(experiment: str, method: str, seed: int | str) -> str:
    """One (method, seed) run; the wildcards "{method}" and "{seed}" pass through unchanged."""
    return f"{results_dir(experiment)}/runs/{method}/seed{seed}"
