"""Snakemake adapter: certified radii of one trained model."""

from lmt.pipeline import certify_stage
from lmt.script_support import run_stage

run_stage(snakemake, certify_stage)  # noqa: F821 (injected by Snakemake)
