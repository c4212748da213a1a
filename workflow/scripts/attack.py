"""Snakemake adapter: one configured attack's minimal distances for one trained model."""

from lmt.pipeline import attack_stage
from lmt.script_support import run_stage

run_stage(snakemake, attack_stage)  # noqa: F821 (injected by Snakemake)
