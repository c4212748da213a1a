"""Snakemake adapter: the inequality-chain ratio table."""

from lmt.report.stages import chain_stage
from lmt.script_support import experiment_inputs, snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    chain_stage(*experiment_inputs(snakemake), stem(snakemake.output.csv))  # noqa: F821
