"""Randomized smoothing in the pipeline: the smoothing stage, its columns in the merged table,
the soundness gate's checks of them (and the comparison it must not make), the summary metrics."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lmt.pipeline import merge_stage
from lmt.report.tables import run_metrics
from lmt.soundness import SoundnessError
from tests.test_soundness import _run_tables

INF, NAN = float("inf"), float("nan")


def _smoothing_table(tmp_path, n: int = 4, **columns) -> str:
    table = pd.DataFrame({
        "example_id": range(n), "rs_prediction": [0] * n, "rs_count": [190] * n,
        "rs_p_lower": [0.9] * n, "rs_radius": [5.0] * n, "rs_abstain": [False] * n,
    })
    for name, values in columns.items():
        table[name] = values
    path = tmp_path / "smoothing.csv"
    table.to_csv(path, index=False)
    return str(path)


def test_merge_adds_the_smoothing_columns_and_never_compares_them_with_attacks(tmp_path) -> None:
    """A smoothed radius (5.0) far above every attack distance on the base network is no
    contradiction: the smoothed classifier is another classifier."""
    certified, gradient, attacks = _run_tables(tmp_path, [0.3, 0.7, INF, 1.0], [0.2, 0.8, INF, 1.2])
    smoothing = _smoothing_table(tmp_path, rs_abstain=[False, False, True, False], rs_p_lower=[0.9, 0.9, 0.5, 0.9],
                                 rs_radius=[5.0, 5.0, 0.0, 5.0])
    frame = merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0", smoothing)
    written = pd.read_csv(tmp_path / "examples.csv")
    for column in ("rs_prediction", "rs_count", "rs_p_lower", "rs_radius", "rs_abstain"):
        assert column in frame and column in written
    assert (written["rs_radius"] > written["min_attack_distance"]).sum() == 3
    without = merge_stage(certified, gradient, attacks, str(tmp_path / "plain.csv"), "exp/lmt/seed0")
    assert not [c for c in without if c.startswith("rs_")], "no smoothing columns unless configured"


def test_merge_needs_a_smoothing_result_for_every_example(tmp_path) -> None:
    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [INF] * 4)
    smoothing = _smoothing_table(tmp_path, n=3)
    with pytest.raises(ValueError, match=r"exp/lmt/seed0: .*smoothing.csv has no randomized-smoothing result .*\[3\]"):
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0", smoothing)


@pytest.mark.parametrize(("columns", "message"), [
    ({"rs_p_lower": [0.9, NAN, 0.9, 0.9]}, r"'rs_p_lower' is NaN or infinite for 1 example\(s\); ids: \[1\]"),
    ({"rs_radius": [5.0, 5.0, INF, 5.0]}, r"'rs_radius' is NaN or infinite for 1 example\(s\); ids: \[2\]"),
    ({"rs_p_lower": [0.9, 1.5, 0.9, 0.9]}, r"outside \[0, 1\]; ids: \[1\]"),
    ({"rs_radius": [5.0, -0.1, 5.0, 5.0]}, r"negative smoothing radius.*ids: \[1\]"),
    ({"rs_abstain": [False, True, False, False], "rs_p_lower": [0.9, 0.4, 0.9, 0.9]},
     r"abstain \(rs_abstain\) with a smoothing radius other than 0; ids: \[1\]"),
    ({"rs_radius": [5.0, 5.0, 5.0, 0.0]}, r"not abstained but have smoothing radius 0; ids: \[3\]"),
    ({"rs_p_lower": [0.9, 0.9, 0.45, 0.9]}, r"rs_abstain inconsistent with rs_p_lower ≤ 1/2; ids: \[2\]"),
    ({"rs_prediction": [0, -1, 0, 0]}, r"rs_prediction that is not an integer ≥ 0; ids: \[1\]"),
    ({"rs_abstain": ["maybe"] * 4}, r"'rs_abstain' is not boolean"),
])
def test_gate_checks_the_smoothing_invariants(tmp_path, columns: dict, message: str) -> None:
    """Every attack fails (+inf) and the certificates are fine: only the rs columns object."""
    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [INF] * 4)
    smoothing = _smoothing_table(tmp_path, **columns)
    with pytest.raises(SoundnessError, match=rf"(?s)exp/lmt/seed0.*{message}"):
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0", smoothing)
    assert not (tmp_path / "examples.csv").exists()


def test_smoothed_certified_accuracy_counts_correct_unabstained_examples_at_radius() -> None:
    examples = pd.DataFrame({
        "example_id": range(5), "label": [0, 1, 2, 3, 4], "prediction": [0, 1, 2, 3, 4],
        "certified_radius": [0.1] * 5, "min_attack_distance": [1.0] * 5,
        "rs_prediction": [0, 1, 9, 3, 4], "rs_radius": [0.6, 0.3, 0.9, 0.0, 1.2],
        "rs_abstain": [False, False, False, True, False], "rs_p_lower": [0.9, 0.7, 0.95, 0.4, 0.99],
    })
    metrics = run_metrics(examples, [0.0, 0.5, 1.0])
    # correct and not abstained: examples 0, 1 and 4 (2 predicts 9, 3 abstains)
    assert metrics["smoothed_accuracy"] == 0.6 and metrics["smoothed_abstain_rate"] == 0.2
    assert [metrics[f"smoothed_certified_accuracy@{r:g}"] for r in (0.0, 0.5, 1.0)] == [0.6, 0.4, 0.2]
    assert metrics["median_smoothed_radius"] == 0.3  # 0 where not a correct certificate
    plain = run_metrics(examples.drop(columns=[c for c in examples if c.startswith("rs_")]), [0.5])
    assert not [name for name in plain if "smoothed" in name]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A 1-epoch standard model on 200 digits; the experiment (20 test digits, smoothing on)."""
    from lmt import stage_config
    from lmt.config import validate_config
    from lmt.pipeline import train_stage

    experiment = validate_config({
        "data": {"n_train": 200, "n_test_embedded": 20}, "training": {"epochs": 1},
        "methods": {"lmt": {"c": 1.0}}, "certify": {"smoothing": {"sigma": 0.25, "n0": 10, "n": 100, "seed": 3}},
    })["experiments"]["default"]
    out = tmp_path_factory.mktemp("smoothing_run")
    train_stage(stage_config.train(experiment, "lmt", 0), str(out / "model.pt"), str(out / "log.csv"), progress=False)
    return out / "model.pt", experiment


