"""Snakemake adapter: Fig. 3 and its table from every run's layer_bounds.csv."""

from lmt.report.stages import bound_comparison_stage
from lmt.script_support import experiment_inputs, snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    out = snakemake.output  # noqa: F821
    bound_comparison_stage(*experiment_inputs(snakemake), stem(out.figure_png), stem(out.table_csv))  # noqa: F821
