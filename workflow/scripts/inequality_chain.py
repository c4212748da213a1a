"""Snakemake adapter: the inequality-chain ratio table over every run."""

from lmt.pipeline import chain_stage
from lmt.script_support import run_labels, snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    chain_stage(
        list(snakemake.input),  # noqa: F821
        run_labels(snakemake.params.runs),  # noqa: F821
        snakemake.output.table,  # noqa: F821
        snakemake.output.markdown,  # noqa: F821
    )
