"""Snakemake adapter: train one (method, seed) run."""

from lmt.pipeline import train_stage
from lmt.script_support import snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    train_stage(
        snakemake.params.settings,  # noqa: F821
        model_path=snakemake.output.model,  # noqa: F821
        log_path=snakemake.output.log,  # noqa: F821
        resume_path=snakemake.params.resume,  # noqa: F821
    )
