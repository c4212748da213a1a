"""Snakemake adapter: Fig. 3 and its table from every run's layer_bounds.csv."""

from lmt.report.stages import bound_comparison_stage
from lmt.script_support import run_labels, snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    bound_comparison_stage(
        snakemake.params.settings,  # noqa: F821
        list(snakemake.input),  # noqa: F821
        run_labels(snakemake.params.runs),  # noqa: F821
        stem(snakemake.output.figure_png),  # noqa: F821
        stem(snakemake.output.table_csv),  # noqa: F821
    )
