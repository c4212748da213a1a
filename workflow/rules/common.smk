# Configuration (validated against workflow/schemas/config.schema.yaml), paths and wildcards.
import re

from snakemake.exceptions import WorkflowError

from lmt.config import ConfigError, validate_config
from lmt.paths import results_dir, run_dir

try:
    _validated = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

RESULTS = results_dir(config["experiment"])
RUN = run_dir(config["experiment"], "{method}", "{seed}")
LOGS = RESULTS + "/logs"
BENCHMARKS = RESULTS + "/benchmarks"
RUNS = [(method, seed) for method in config["methods"] for seed in config["seeds"]]


wildcard_constraints:
    method="|".join(re.escape(m) for m in config["methods"]),
    seed=r"\d+",


def per_run(pattern):
    """Expand a per-run path over every configured (method, seed)."""
    return [pattern.format(method=m, seed=s) for m, s in RUNS]


def final_outputs():
    return [
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/summary.md",
        f"{RESULTS}/figures/accuracy_vs_radius.png",
        f"{RESULTS}/figures/accuracy_vs_radius.pdf",
    ]
