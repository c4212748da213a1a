"""Snakemake adapter: randomized-smoothing certificates of one trained model."""

from lmt.pipeline import smoothing_stage
from lmt.script_support import run_stage

run_stage(snakemake, smoothing_stage)  # noqa: F821 (injected by Snakemake)
