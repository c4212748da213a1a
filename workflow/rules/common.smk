# Configuration (validated against workflow/schemas/config.schema.yaml), paths and wildcards.
import re

from snakemake.exceptions import WorkflowError

from lmt import stage_config
from lmt.config import ConfigError, validate_config
from lmt.paths import experiment_outputs, results_dir, run_dir

try:
    _validated = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

EXPERIMENTS = config["experiments"]  # name -> resolved settings of that experiment
RESULTS = results_dir("{experiment}")
RUN = run_dir("{experiment}", "{method}", "{seed}")
LOGS = RESULTS + "/logs"
BENCHMARKS = RESULTS + "/benchmarks"


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(set(names)))


wildcard_constraints:
    experiment=_alternatives(EXPERIMENTS),
    method=_alternatives(m for e in EXPERIMENTS.values() for m in e["methods"]),
    seed=r"\d+",
    attack=_alternatives(a for e in EXPERIMENTS.values() for a in e["attack"]["attacks"]),


def runs_of(experiment):
    """(method, seed) pairs of one experiment."""
    settings = EXPERIMENTS[experiment]
    return [(m, s) for m in settings["methods"] for s in settings["seeds"]]


def per_run(pattern):
    """Input function: ``pattern`` expanded over the runs of the job's experiment."""

    def inputs(wildcards):
        return [
            pattern.format(experiment=wildcards.experiment, method=m, seed=s)
            for m, s in runs_of(wildcards.experiment)
        ]

    return inputs


def run_labels(wildcards):
    return runs_of(wildcards.experiment)


def stage_settings(subset, *selection):
    """Params function: what the job's stage reads of its experiment's settings, by ``subset``
    (a function of lmt/stage_config.py) given the job's ``selection`` wildcards (method, seed,
    attack). Every rule passes it as its ``settings`` param and its script hands it to the
    stage, so a changed setting reruns exactly the jobs that read it (rerun trigger ``params``)."""

    def value(wildcards):
        return subset(EXPERIMENTS[wildcards.experiment], *(getattr(wildcards, name) for name in selection))

    return value


def attack_names(wildcards):
    """The configured attacks of the job's experiment."""
    return list(EXPERIMENTS[wildcards.experiment]["attack"]["attacks"])


def attack_outputs(pattern):
    """Input function: one per-run file per configured attack of the job's experiment."""

    def inputs(wildcards):
        return [pattern.format(**wildcards, attack=a) for a in attack_names(wildcards)]

    return inputs


def final_outputs():
    """Every table and figure of every experiment (lmt.paths.experiment_outputs)."""
    return [
        path
        for name, settings in EXPERIMENTS.items()
        for path in experiment_outputs(name, settings["report"]["published"] is not None)
    ]


def table(name, caption):
    """The three files of one table; the CSV goes into the HTML report."""
    stem = f"{RESULTS}/tables/{name}"
    return {
        "csv": report(stem + ".csv", caption=f"../report/{caption}", category="Tables", subcategory="{experiment}"),
        "md": stem + ".md",
        "tex": stem + ".tex",
    }


def figure(name, caption):
    """The two files of one figure; the PNG goes into the HTML report."""
    stem = f"{RESULTS}/figures/{name}"
    return {
        "png": report(stem + ".png", caption=f"../report/{caption}", category="Figures", subcategory="{experiment}"),
        "pdf": stem + ".pdf",
    }
