"""``lmt-bench`` / ``python -m lmt``: the workflow's stages without Snakemake.

    lmt-bench run --config config/config.yaml [--method lmt] [--seed 0]

runs train → certify → randomized smoothing (where configured) → attacks → gradient bounds →
merge (soundness gate) for the selected runs, then every table and figure, writing the same
files as the Snakemake workflow (whose rules call the same functions). Use it for interactive work or debugging, and where Snakemake
is not installed; use Snakemake for parallel, incremental runs.

    lmt-bench publish RESULTS_DIR [--experiment NAME ...] [--config FILE] [--out docs/results]
                      [--name NAME] [--allow-dirty]

writes each experiment's tables, with the run's provenance, to OUT/NAME/<experiment>.md
(NAME: the config file's stem, else the experiment) and its small PNG figures beside it
(:mod:`lmt.publish`); it refuses a run from a dirty or mixed revision unless --allow-dirty.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmt.config import ConfigError, load_config
from lmt.paths import RunPaths
from lmt.publish import PublishError


def _run(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    experiments = config["experiments"]
    if args.experiment and args.experiment not in experiments:
        raise ConfigError(f"--experiment {args.experiment!r} is not among {list(experiments)}")
    for name, settings in experiments.items():
        if not args.experiment or name == args.experiment:
            _run_experiment(settings, args)


def _run_experiment(experiment: dict, args: argparse.Namespace) -> None:
    from lmt import pipeline, stage_config

    methods = [args.method] if args.method else list(experiment["methods"])
    seeds = [args.seed] if args.seed is not None else experiment["seeds"]
    unknown = [m for m in methods if m not in experiment["methods"]]
    if unknown:
        raise ConfigError(f"--method {unknown[0]!r} is not among the configured methods {list(experiment['methods'])}")
    name = experiment["experiment"]
    runs = [(m, s) for m in methods for s in seeds]
    for method, seed in runs:
        run = RunPaths.of(name, method, seed)
        print(f"== {name}: {method} seed {seed}", flush=True)
        if args.force or not Path(run.model).exists():
            pipeline.train_stage(stage_config.train(experiment, method, seed), run.model, run.train_log, run.resume)
        pipeline.certify_stage(stage_config.certify(experiment), run.model, run.certified, run.bounds, run.layer_bounds)
        smoothing_csv = None
        if stage_config.smoothing_settings(experiment) is not None:
            smoothing_csv = run.smoothing
            pipeline.smoothing_stage(stage_config.smoothing(experiment), run.model, smoothing_csv)
        attack_csvs = {label: run.attack(label) for label in experiment["attack"]["attacks"]}
        for label, path in attack_csvs.items():
            pipeline.attack_stage(stage_config.attack(experiment, label), run.model, path)
        pipeline.gradient_bounds_stage(stage_config.gradient_bounds(experiment), run.model, run.gradient_bounds_csv,
                                       run.gradient_bounds_json)
        pipeline.merge_stage(run.certified, run.gradient_bounds_csv, attack_csvs, run.examples, run.label,
                             smoothing_csv)
    from lmt.report.stages import report_experiment

    for table in report_experiment(experiment, runs):
        print(Path(table).read_text())


def _publish(args: argparse.Namespace) -> None:
    from lmt.publish import publish

    for path in publish(args.results_dir, args.experiment, args.config, args.out, args.name, args.allow_dirty):
        print(path)


def _overview(args: argparse.Namespace) -> None:
    from lmt.overview import write_overview

    print(write_overview(args.results_dir, args.config, args.radius, args.out, args.experiment, args.allow_dirty))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmt-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every stage for the configured (or selected) runs")
    run.add_argument("--config", default="config/config.yaml")
    run.add_argument("--experiment", help="only this configured experiment")
    run.add_argument("--method", help="only this configured method")
    run.add_argument("--seed", type=int, help="only this seed")
    run.add_argument("--force", action="store_true", help="retrain even if model.pt exists")
    run.set_defaults(func=_run)
    pub = sub.add_parser("publish", help="write the experiments' tables with their provenance to docs/results/")
    pub.add_argument("results_dir", metavar="RESULTS_DIR", help="the workflow's results directory (results/)")
    pub.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    pub.add_argument("--config", help="the config file of the run: its path, sha256 and the resolved settings "
                                      "go into the header, and it must match the run's recorded settings")
    pub.add_argument("--out", default="docs/results", help="output folder (default: docs/results)")
    pub.add_argument("--name", help="subfolder of OUT (default: the config file's stem, else the experiment)")
    pub.add_argument("--allow-dirty", action="store_true",
                     help="publish a run from a dirty or mixed revision (the file says so)")
    pub.set_defaults(func=_publish)
    ovw = sub.add_parser("overview", help="one table across a config's experiments at one radius, with the "
                                          "published anchors, from a run's results")
    ovw.add_argument("results_dir", metavar="RESULTS_DIR", help="the workflow's results directory (results/)")
    ovw.add_argument("--config", required=True, help="the config file of the run (networks, published set)")
    ovw.add_argument("--radius", type=float, required=True, help="an L2 radius of the config's report.radii")
    ovw.add_argument("--out", required=True, help="the Markdown file to write")
    ovw.add_argument("--experiment", action="append", help="only this experiment (repeatable; default: all)")
    ovw.add_argument("--allow-dirty", action="store_true",
                     help="accept a run from a dirty or mixed revision (the file says so)")
    ovw.set_defaults(func=_overview)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, PublishError) as err:
        print(f"lmt-bench: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
