"""Snakemake adapter: summary tables over every run."""

from lmt.pipeline import aggregate_stage
from lmt.script_support import run_labels, snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    aggregate_stage(
        list(snakemake.input),  # noqa: F821
        run_labels(snakemake.params.runs),  # noqa: F821
        snakemake.params.radii,  # noqa: F821
        snakemake.output.metrics,  # noqa: F821
        snakemake.output.summary,  # noqa: F821
        snakemake.output.markdown,  # noqa: F821
        snakemake.output.attacks,  # noqa: F821
        snakemake.output.attacks_markdown,  # noqa: F821
    )
