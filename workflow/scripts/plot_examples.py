"""Snakemake adapter: the figures drawn from the per-example tables, chosen by rule name."""

from lmt.report import stages
from lmt.script_support import experiment_inputs, snakemake_job, stem

STAGES = {
    "plot_accuracy_vs_radius": stages.accuracy_figure_stage,
    "plot_inequality_chain": stages.chain_figure_stage,
    "plot_certified_vs_attack": stages.scatter_figure_stage,
}

with snakemake_job(snakemake):  # noqa: F821 (injected by Snakemake)
    STAGES[snakemake.rule](*experiment_inputs(snakemake), stem(snakemake.output.png))  # noqa: F821
