# Configuration (validated against workflow/schemas/config.schema.yaml), paths and wildcards.
import re

from snakemake.exceptions import WorkflowError

from lmt import stage_config
from lmt.config import ConfigError, validate_config
from lmt.paths import ExperimentPaths, RunPaths, provenance_path

try:
    _validated = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

EXPERIMENTS = config["experiments"]  # name -> resolved settings of that experiment
EXPERIMENT = ExperimentPaths("{experiment}")  # the job's experiment's files (lmt/paths.py)
RUN = RunPaths.placeholders()  # the job's run's files
ENVIRONMENT = "../../environment.yml"  # the software of every rule (relative to workflow/rules/)


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


def per_run(file):
    """Input function: ``file`` (an attribute of lmt.paths.RunPaths) of every run of the job's
    experiment, in the configured order."""

    def inputs(wildcards):
        return [getattr(RunPaths.of(wildcards.experiment, m, s), file) for m, s in runs_of(wildcards.experiment)]

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


def attack_outputs(wildcards):
    """Input function: the job's run's distances of every configured attack."""
    run = RunPaths.of(wildcards.experiment, wildcards.method, wildcards.seed)
    return [run.attack(a) for a in attack_names(wildcards)]


def smoothing_outputs(wildcards):
    """Input function: the job's run's randomized-smoothing table where the experiment
    configures certify.smoothing, else nothing."""
    if stage_config.smoothing_settings(EXPERIMENTS[wildcards.experiment]) is None:
        return []
    return [RunPaths.of(wildcards.experiment, wildcards.method, wildcards.seed).smoothing]


def final_outputs():
    """Every table and figure of every experiment (lmt.paths.ExperimentPaths.outputs)."""
    return [
        path
        for name, settings in EXPERIMENTS.items()
        for path in ExperimentPaths(name).outputs(settings["report"]["published"] is not None, bool(settings["sweeps"]))
    ]


def _in_report(files, shown, caption, category):
    """``files`` (format -> file) with the ``shown`` one registered for the HTML report."""
    return {
        fmt: report(path, caption=f"../report/{caption}", category=category, subcategory="{experiment}")
        if fmt == shown
        else path
        for fmt, path in files.items()
    }


def table(name, caption):
    """The files of one table; the CSV goes into the HTML report."""
    return _in_report(EXPERIMENT.table(name).files, "csv", caption, "Tables")


def figure(name, caption):
    """The files of one figure; the PNG goes into the HTML report."""
    return _in_report(EXPERIMENT.figure(name).files, "png", caption, "Figures")
