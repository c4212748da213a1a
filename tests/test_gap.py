"""The certificate–attack gap (lmt.report.gap): per-example intervals [best deterministic
certificate, smallest attack distance], their per-method table and figure, and the cases that
must fail closed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmt import stage_config
from lmt.config import validate_config
from lmt.report.gap import example_intervals, gap_display, gap_note, gap_runs, gap_table, plot_gap
from lmt.report.stages import gap_stage
from lmt.soundness import NonFiniteError, SoundnessError

INF = float("inf")


def _examples(**overrides) -> pd.DataFrame:
    """Six examples, two attacks (cw, ddn): id 4 is misclassified, id 5 was not attacked.

    ============  =====  =====  =====  =====  =====  =====
    example_id    0      1      2      3      4      5
    ============  =====  =====  =====  =====  =====  =====
    certified     0.5    0.2    0.0    1.0    0.0    0.3
    prop1         0.4    0.3    0.0    0.5    0.0    0.1
    cw            1.0    0.9    0.4    inf    0.0    NaN
    ddn           2.0    0.6    0.8    inf    0.0    NaN
    ============  =====  =====  =====  =====  =====  =====

    Attacked and correct: ids 0–3; lower = 0.5, 0.3, 0.0, 1.0; upper = 1.0, 0.6, 0.4, inf.
    """
    frame = pd.DataFrame({
        "example_id": range(6),
        "label": [0, 1, 2, 3, 4, 5],
        "prediction": [0, 1, 2, 3, 0, 5],
        "margin": [1.0, 0.5, 0.0, 2.0, -1.0, 0.7],
        "certified_radius": [0.5, 0.2, 0.0, 1.0, 0.0, 0.3],
        "radius_prop1": [0.4, 0.3, 0.0, 0.5, 0.0, 0.1],
        "radius_without_rounding": [9.0, 9.0, 9.0, 9.0, 9.0, 9.0],  # not a certificate: never the lower bound
        "radius_global_grad": [5.0, 5.0, 5.0, 5.0, 5.0, np.nan],  # (B): an estimate, not a certificate
        "cw_distance": [1.0, 0.9, 0.4, INF, 0.0, np.nan],
        "cw_success": [True, True, True, False, True, np.nan],
        "ddn_distance": [2.0, 0.6, 0.8, INF, 0.0, np.nan],
        "ddn_success": [True, True, True, False, True, np.nan],
        "min_attack_distance": [1.0, 0.6, 0.4, INF, 0.0, np.nan],
        "attacked": [True, True, True, True, True, False],
    })
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_intervals_take_the_best_certificate_and_the_smallest_attack_distance() -> None:
    intervals = example_intervals(_examples())
    assert intervals["example_id"].tolist() == [0, 1, 2, 3]  # misclassified 4 and unattacked 5 left out
    assert intervals["lower"].tolist() == [0.5, 0.3, 0.0, 1.0]  # max(certified, prop1); not 9 nor 5
    assert intervals["upper"].tolist() == [1.0, 0.6, 0.4, INF]  # min over cw and ddn; ∞ where none broke it
    assert intervals["gap"].tolist() == pytest.approx([0.5, 0.3, 0.4, INF])
    assert intervals["ratio"].tolist() == pytest.approx([2.0, 2.0, INF, INF])  # lower = 0 → ∞


def test_a_tight_interval_has_ratio_one_even_at_zero() -> None:
    frame = _examples(cw_distance=[0.5, 0.9, 0.0, INF, 0.0, np.nan], ddn_distance=[0.5, 0.6, 0.0, INF, 0.0, np.nan])
    assert example_intervals(frame)["ratio"].tolist()[:3] == [1.0, 2.0, 1.0]


def test_table_medians_count_unbroken_examples_and_average_over_seeds() -> None:
    one = gap_runs([("lmt", 0, _examples())]).iloc[0]
    assert one["n"] == 4
    assert one["median_lower"] == pytest.approx(0.4)  # of 0, 0.3, 0.5, 1
    assert one["median_upper"] == pytest.approx(0.8)  # of 0.4, 0.6, 1, ∞: ∞ is an order statistic, not dropped
    assert one["median_gap"] == pytest.approx(0.45)  # of 0.3, 0.4, 0.5, ∞
    assert one["median_ratio"] == INF  # of 2, 2, ∞, ∞
    assert one["frac_upper_inf"] == pytest.approx(0.25)
    assert "median_rs_radius" not in one  # no smoothing columns, no smoothing metrics

    # A second seed where every attack succeeds at 2 × lower (id 2 at 0.4 with lower 0: ratio ∞).
    second = _examples(cw_distance=[1.0, 0.6, 0.4, 2.0, 0.0, np.nan], ddn_distance=[1.0, 0.6, 0.4, 2.0, 0.0, np.nan])
    table = gap_table([("lmt", 0, _examples()), ("lmt", 1, second), ("standard", 0, _examples())])
    assert table["method"].tolist() == ["lmt", "standard"]
    lmt, standard = table.iloc[0], table.iloc[1]
    assert lmt["n_seeds"] == 2 and standard["n_seeds"] == 1
    assert lmt["median_upper"] == pytest.approx((0.8 + 0.8) / 2)
    assert lmt["median_upper_std"] == pytest.approx(0.0)
    assert lmt["frac_upper_inf"] == pytest.approx(0.125) and lmt["frac_upper_inf_std"] == pytest.approx(
        np.std([0.25, 0.0], ddof=1))
    assert lmt["median_gap"] == pytest.approx(0.45)  # second seed: gaps 0.5, 0.3, 0.4, 1.0 (median 0.45 too)
    assert lmt["median_ratio"] == INF and np.isnan(lmt["median_ratio_std"])  # one seed's median is ∞
    assert np.isnan(standard["median_upper_std"])  # one seed: no std

    display = gap_display(table)
    assert display.loc[0, "median upper"] == "0.8 ± 0"
    assert display.loc[0, "median ratio (×)"] == "∞"
    assert display.loc[0, "upper = ∞ (%)"] == "12.5 ± 17.7"
    assert display.loc[1, "n"] == "4" and display.loc[0, "n"] == "4.0 ± 0.0"
    assert not any("RS" in column for column in display.columns)


def test_randomized_smoothing_radii_stay_out_of_the_lower_bound() -> None:
    # Smoothed radii far above every attack distance: another classifier, probabilistic; they
    # must neither raise nor raise the lower bound.
    frame = _examples(rs_prediction=[0, 1, 0, 3, 4, 5], rs_radius=[5.0, 7.0, 3.0, 0.0, 1.0, 1.0],
                      rs_abstain=[False, False, False, True, False, False])
    intervals = example_intervals(frame)
    assert intervals["lower"].tolist() == [0.5, 0.3, 0.0, 1.0]
    assert intervals["rs_radius"].tolist() == [5.0, 7.0, 0.0, 0.0]  # id 2 wrong, id 3 abstained: 0
    row = gap_table([("rs", 0, frame)]).iloc[0]
    assert row["median_lower"] == pytest.approx(0.4)
    assert row["median_rs_radius"] == pytest.approx(2.5) and row["rs_certified_fraction"] == pytest.approx(0.5)
    display = gap_display(gap_table([("rs", 0, frame)]))
    rs_columns = [c for c in display.columns if "probabilistic (randomized smoothing, smoothed classifier)" in c]
    assert len(rs_columns) == 2 and display.loc[0, rs_columns[0]] == "2.5"
    note = gap_note({"sigma": 0.5, "alpha": 0.001}, smoothed_columns=True)
    assert "σ = 0.5" in note and "0.999" in note and "not mixed into lower" in note
    assert "smoothing" not in gap_note()


@pytest.mark.parametrize("column", ["certified_radius", "radius_prop1"])
@pytest.mark.parametrize("bad", [np.nan, INF])
def test_a_non_finite_lower_bound_fails_closed(column: str, bad: float) -> None:
    values = [0.5, 0.2, 0.0, 1.0, 0.0, 0.3]
    values[1] = bad
    with pytest.raises(NonFiniteError, match=rf"(?s)lmt/seed0.*{column}.*ids: \[1\]"):
        example_intervals(_examples(**{column: values}), "lmt/seed0")


def test_a_nan_attack_distance_on_an_attacked_example_fails_closed() -> None:
    with pytest.raises(NonFiniteError, match=r"(?s)'ddn_distance' is NaN or -inf for 1 example.*ids: \[2\]"):
        example_intervals(_examples(ddn_distance=[2.0, 0.6, np.nan, INF, 0.0, np.nan]))


def test_a_certificate_above_an_attack_distance_fails_closed() -> None:
    # Prop. 1 radius 0.7 of id 1 above DDN's 0.6: the soundness gate checks only the certified
    # radius, so the gap checks every certificate it uses.
    with pytest.raises(SoundnessError, match=r"(?s)larger than an attack distance; ids: \[1\]"):
        example_intervals(_examples(radius_prop1=[0.4, 0.7, 0.0, 0.5, 0.0, 0.1]))


def test_a_table_without_attacks_is_an_error() -> None:
    with pytest.raises(KeyError, match="no attack distance column"):
        example_intervals(_examples().drop(columns=["cw_distance", "ddn_distance"]))


def test_the_figure_draws_both_curves_and_marks_unbroken_examples() -> None:
    fig = plot_gap([("lmt", 0, _examples()), ("lmt", 1, _examples()), ("standard", 0, _examples())], "toy")
    top = fig.axes[0]
    labels = top.get_legend_handles_labels()[1]
    assert "lower: best certified radius" in labels and "upper: smallest attack distance" in labels
    assert "no attack succeeded (upper = ∞): 2" in labels  # one per seed
    assert top.get_title() == "lmt (2 seeds, n = 8)"
    lower = next(line for line in top.get_lines() if line.get_label().startswith("lower"))
    assert sorted(lower.get_ydata().tolist()) == [0.0, 0.0, 0.3, 0.3, 0.5, 0.5, 1.0, 1.0]
    assert fig.axes[1].get_title() == "standard (1 seed, n = 4)"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_stage_writes_the_table_the_figure_and_their_provenance(tmp_path: Path) -> None:
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"examples{seed}.csv"
        _examples().to_csv(path, index=False)
        paths.append(str(path))
    experiment = validate_config({
        "experiment": "gap", "methods": {"lmt": {}}, "attack": {"attacks": {"cw": {}}},
        "certify": {"smoothing": {"sigma": 0.25}},
    })["experiments"]["gap"]
    config = stage_config.gap(experiment)
    assert config == {"experiment": "gap", "smoothing": {"alpha": 0.001, "sigma": 0.25}}
    gap_stage(config, paths, [("lmt", 0), ("lmt", 1)], str(tmp_path / "figure"), str(tmp_path / "table"))
    for name in ("table.csv", "table.md", "table.tex", "figure.png", "figure.pdf"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert pd.read_csv(tmp_path / "table.csv")["n"].tolist() == [4]
    markdown = (tmp_path / "table.md").read_text()
    assert "| lmt " in markdown and "median gap" in markdown and "probabilistic" not in markdown  # no rs columns
    for stem in ("table", "figure"):
        record = json.loads((tmp_path / f"{stem}.provenance.json").read_text())
        assert record["config"] == config
