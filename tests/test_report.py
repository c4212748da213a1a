"""Tables and figures of an experiment: Table 1, mean ± std over seeds, the published
comparison, the LaTeX/Markdown writers, and the Fig. 3/4/5 building blocks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lmt.inequality_chain import chain_ratios, per_example_ratios
from lmt.report.accuracy_figure import plot_accuracy_vs_radius
from lmt.report.bound_figure import BARS, operator_rows
from lmt.report.formatting import interval, latex_table, mean_std, write_table
from lmt.report.intervals import clopper_pearson
from lmt.report.perturbations import PerturbationPanel, certified_perturbation_figure
from lmt.report.published import PUBLISHED_SETS, comparison_display, comparison_table, published_numbers
from lmt.report.tables import metrics_table, summary_display, summary_table, table1, table1_display

PUBLISHED = [number for name in PUBLISHED_SETS.list() for number in published_numbers(name)]

INF = float("inf")


def _examples(radii: list[float], cw: list[float], labels: list[int] | None = None,
              predictions: list[int] | None = None) -> pd.DataFrame:
    """A merged per-example table with one attack (cw) and chain columns."""
    n = len(radii)
    labels = labels or [0] * n
    predictions = predictions or labels
    return pd.DataFrame(
        {
            "example_id": range(n), "label": labels, "prediction": predictions,
            "certified_radius": radii, "radius_global_grad": [2 * r for r in radii],
            "radius_local_grad": [3 * r for r in radii],
            "cw_distance": cw, "cw_success": [d != INF for d in cw], "min_attack_distance": cw,
        }
    )


def test_table1_counts_attack_accuracy_above_r_and_certified_at_or_above_r() -> None:
    runs = [("lmt", 0, _examples([0.0, 0.5, 1.0, 1.5], [0.0, 0.6, 1.0, INF], predictions=[1, 0, 0, 0]))]
    summary = summary_table(metrics_table(runs, [0.5, 1.0]))
    row = table1(summary, "cw", [0.5, 1.0]).iloc[0]
    assert row["clean_accuracy"] == 0.75
    # distance > r: 0.6, 1.0, inf at 0.5; inf only at 1.0 (a distance equal to r breaks it)
    assert row["cw_accuracy@0.5"] == 0.75 and row["cw_accuracy@1"] == 0.25
    # radius ≥ r: 0.5, 1.0, 1.5 at 0.5; 1.0, 1.5 at 1.0
    assert row["certified_accuracy@0.5"] == 0.75 and row["certified_accuracy@1"] == 0.5
    with pytest.raises(KeyError, match="pgd"):
        table1(summary, "pgd", [0.5])


def test_several_seeds_give_mean_and_sample_std() -> None:
    runs = [
        ("lmt", 0, _examples([1.0, 1.0], [2.0, 2.0])),
        ("lmt", 1, _examples([1.0, 0.0], [2.0, 2.0])),
        ("lmt", 2, _examples([0.0, 0.0], [2.0, 2.0])),
    ]
    summary = summary_table(metrics_table(runs, [1.0]))
    row = summary.iloc[0]
    assert row["n_seeds"] == 3
    assert row["certified_accuracy@1"] == pytest.approx(0.5)
    assert row["certified_accuracy@1_std"] == pytest.approx(0.5)  # sample std of 1, 0.5, 0
    display = table1_display(table1(summary, "cw", [1.0]), "cw", [1.0])
    assert display["certified @1 (%)"].iloc[0].startswith("50.0 ± 50.0 [")


def test_clopper_pearson_matches_known_values() -> None:
    from scipy.stats import beta

    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))  # x = 0: [0, 1 − (α/2)^(1/n)]
    assert clopper_pearson(10, 10) == (pytest.approx(0.025 ** (1 / 10)), 1.0)  # x = n: [(α/2)^(1/n), 1]
    low, high = clopper_pearson(7, 20)
    assert low == pytest.approx(beta.ppf(0.025, 7, 14)) and high == pytest.approx(beta.ppf(0.975, 8, 13))
    assert low == pytest.approx(0.1539, abs=1e-4) and high == pytest.approx(0.5922, abs=1e-4)  # textbook values
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson(11, 10)


def test_summary_carries_the_interval_of_one_seed_and_of_the_mean_count_over_seeds() -> None:
    """Seeds share the test set: the interval is that of one seed's n at the mean count, not of
    the pooled count (which would treat the repeated examples as new draws)."""
    one = [("lmt", 0, _examples([1.0] * 7 + [0.0] * 13, [2.0] * 20))]
    row = summary_table(metrics_table(one, [1.0])).iloc[0]
    assert (row["certified_accuracy@1_ci_low"], row["certified_accuracy@1_ci_high"]) == \
        pytest.approx(clopper_pearson(7, 20))
    assert (row["clean_accuracy_ci_low"], row["clean_accuracy_ci_high"]) == pytest.approx(clopper_pearson(20, 20))
    assert "median_certified_radius_ci_low" not in row.index and "cw_success_rate_ci_low" not in row.index
    three = [("lmt", s, _examples([1.0] * k + [0.0] * (20 - k), [2.0] * 20)) for s, k in enumerate([7, 9, 11])]
    row = summary_table(metrics_table(three, [1.0])).iloc[0]
    assert row["certified_accuracy@1"] == pytest.approx(0.45)
    assert (row["certified_accuracy@1_ci_low"], row["certified_accuracy@1_ci_high"]) == \
        pytest.approx(clopper_pearson(9, 20))  # mean of 7, 9, 11 of 20
    assert (row["cw_accuracy@1_ci_low"], row["cw_accuracy@1_ci_high"]) == pytest.approx(clopper_pearson(20, 20))


def test_attack_accuracies_count_only_the_attacked_examples() -> None:
    """attack.n_examples: certified and clean accuracies over every example, attack accuracies,
    and their interval, over the attacked ones."""
    examples = _examples([1.0] * 10 + [0.0] * 10, [2.0] * 10 + [0.5] * 10)
    examples["attacked"] = [True] * 10 + [False] * 10
    examples.loc[10:, ["cw_distance", "min_attack_distance"]] = float("nan")
    row = summary_table(metrics_table([("lmt", 0, examples)], [1.0])).iloc[0]
    assert row["n_examples"] == 20 and row["n_attacked"] == 10
    assert row["certified_accuracy@1"] == pytest.approx(0.5)
    assert row["cw_accuracy@1"] == pytest.approx(1.0)
    assert (row["cw_accuracy@1_ci_low"], row["cw_accuracy@1_ci_high"]) == pytest.approx(clopper_pearson(10, 10))


def test_smoothed_accuracies_get_intervals_and_rates_do_not() -> None:
    plain = _examples([1.0, 0.0, 0.0, 0.0], [2.0] * 4)
    runs = [("lmt", 0, _smoothed(plain, [0.6, 1.2, 0.0, 0.3], [False, False, True, False]))]
    row = summary_table(metrics_table(runs, [1.0])).iloc[0]
    assert (row["smoothed_certified_accuracy@1_ci_low"], row["smoothed_certified_accuracy@1_ci_high"]) == \
        pytest.approx(clopper_pearson(1, 4))
    assert (row["smoothed_accuracy_ci_low"], row["smoothed_accuracy_ci_high"]) == pytest.approx(clopper_pearson(3, 4))
    assert "smoothed_abstain_rate_ci_low" not in row.index
    shown = summary_display(summary_table(metrics_table(runs, [1.0])))
    assert shown["RS certified acc. @1 (p ≥ 1−α) (%)"].iloc[0] == "25.0 [0.6, 80.6]"


def test_display_cells_show_mean_std_and_interval() -> None:
    runs = [("lmt", s, _examples([1.0] * k + [0.0] * (20 - k), [2.0] * 20)) for s, k in enumerate([7, 9, 11])]
    runs.append(("standard", 0, _examples([1.0] * 7 + [0.0] * 13, [2.0] * 20)))
    summary = summary_table(metrics_table(runs, [1.0]))
    low, high = clopper_pearson(9, 20)
    display = summary_display(summary).set_index("method")
    assert display.loc["lmt", "certified acc. @1 (%)"] == f"45.0 ± 10.0 [{100 * low:.1f}, {100 * high:.1f}]"
    assert display.loc["standard", "certified acc. @1 (%)"] == "35.0 [15.4, 59.2]"
    assert display.loc["standard", "clean accuracy (%)"] == "100.0 [83.2, 100.0]"
    assert not any("ci" in column for column in display.columns)
    first = table1_display(table1(summary, "cw", [1.0]), "cw", [1.0]).set_index("method")
    assert first.loc["standard", "certified @1 (%)"] == "35.0 [15.4, 59.2]"
    assert interval(0.1539, 0.5922) == "[15.4, 59.2]" and interval(float("nan"), 1.0) == "—"


def test_mean_std_formatting() -> None:
    assert mean_std(0.906, 0.0, 1, True) == "90.6"
    assert mean_std(0.906, 0.004, 3, True) == "90.6 ± 0.4"
    assert mean_std(6.4512, 0.1, 2, False) == "6.45 ± 0.1"
    assert mean_std(float("nan"), float("nan"), 1, True) == "—"


def test_table_is_written_as_csv_markdown_and_latex(tmp_path: Path) -> None:
    data = pd.DataFrame({"method": ["lmt_x"], "acc": [0.5]})
    display = pd.DataFrame({"method": ["lmt_x"], "acc ≥ r (%)": ["50.0 ± 1.0"]})
    written = write_table(tmp_path / "t", data, display, "A caption.", "A note.")
    assert [p.suffix for p in written] == [".csv", ".md", ".tex"]
    assert pd.read_csv(tmp_path / "t.csv").equals(data)
    markdown = (tmp_path / "t.md").read_text()
    assert "50.0 ± 1.0" in markdown and markdown.rstrip().endswith("A note.")
    tex = (tmp_path / "t.tex").read_text()
    assert r"\toprule" in tex and r"lmt\_x" in tex and r"$\pm$" in tex and r"$\geq$" in tex
    assert r"\caption{A caption. A note.}" in tex and r"\label{tab:t}" in tex
    assert "±" not in latex_table(display, "c", "l")


def _chain(method: str, medians: dict[str, float], seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame([{"method": method, "seed": seed, "ratio": r, "median": m} for r, m in medians.items()])


def test_published_comparison_puts_our_value_beside_each_verified_number() -> None:
    runs = [("lmt", 0, _examples([1.6, 0.1, 2.0, 0.0], [2.0, 2.0, 2.0, 0.0]))]
    summary = summary_table(metrics_table(runs, [1.58]))
    chain = pd.concat([
        _chain("standard", {"(B)/(A)": 6.0, "(C)/(B)": 1.0, "(D)/(C)": 1.5}),
        _chain("standard", {"(B)/(A)": 8.0, "(C)/(B)": 1.2, "(D)/(C)": 1.5}, seed=1),
    ])
    table = comparison_table("mnist_wk", summary, chain).set_index("quantity")
    assert table.loc["median ratio (B)/(A)", "value"] == 39.9
    assert table.loc["median ratio (B)/(A)", "ours"] == pytest.approx(7.0)
    assert table.loc["median ratio (B)/(A)", "ours_std"] == pytest.approx(math.sqrt(2))
    assert table.loc["certified accuracy @1.58", "ours"] == pytest.approx(50.0)  # percent
    assert table.loc["clean accuracy", "value"] == 86.48
    assert table.loc["PGD-100 accuracy @1.58", "our_seeds"] == 0  # no PGD was run
    with pytest.raises(KeyError, match="unknown published-number set 'imagenet'; registered"):
        comparison_table("imagenet", summary, chain)


def test_published_numbers_are_only_the_verified_ones() -> None:
    assert {n.status for n in PUBLISHED} <= {"paper (quoted)", "third party"}
    assert all(n.source for n in PUBLISHED)
    quoted = {(n.quantity, n.value) for n in PUBLISHED if n.status == "paper (quoted)"}
    assert quoted == {("median ratio (B)/(A)", 39.9), ("median ratio (C)/(B)", 1.13), ("median ratio (D)/(C)", 1.82)}
    assert {n.published_set for n in PUBLISHED} == set(PUBLISHED_SETS.list())


def test_the_modern_mnist_anchors_compare_gloro_and_lmt_at_1_58() -> None:
    """config/modern_mnist.yaml's anchors: GloRo's 62.8 % (its own network) and BCP's LMT 40.55 %
    certified at 1.58, each beside our method of the same name, with its source."""
    numbers = {(n.method, n.metric): n for n in published_numbers("modern_mnist")}
    assert numbers[("gloro", "certified_accuracy@1.58")].value == 62.8
    assert numbers[("lmt", "certified_accuracy@1.58")].value == 40.55
    assert "ICML 2021" in numbers[("gloro", "certified_accuracy@1.58")].source
    summary = pd.DataFrame({"method": ["gloro"], "n_seeds": [1], "certified_accuracy@1.58": [0.5]})
    table = comparison_table("modern_mnist", summary, pd.DataFrame(columns=["method", "ratio", "median"]))
    assert table.set_index("method").loc["gloro", "ours"] == pytest.approx(50.0)
    assert (table.loc[table["method"] == "lmt", "our_seeds"] == 0).all()  # not run here


def test_a_sweep_of_a_published_method_is_compared_run_by_run() -> None:
    """A c sweep runs lmt.c4 and lmt.c8, no plain lmt: BCP's LMT numbers are shown beside each
    run of the sweep, labelled with it, not as "not run here"; a plain lmt run, where there is
    one, is the only counterpart."""
    summary = pd.DataFrame({"method": ["lmt.c4", "lmt.c8", "gloro"], "n_seeds": [1, 1, 1],
                            "certified_accuracy@1.58": [0.401, 0.405, 0.3], "clean_accuracy": [0.886, 0.885, 0.9]})
    chain = pd.DataFrame(columns=["method", "ratio", "median"])
    table = comparison_table("modern_mnist", summary, chain)
    lmt = table[table["metric"] == "certified_accuracy@1.58"].set_index("method")
    assert set(lmt.index) == {"gloro", "lmt.c4", "lmt.c8"}
    assert lmt.loc["lmt.c8", "value"] == 40.55 and lmt.loc["lmt.c8", "ours"] == pytest.approx(40.5)
    assert lmt.loc["lmt.c4", "ours"] == pytest.approx(40.1) and lmt.loc["lmt.c4", "our_seeds"] == 1
    assert "lmt.c8" in comparison_display(table)["method"].tolist()
    plain = pd.concat([summary, pd.DataFrame({"method": ["lmt"], "n_seeds": [3], "certified_accuracy@1.58": [0.2]})])
    rows = comparison_table("modern_mnist", plain, chain)
    assert rows.loc[rows["metric"] == "certified_accuracy@1.58", "method"].tolist().count("lmt") == 1
    assert not rows["method"].str.startswith("lmt.").any()


def test_the_cifar10_anchors_compare_each_one_lipschitz_layer_on_its_own_network() -> None:
    """config/cifar10.yaml's anchors at 36/255: Prach et al.'s SOC-M, SLL-M, AOL-M, CPL-M beside
    our offset_ce on the ConvNet-S of the same layer only; LiResNet and randomized smoothing
    (probabilistic) have no counterpart here and say so rather than fail."""
    numbers = {n.quantity: n for n in published_numbers("cifar10")}
    expected = {"SOC-M": 66.3, "SLL-M": 62.8, "AOL-M": 61.0, "CPL-M": 65.1, "LiResNet": 78.1}
    for name, value in expected.items():
        (number,) = [n for q, n in numbers.items() if f"({name}" in q and n.metric == "certified_accuracy@0.1412"]
        assert number.value == value and number.unit == "%" and number.source, name
    assert numbers["clean accuracy (SOC-M; ours ConvNet-S)"].value == 76.9
    (smoothed,) = [n for n in numbers.values() if n.metric == "smoothed_certified_accuracy@0.1412"]
    assert smoothed.value == 69.6 and "probabilistic" in smoothed.quantity and "locuslab/smoothing" in smoothed.source
    assert all("probabilistic" not in n.quantity for n in numbers.values() if n is not smoothed)
    assert "CVPR 2024" in numbers["certified accuracy @36/255 (SOC-M; ours ConvNet-S)"].source

    from lmt.models import list_models

    assert {n.model for n in numbers.values()} - {None} <= set(list_models())  # real networks of ours
    summary = pd.DataFrame({"method": ["offset_ce", "gloro"], "n_seeds": [2, 2],
                            "clean_accuracy": [0.7, 0.6], "clean_accuracy_std": [0.01, 0.01],
                            "certified_accuracy@0.1412": [0.55, 0.5], "certified_accuracy@0.1412_std": [0.02, 0.02]})
    chain = pd.DataFrame(columns=["method", "ratio", "median"])
    table = comparison_table("cifar10", summary, chain, "aol_convnet_s").set_index("quantity")
    assert table.loc["certified accuracy @36/255 (AOL-M; ours ConvNet-S)", "ours"] == pytest.approx(55.0)
    sll = table.loc["certified accuracy @36/255 (SLL-M; ours ConvNet-S)"]
    assert sll["our_seeds"] == 0 and sll["ours_missing"] == "no counterpart: published on sll_convnet_s, ours on aol_convnet_s"
    assert table.loc["clean accuracy (SOC-M; ours ConvNet-S)", "ours_missing"] == (
        "no counterpart: published on soc_convnet_s, ours on aol_convnet_s")
    soc = comparison_table("cifar10", summary, chain, "soc_convnet_s").set_index("quantity")
    assert soc.loc["clean accuracy (SOC-M; ours ConvNet-S)", "ours"] == pytest.approx(70.0)
    display = comparison_display(comparison_table("cifar10", summary, chain, "aol_convnet_s")).set_index("quantity")
    assert display.loc["certified accuracy @36/255 (AOL-M; ours ConvNet-S) (%)", "ours"] == "55 ± 2"
    assert display.loc["certified accuracy @36/255 (LiResNet, generated data) (%)", "ours"] == (
        "— (no counterpart: method liresnet not run here)")
    assert display.loc[f"{smoothed.quantity} (%)", "ours"] == "— (no counterpart: method gaussian_noise not run here)"
    # On the WRN experiment no 1-Lipschitz number is compared; BCP's LMT numbers still are.
    wrn = comparison_table("cifar10", summary.assign(method=["lmt", "gloro"]), chain, "wrn_16_4")
    assert (wrn.loc[wrn["model"].notna(), "our_seeds"] == 0).all()
    assert wrn.loc[wrn["quantity"] == "clean accuracy (BCP Model1)", "ours"].item() == pytest.approx(70.0)


def test_chain_figure_ratios_have_the_table_medians() -> None:
    examples = _examples([0.5, 1.0, 0.0, 2.0], [3.0, 4.0, 0.0, INF])
    ratios = per_example_ratios(examples)
    table = chain_ratios(examples).set_index("ratio")
    for name, values in ratios.items():
        assert np.median(values) == pytest.approx(table.loc[name, "median"])
        assert len(values) == table.loc[name, "n_examples"]


def test_bound_figure_keeps_layers_whose_bounds_differ_and_the_network() -> None:
    rows = pd.DataFrame(
        [
            {"layer": "0", "type": "Conv2d", **dict.fromkeys(BARS, 1.0), "cor1": 2.0},
            {"layer": "1", "type": "ReLU", **dict.fromkeys(BARS, 1.0)},
            {"layer": "total", "type": "network", **dict.fromkeys(BARS, 5.0)},
            {"layer": "body", "type": "network", **dict.fromkeys(BARS, 4.0)},
        ]
    )
    kept = operator_rows(rows)
    assert kept["layer"].tolist() == ["0", "total"]


def test_perturbation_figure_rejects_a_flip_inside_the_claimed_radius() -> None:
    """A wrong (too large) radius must not pass silently: the figure re-checks the prediction."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    x = torch.tensor([[[[0.6, 0.4], [0.0, 0.0]]]])  # margin 0.2, exact distance 0.2/√2 ≈ 0.141
    y = torch.tensor([0])
    ok = certified_perturbation_figure([PerturbationPanel("lin", model, x, y, torch.tensor([0.14]))])
    assert ok.axes
    with pytest.raises(AssertionError, match="unsound"):
        certified_perturbation_figure([PerturbationPanel("lin", model, x, y, torch.tensor([0.2]))])


