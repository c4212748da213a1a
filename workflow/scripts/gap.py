"""Snakemake adapter: the certificate–attack gap table and figure from the per-example tables."""

from lmt.report.stages import gap_stage
from lmt.script_support import experiment_inputs, snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    out = snakemake.output  # noqa: F821
    gap_stage(*experiment_inputs(snakemake), stem(out.figure_png), stem(out.table_csv))  # noqa: F821
