"""Snakemake adapter: the accuracy-vs-radius figure (PNG and PDF)."""

from lmt.pipeline import plot_stage
from lmt.script_support import run_labels, snakemake_job

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    plot_stage(
        list(snakemake.input),  # noqa: F821
        run_labels(snakemake.params.runs),  # noqa: F821
        [snakemake.output.png, snakemake.output.pdf],  # noqa: F821
        radii=snakemake.params.radii,  # noqa: F821
        title=snakemake.params.title,  # noqa: F821
    )