def _smoothed(examples: pd.DataFrame, rs_radius: list[float], rs_abstain: list[bool]) -> pd.DataFrame:
    """``examples`` with randomized-smoothing columns (prediction = label where not abstained)."""
    return examples.assign(rs_prediction=examples["label"], rs_radius=rs_radius, rs_abstain=rs_abstain)


def _lines(fig) -> dict[str, tuple[str, np.ndarray]]:
    """Legend label → (line style, y values) of the figure's curves."""
    return {line.get_label(): (line.get_linestyle(), line.get_ydata()) for line in fig.axes[0].get_lines()}


def test_accuracy_figure_bands_the_spread_only_with_several_seeds() -> None:
    import matplotlib.pyplot as plt

    one = [("lmt", 0, _examples([1.0, 0.0], [2.0, 2.0]))]
    fig = plot_accuracy_vs_radius(one, 1.5)
    assert not fig.axes[0].collections  # one seed: no band
    assert set(_lines(fig)) == {"lmt: certified", "lmt: under attacks"}
    plt.close(fig)
    several = [*one, ("lmt", 1, _examples([1.0, 1.0], [2.0, 2.0])), ("standard", 0, _examples([0.0, 0.0], [1.0, 1.0]))]
    fig = plot_accuracy_vs_radius(several, 0.9)  # certified: seed 0 at 0.5 and seed 1 at 1.0 for 0 < r ≤ 0.9
    bands = fig.axes[0].collections
    assert len(bands) == 2  # lmt's certified and under-attack curves; standard has one seed
    style, mean = _lines(fig)["lmt: certified"]
    assert style == "-" and mean[1:] == pytest.approx(0.75)  # the mean of the seeds
    low, high = bands[0].get_paths()[0].vertices[:, 1].min(), bands[0].get_paths()[0].vertices[:, 1].max()
    assert (low, high) == (pytest.approx(0.5), pytest.approx(1.0))  # min–max over the seeds
    plt.close(fig)


def test_accuracy_figure_draws_the_smoothed_curve_only_with_rs_columns() -> None:
    import matplotlib.pyplot as plt

    plain = _examples([1.0, 0.0, 0.0, 0.0], [2.0] * 4)
    fig = plot_accuracy_vs_radius([("lmt", 0, plain)], 1.5)
    assert not any("RS" in label for label in _lines(fig))
    plt.close(fig)
    smoothed = _smoothed(plain, [0.6, 1.2, 0.0, 0.3], [False, False, True, False])
    fig = plot_accuracy_vs_radius([("lmt", 0, smoothed)], 1.5)
    style, values = _lines(fig)["lmt: RS (probabilistic)"]
    grid = fig.axes[0].get_lines()[0].get_xdata()
    assert style == ":"
    assert values[0] == pytest.approx(0.75)  # three not abstained, all correct
    assert values[np.searchsorted(grid, 1.0)] == pytest.approx(0.25)  # only radius 1.2 ≥ 1
    plt.close(fig)
