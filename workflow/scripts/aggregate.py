"""Snakemake adapter: summary, attack table and Table 1 over every run."""

from lmt.report.stages import aggregate_stage
from lmt.script_support import experiment_inputs, snakemake_job, stem

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    out = snakemake.output  # noqa: F821
    aggregate_stage(
        *experiment_inputs(snakemake),  # noqa: F821
        out.metrics, stem(out.summary_csv), stem(out.attacks_csv), stem(out.table1_csv),
    )
