"""Snakemake adapter: certified radii of one trained model."""

from lmt.pipeline import certify_stage
from lmt.script_support import snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    certify_stage(
        snakemake.params.settings,  # noqa: F821
        snakemake.input.model,  # noqa: F821
        snakemake.output.examples,  # noqa: F821
        snakemake.output.bounds,  # noqa: F821
    )
