"""``lmt-bench overview``: one table across a config's experiments at one radius, from the
run's summary tables and benchmarks, with the published anchors; refusals like publish's."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from lmt import stage_config
from lmt.cli import main
from lmt.config import load_config
from lmt.publish import PublishError
from tests.conftest import REPO
from tests.test_publish import make_results

CONFIG = REPO / "config" / "modern_mnist.yaml"


def _summary(method: str, clean: float, certified: float, rs: float = math.nan) -> dict:
    return {
        "method": method, "n_seeds": 1, "n_examples": 10000, "clean_accuracy": clean, "clean_accuracy_std": math.nan,
        "clean_accuracy_ci_low": clean - 0.01, "clean_accuracy_ci_high": clean + 0.01,
        "certified_accuracy@1.58": certified, "certified_accuracy@1.58_std": math.nan,
        "certified_accuracy@1.58_ci_low": certified - 0.01, "certified_accuracy@1.58_ci_high": certified + 0.01,
        "median_certified_radius": 1.03, "median_certified_radius_std": math.nan,
        "smoothed_certified_accuracy@1.58": rs, "smoothed_certified_accuracy@1.58_std": math.nan,
        "smoothed_certified_accuracy@1.58_ci_low": rs - 0.02, "smoothed_certified_accuracy@1.58_ci_high": rs + 0.02,
    }


def _results(tmp_path, experiments=("mnist_lmt_gloro", "mnist_smoothing"), revision=None):
    settings = load_config(CONFIG)["experiments"]
    root = tmp_path / "results"
    for experiment in experiments:
        table_config = json.loads(json.dumps(stage_config.aggregate(settings[experiment])))
        extra = {"revision": revision} if revision else {}
        make_results(root, experiment=experiment, table_config=table_config, benchmarks=True, **extra)
    rows = {"mnist_lmt_gloro": [_summary("lmt", 0.919, 0.224), _summary("gloro", 0.888, 0.233)],
            "mnist_smoothing": [_summary("gaussian_noise", 0.967, 0.0, rs=0.392)]}
    for experiment in experiments:
        pd.DataFrame(rows[experiment]).to_csv(root / experiment / "tables" / "summary.csv", index=False)
        examples = pd.DataFrame({"example_id": [0, 1, 2], "label": [1, 2, 3], "prediction": [1, 2, 0],
                                 "certified_radius": [0.5, 2.0, 0.0], "attacked": [True, True, False],
                                 "min_attack_distance": [1.0, 2.5, float("nan")]})
        if experiment == "mnist_smoothing":
            examples = examples.assign(rs_radius=[1.7, 0.2, 0.0], rs_prediction=[1, 2, 3], rs_abstain=[False, False, True])
        for method in (row["method"] for row in rows[experiment]):
            (root / experiment / "runs" / method / "seed0").mkdir(parents=True, exist_ok=True)
            examples.to_csv(root / experiment / "runs" / method / "seed0" / "examples.csv", index=False)
    return root


def test_overview_writes_one_row_per_network_and_method_with_the_anchors(tmp_path) -> None:
    out = tmp_path / "overview.md"
    assert main(["overview", str(_results(tmp_path)), "--config", str(CONFIG), "--radius", "1.58", "--out", str(out),
                 "--experiment", "mnist_lmt_gloro", "--experiment", "mnist_smoothing"]) == 0
    text = out.read_text()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| wong_kolter_mnist")]
    assert rows[0][:7] == ["wong_kolter_mnist", "lmt", "1", "10000", "91.9 [90.9, 92.9]", "22.4 [21.4, 23.4]", "1.03"]
    assert [row[1] for row in rows] == ["lmt", "gloro", "gaussian_noise"]
    assert "| gaussian_noise |" in text and "39.2 [37.2, 41.2]" in text  # RS apart, with its interval
    assert "610.2 s (10 min 10 s)" in text  # the training benchmark (make_results: lmt_seed0 only)
    assert "62.8 %" in text and "40.55 %" in text  # the modern_mnist anchors, with sources
    assert "- `mnist_smoothing`: git revision: `0123456789abcdef" in text
    assert "![certified accuracy against the radius](overview.png)" in text
    assert (tmp_path / "overview.png").read_bytes().startswith(b"\x89PNG")


def test_overview_refuses_a_missing_experiment_a_radius_not_reported_and_a_dirty_run(tmp_path) -> None:
    results = _results(tmp_path, experiments=("mnist_lmt_gloro",))
    with pytest.raises(PublishError, match="no results for experiment 'mnist_aol'"):
        from lmt.overview import write_overview

        write_overview(results, CONFIG, 1.58, tmp_path / "o.md", ["mnist_lmt_gloro", "mnist_aol"])
    with pytest.raises(PublishError, match="no certified accuracy at radius 0.7"):
        write_overview(results, CONFIG, 0.7, tmp_path / "o.md", ["mnist_lmt_gloro"])
    (results / "mnist_lmt_gloro" / "runs" / "gloro" / "seed0" / "examples.csv").unlink()
    with pytest.raises(PublishError, match="no per-example table .* mnist_lmt_gloro/gloro"):
        write_overview(results, CONFIG, 1.58, tmp_path / "o.md", ["mnist_lmt_gloro"])
    dirty = _results(tmp_path / "dirty", experiments=("mnist_lmt_gloro",), revision="0123abc+dirty")
    with pytest.raises(PublishError, match="refusing to publish"):
        write_overview(dirty, CONFIG, 1.58, tmp_path / "o.md", ["mnist_lmt_gloro"])
    assert not (tmp_path / "o.md").exists() and not (tmp_path / "o.png").exists()
