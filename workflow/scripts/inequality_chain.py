"""Snakemake adapter: the inequality-chain ratio table."""

from lmt.report.stages import chain_stage
from lmt.script_support import run_labels, snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    chain_stage(
        snakemake.params.settings,  # noqa: F821
        list(snakemake.input),  # noqa: F821
        run_labels(snakemake.params.runs),  # noqa: F821
        stem(snakemake.output.csv),  # noqa: F821
    )
