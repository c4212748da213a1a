"""Where results live: the one place that names every file the workflow writes.

The Snakemake rules, the ``lmt-bench`` CLI and the stages build their paths from these two
classes, so all of them read and write the same tree::

    results/<experiment>/runs/<method>/seed<seed>/   one run's files (RunPaths)
    results/<experiment>/tables/, figures/           the experiment's tables and figures
    results/<experiment>/logs/, benchmarks/          Snakemake's per-job logs and timings

Both classes take plain values or Snakemake wildcard placeholders (``"{experiment}"``,
``"{method}"``, ``"{seed}"``), which pass through unchanged: ``RunPaths.placeholders().model`` is
the ``model`` output pattern of the train rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS = "results"
TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")
TABLES = ("summary", "attacks", "table1", "inequality_chain", "bound_comparison", "gap")
FIGURES = ("accuracy_vs_radius", "bound_comparison", "inequality_chain", "certified_vs_attack",
           "certified_perturbations", "gap")
SWEEP_OUTPUTS = ("tradeoff",)  # a table and a figure each, only for an experiment with a sweep


def provenance_path(output: str | Path) -> str:
    """The provenance record written beside ``output``: its suffix replaced by
    ``.provenance.json`` (``model.pt`` → ``model.provenance.json``)."""
    output = Path(output)
    return str(output.with_name(f"{output.stem}.provenance.json"))


@dataclass(frozen=True)
class Output:
    """One table or figure: its stage writes ``<stem>.<format>`` for each of ``formats``."""

    stem: str
    formats: tuple[str, ...]

    @property
    def files(self) -> dict[str, str]:
        """Format → file."""
        return {fmt: f"{self.stem}.{fmt}" for fmt in self.formats}


@dataclass(frozen=True)
class ExperimentPaths:
    """The experiment-level files of one experiment: tables, figures, Snakemake's logs and
    benchmarks."""

    experiment: str

    @property
    def root(self) -> str:
        return f"{RESULTS}/{self.experiment}"

    def table(self, name: str) -> Output:
        return Output(f"{self.root}/tables/{name}", TABLE_FORMATS)

    def figure(self, name: str) -> Output:
        return Output(f"{self.root}/figures/{name}", FIGURE_FORMATS)

    @property
    def metrics(self) -> str:
        """The long per-run metrics table behind the summary."""
        return f"{self.root}/tables/metrics.csv"

    def log(self, job: str) -> str:
        """The Snakemake log of one job (``aggregate``, ``train/lmt_seed0``); its benchmark
        (time, memory) is the same path under ``benchmarks/`` as ``.tsv``."""
        return f"{self.root}/logs/{job}.log"

    def benchmark(self, job: str) -> str:
        return f"{self.root}/benchmarks/{job}.tsv"

    def outputs(self, published: bool, swept: bool = False) -> list[str]:
        """Every table and figure file (the published comparison only where the experiment
        names a published set; the trade-off table and figure only where it has a sweep)."""
        tables = [*TABLES, "published"] if published else list(TABLES)
        figures = list(FIGURES)
        if swept:
            tables += SWEEP_OUTPUTS
            figures += SWEEP_OUTPUTS
        outputs = [self.table(t) for t in tables] + [self.figure(f) for f in figures]
        return [path for output in outputs for path in output.files.values()]

    def run(self, method: str, seed: int | str) -> RunPaths:
        return RunPaths.of(self.experiment, method, seed)


@dataclass(frozen=True)
class RunPaths:
    """The files of one (experiment, method, seed) run: build it with :meth:`of`."""

    experiment: str
    method: str
    seed: int | str
    dir: str
    model: str  # the trained model (lmt.train.load_trained reads it)
    resume: str  # the per-epoch checkpoint while training; removed once the model is written
    train_log: str  # one row per epoch
    certified: str  # per-example margins and certified radii
    bounds: str  # the certified Lipschitz bound, its layers and settings
    layer_bounds: str  # the per-layer bound comparison (Fig. 3)
    gradient_bounds_csv: str  # per-example radii (B) and (C) of the inequality chain
    gradient_bounds_json: str  # the pairwise gradient bounds behind (B)
    smoothing: str  # per-example randomized-smoothing certificates (only where configured)
    examples: str  # the merged per-example table that passed the soundness gate

    @classmethod
    def of(cls, experiment: str, method: str, seed: int | str) -> RunPaths:
        d = f"{ExperimentPaths(experiment).root}/runs/{method}/seed{seed}"
        return cls(
            experiment, method, seed, d,
            model=f"{d}/model.pt", resume=f"{d}/resume.pt", train_log=f"{d}/train_log.csv",
            certified=f"{d}/certified.csv", bounds=f"{d}/bounds.json", layer_bounds=f"{d}/layer_bounds.csv",
            gradient_bounds_csv=f"{d}/gradient_bounds.csv", gradient_bounds_json=f"{d}/gradient_bounds.json",
            smoothing=f"{d}/smoothing.csv", examples=f"{d}/examples.csv",
        )

    @classmethod
    def placeholders(cls) -> RunPaths:
        """The run of the job's wildcards, for the Snakemake rules' file patterns."""
        return cls.of("{experiment}", "{method}", "{seed}")

    @property
    def label(self) -> str:
        """``default/lmt/seed0``: how the run is named in errors about its files."""
        return f"{self.experiment}/{self.method}/seed{self.seed}"

    def attack(self, label: str) -> str:
        """Per-example distances of the configured attack ``label`` (NAME or NAME.TAG)."""
        return f"{self.dir}/attack_{label}.csv"

    def log(self, stage: str, *qualifiers: str) -> str:
        """The Snakemake log of this run's ``stage`` job, qualified where a stage has several
        jobs per run (the attack): ``logs/attack/lmt_seed0_cw.log``."""
        return ExperimentPaths(self.experiment).log(self._job(stage, qualifiers))

    def benchmark(self, stage: str, *qualifiers: str) -> str:
        """The Snakemake benchmark of this run's ``stage`` job (see :meth:`log`)."""
        return ExperimentPaths(self.experiment).benchmark(self._job(stage, qualifiers))

    def _job(self, stage: str, qualifiers: tuple[str, ...]) -> str:
        return "_".join([f"{stage}/{self.method}_seed{self.seed}", *qualifiers])