def test_smoothing_stage_writes_its_columns_budget_and_reproduces(tmp_path, trained) -> None:
    from lmt import stage_config
    from lmt.pipeline import smoothing_stage
    from lmt.soundness import smoothing_problems

    model_path, experiment = trained
    config = stage_config.smoothing(experiment)
    frame = smoothing_stage(config, str(model_path), str(tmp_path / "smoothing.csv"), progress=False)
    assert list(frame.columns) == ["example_id", "rs_prediction", "rs_count", "rs_p_lower", "rs_radius", "rs_abstain"]
    assert len(frame) == 20 and not smoothing_problems(pd.read_csv(tmp_path / "smoothing.csv"))
    assert ((frame["rs_radius"] > 0) == ~frame["rs_abstain"]).all()
    provenance = json.loads((tmp_path / "smoothing.provenance.json").read_text())
    assert provenance["budget"] == {"sigma": 0.25, "n0": 10, "n": 100, "alpha": 0.001, "batch_size": 1000, "seed": 3}
    assert provenance["config"]["smoothing"]["seed"] == 3 and "1 - alpha = 0.999" in provenance["guarantee"]
    again = smoothing_stage(config, str(model_path), str(tmp_path / "again.csv"), progress=False)
    pd.testing.assert_frame_equal(frame, again)
