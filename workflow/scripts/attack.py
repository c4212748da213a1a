"""Snakemake adapter: one configured attack's minimal distances for one trained model."""

from lmt.pipeline import attack_stage
from lmt.script_support import job_config, snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    attack_stage(
        job_config(snakemake),  # noqa: F821
        snakemake.input.model,  # noqa: F821
        snakemake.wildcards.attack,  # noqa: F821
        snakemake.output.examples,  # noqa: F821
    )
