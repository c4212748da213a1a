"""``lmt-bench`` / ``python -m lmt``: the workflow's stages without Snakemake.

    lmt-bench run --config config/config.yaml [--method lmt] [--seed 0]

runs train → certify → randomized smoothing (where configured) → attacks → gradient bounds →
merge (soundness gate) for the selected runs, then every table and figure, writing the same
files as the Snakemake workflow (whose rules call the same functions). Use it for interactive work or debugging, and where Snakemake
is not installed; use Snakemake for parallel, incremental runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmt.config import ConfigError, load_config
from lmt.paths import RunPaths


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
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"lmt-bench: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
