"""Snakemake adapter: gradient-based lower bounds (B) and (C) of the inequality chain."""

from lmt.pipeline import gradient_bounds_stage
from lmt.script_support import run_stage

run_stage(snakemake, gradient_bounds_stage)  # noqa: F821 (injected by Snakemake)
