"""Snakemake adapter: gradient-based lower bounds (B) and (C) of the inequality chain."""

from lmt.pipeline import gradient_bounds_stage
from lmt.script_support import snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    gradient_bounds_stage(
        snakemake.params.settings,  # noqa: F821
        snakemake.input.model,  # noqa: F821
        snakemake.output.examples,  # noqa: F821
        snakemake.output.bounds,  # noqa: F821
    )
