"""Reruns follow the config: after a completed run, a changed setting plans exactly the jobs
whose stage reads it (each rule passes its lmt.stage_config subset as a param), and an unchanged
config plans nothing, whatever the order of its keys and wherever the results directory lives."""

from __future__ import annotations

import copy
import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lmt import stage_config
from lmt.config import validate_config
from tests.conftest import REPO

CONFIG = {
    "experiment": "rerun",
    "data": {"n_train": 300, "n_test_embedded": 20},
    "training": {"epochs": 1, "device": "cpu"},
    "methods": {"standard": {}, "lmt": {"c": 1.0}},
    "certify": {"n_iter": 10, "n_starts": 1},
    "attack": {"attacks": {"deepfool": {"steps": 5}}},
    "chain": {"n_noise": 0},
    "report": {"radii": [0.5, 1.0], "published": None, "n_perturbation_examples": 1},
}
EXPERIMENT_RULES = {
    "aggregate", "inequality_chain", "bound_comparison", "plot_accuracy_vs_radius", "plot_inequality_chain",
    "plot_certified_vs_attack", "plot_certified_perturbations", "gap",
}


def _snakemake(workdir: Path, config: dict[str, Any], *args: str) -> str:
    path = workdir.parent / f"{workdir.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(path),
         "--directory", str(workdir), *args],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _planned(workdir: Path, config: dict[str, Any]) -> set[tuple[str, str]]:
    """(rule, job) of every job ``snakemake --summary`` plans; a job is named by its log file
    (``lmt_seed0``, ``lmt_seed0_deepfool``, ``aggregate``), one per job."""
    rows = csv.DictReader(_snakemake(workdir, config, "--summary").splitlines(), delimiter="\t")
    return {(row["rule"], Path(row["log-file(s)"]).stem) for row in rows if row["plan"] == "update pending"}


def _reordered(value: Any, key: str = "") -> Any:
    """The same config with every mapping's keys in reverse order, except the selections
    ``methods`` and ``attacks``, whose order is the order of the tables' rows."""
    if not isinstance(value, dict):
        return value
    keys = list(value) if key in ("methods", "attacks") else list(reversed(list(value)))
    return {k: _reordered(value[k], k) for k in keys}


def _edited(section: str, key: str, value: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config[section][key] = value
    return config


def _subsets(config: dict[str, Any]) -> dict[str, str]:
    """The repr (what Snakemake stores and compares) of every job's subset, by job."""
    experiment = validate_config(config)["experiments"]["rerun"]
    subsets = {f"train {m}": stage_config.train(experiment, m, 0) for m in experiment["methods"]}
    subsets["attack deepfool"] = stage_config.attack(experiment, "deepfool")
    for name in ("certify", "gradient_bounds", "aggregate", "inequality_chain", "published_comparison",
                 "accuracy_figure", "chain_figure", "titled_figure", "perturbation_figure", "gap"):
        subsets[name] = getattr(stage_config, name)(experiment)
    return {job: repr(subset) for job, subset in subsets.items()}


def test_a_setting_changes_only_the_subsets_that_read_it() -> None:
    before = _subsets(CONFIG)
    assert _subsets(_reordered(CONFIG)) == before

    def changed(config: dict[str, Any]) -> set[str]:
        after = _subsets(config)
        return {job for job in before if after[job] != before[job]}

    assert changed(_edited("methods", "lmt", {"c": 2.0})) == {"train lmt"}
    assert changed(_edited("report", "radii", [0.5, 1.5])) == {"aggregate", "accuracy_figure"}
    assert changed(_edited("report", "table1_attack", "deepfool")) == {"aggregate"}
    assert changed(_edited("certify", "n_iter", 20)) == {"certify"}
    assert changed(_edited("training", "device", "auto")) == {
        "train standard", "train lmt", "certify", "attack deepfool", "gradient_bounds"}

    # Randomized smoothing has its own job: turning it on (or off) changes no other job's
    # settings except the summary's and the gap table's, whose notes state σ and α; null is off.
    assert changed(_edited("certify", "smoothing", {"sigma": 0.5, "n": 100})) == {"aggregate", "gap"}
    assert changed(_edited("certify", "smoothing", None)) == set()
    on = validate_config(_edited("certify", "smoothing", {"sigma": 0.5}))["experiments"]["rerun"]
    explicit = validate_config(_edited("certify", "smoothing", {"sigma": 0.5, "n0": 100, "alpha": 0.001}))
    assert repr(stage_config.smoothing(on)) == repr(stage_config.smoothing(explicit["experiments"]["rerun"]))
    wider = validate_config(_edited("certify", "smoothing", {"sigma": 0.5, "batch_size": 10}))["experiments"]["rerun"]
    assert stage_config.aggregate(wider) == stage_config.aggregate(on) != stage_config.aggregate(
        validate_config(_edited("certify", "smoothing", {"sigma": 0.25}))["experiments"]["rerun"])


@pytest.mark.slow
def test_reruns_follow_exactly_the_changed_settings(tmp_path) -> None:
    first = tmp_path / "first"
    _snakemake(first, CONFIG, "--cores", "2")
    moved = first.rename(tmp_path / "moved")  # plans must not depend on absolute paths

    lmt_run = {("train", "lmt_seed0"), ("certify", "lmt_seed0"), ("attack", "lmt_seed0_deepfool"),
               ("gradient_bounds", "lmt_seed0"), ("merge_examples", "lmt_seed0")}
    every_table_and_figure = {(rule, rule) for rule in EXPERIMENT_RULES}
    c_changed = _planned(moved, _edited("methods", "lmt", {"c": 2.0}))
    assert c_changed == lmt_run | every_table_and_figure

    radii_changed = _planned(moved, _edited("report", "radii", [0.5, 1.5]))
    assert radii_changed == {("aggregate", "aggregate"), ("plot_accuracy_vs_radius", "plot_accuracy_vs_radius")}

    assert _planned(moved, _reordered(CONFIG)) == set(), "an unchanged config (keys reordered) plans nothing"
