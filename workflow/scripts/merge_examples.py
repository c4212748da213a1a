"""Snakemake adapter: join certificates, gradient bounds, randomized smoothing (where
configured) and attack distances, with the soundness gate."""

from lmt.paths import RunPaths
from lmt.pipeline import merge_stage
from lmt.script_support import snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    wildcards = snakemake.wildcards  # noqa: F821
    merge_stage(
        snakemake.input.certified,  # noqa: F821
        snakemake.input.gradient,  # noqa: F821
        dict(zip(snakemake.params.attacks, snakemake.input.attacks)),  # noqa: F821
        snakemake.output.examples,  # noqa: F821
        run_label=RunPaths.of(wildcards.experiment, wildcards.method, wildcards.seed).label,
        smoothing_csv=smoothing[0] if (smoothing := list(snakemake.input.smoothing)) else None,  # noqa: F821
    )
