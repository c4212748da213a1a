"""Snakemake adapter: the trade-off table and figure of an experiment's sweeps."""

from lmt.report.stages import tradeoff_stage
from lmt.script_support import snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    out = snakemake.output  # noqa: F821
    tradeoff_stage(snakemake.params.settings, snakemake.input[0], stem(out.figure_png), stem(out.table_csv))  # noqa: F821
