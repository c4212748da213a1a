"""Snakemake adapter: one configured attack's minimal distances for one trained model."""

from lmt.pipeline import attack_stage
from lmt.script_support import snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    attack_stage(
        snakemake.params.settings,  # noqa: F821
        snakemake.input.model,  # noqa: F821
        snakemake.output.examples,  # noqa: F821
    )
