"""Snakemake adapter: verified published numbers beside ours."""

from lmt.report.stages import published_stage
from lmt.script_support import snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    published_stage(
        snakemake.params.settings,  # noqa: F821
        snakemake.input.summary,  # noqa: F821
        snakemake.input.chain,  # noqa: F821
        stem(snakemake.output.csv),  # noqa: F821
    )
