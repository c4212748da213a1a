"""The ``lmt-bench run`` command: the workflow's stages without Snakemake, same files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from lmt.paths import ExperimentPaths, RunPaths, provenance_path
from tests.conftest import REPO


@pytest.mark.slow
def test_cli_runs_an_experiment_and_writes_every_table_and_figure(tmp_path) -> None:
    config = {
        "experiment": "cli",
        "data": {"n_test_embedded": 60},
        "training": {"epochs": 1},
        "methods": {"lmt": {"c": 1.0}},
        "certify": {"n_iter": 50, "n_starts": 2, "smoothing": {"n0": 10, "n": 50}},
        "attack": {"n_examples": 20, "attacks": {"cw": {"steps": 10, "binary_search_steps": 2}, "deepfool": {}}},
        "chain": {"n_noise": 1},
        "report": {"radii": [0.5, 1.0], "n_perturbation_examples": 2},
    }
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "lmt", "run", "--config", str(cfg)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "certified @1 (%)" in result.stdout  # Table 1 is printed
    for path in ExperimentPaths("cli").outputs(published=False):
        assert (tmp_path / path).stat().st_size > 100, path
    run = RunPaths.of("cli", "lmt", 0)  # randomized smoothing ran and was merged
    assert "rs_radius" in (tmp_path / run.examples).read_text().splitlines()[0]
    assert (tmp_path / provenance_path(run.smoothing)).exists()


def test_cli_names_an_unknown_experiment(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lmt", "run", "--config", str(REPO / "config/config.yaml"), "--experiment", "nope"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "'nope'" in result.stderr and "default" in result.stderr
