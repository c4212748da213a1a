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
ATTACKS = list(config["attack"]["attacks"])


wildcard_constraints:
    method="|".join(re.escape(m) for m in config["methods"]),
    seed=r"\d+",
    attack="|".join(re.escape(a) for a in ATTACKS),


def per_run(pattern):
    """Expand a per-run path over every configured (method, seed)."""
    return [pattern.format(method=m, seed=s) for m, s in RUNS]


def attack_budget(wildcards):
    """The budget of one configured attack (a rule param, so a changed budget reruns it)."""
    return config["attack"]["attacks"][wildcards.attack]


def attack_settings(wildcards):
    """What every attack shares: examples, batch size, seed."""
    return {k: v for k, v in config["attack"].items() if k != "attacks"}


def final_outputs():
    return [
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/summary.md",
        f"{RESULTS}/tables/attacks.csv",
        f"{RESULTS}/tables/attacks.md",
        f"{RESULTS}/tables/inequality_chain.csv",
        f"{RESULTS}/tables/inequality_chain.md",
        f"{RESULTS}/figures/accuracy_vs_radius.png",
        f"{RESULTS}/figures/accuracy_vs_radius.pdf",
    ]
