"""Snakemake adapter: train one (method, seed) run."""

from lmt.pipeline import train_stage
from lmt.script_support import run_stage

run_stage(snakemake, train_stage, resume=snakemake.params.resume)  # noqa: F821 (injected by Snakemake)
