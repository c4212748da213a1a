"""Snakemake adapter: Fig. 5 (test images beside perturbations of their certified size)."""

from lmt.report.stages import perturbation_figure_stage
from lmt.script_support import run_labels, snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    perturbation_figure_stage(
        snakemake.params.settings,  # noqa: F821
        list(snakemake.input.models),  # noqa: F821
        list(snakemake.input.examples),  # noqa: F821
        run_labels(snakemake.params.runs),  # noqa: F821
        stem(snakemake.output.png),  # noqa: F821
    )
