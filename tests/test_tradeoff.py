"""The trade-off table and figure of a sweep, from synthetic per-run metrics: one row per swept
value, mean ± std over seeds, and the stage's files."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lmt import stage_config
from lmt.config import validate_config
from lmt.report.stages import tradeoff_stage
from lmt.report.tradeoff_table import swept_params, tradeoff_display, tradeoff_table

RADII = [0.5, 1.58, 2.0]


def _metrics(runs: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    """A long metrics table: per run label, (clean, certified@1.58) per seed."""
    rows = []
    for label, seeds in runs.items():
        for seed, (clean, cert) in enumerate(seeds):
            values = {"clean_accuracy": clean, "certified_accuracy@0.5": cert + 0.1, "certified_accuracy@1.58": cert,
                      "certified_accuracy@2": cert / 2, "median_certified_radius": 10 * cert}
            rows += [{"method": label, "seed": seed, "metric": k, "value": v} for k, v in values.items()]
    return pd.DataFrame(rows)


def _swept(seeds: list[int]) -> dict:
    return validate_config({"seeds": seeds, "methods": {"standard": {}, "lmt": {"c": [1, 2, 4]}},
                            "report": {"radii": RADII}})["experiments"]["default"]


def test_one_row_per_swept_value_with_mean_and_std_over_seeds() -> None:
    experiment = _swept([0, 1])
    metrics = _metrics({"standard": [(0.99, 0.0)] * 2, "lmt.c1": [(0.96, 0.30), (0.94, 0.34)],
                        "lmt.c2": [(0.92, 0.40), (0.92, 0.40)], "lmt.c4": [(0.80, 0.45), (0.84, 0.47)]})
    table = tradeoff_table(metrics, experiment["sweeps"], RADII)
    assert list(table["method"]) == ["lmt.c1", "lmt.c2", "lmt.c4"] and list(table["c"]) == [1.0, 2.0, 4.0]
    assert set(table["sweep"]) == {"lmt"} and (table["n_seeds"] == 2).all()
    first = table.iloc[0]
    assert math.isclose(first["clean_accuracy"], 0.95) and math.isclose(first["certified_accuracy@1.58"], 0.32)
    assert math.isclose(first["certified_accuracy@1.58_std"], pd.Series([0.30, 0.34]).std(ddof=1))
    assert math.isclose(first["median_certified_radius"], 3.2)
    assert {"certified_accuracy@0.5", "certified_accuracy@2"} <= set(table.columns)
    shown = tradeoff_display(table, swept_params(experiment["sweeps"]), RADII)
    assert list(shown["c"]) == ["1", "2", "4"]
    assert shown.loc[0, "clean (%)"] == "95.0 ± 1.4" and shown.loc[0, "certified @1.58 (%)"] == "32.0 ± 2.8"


def test_one_seed_has_no_std_and_the_stage_writes_every_format(tmp_path: Path) -> None:
    experiment = _swept([0])
    metrics = _metrics({"standard": [(0.99, 0.0)], "lmt.c1": [(0.95, 0.3)], "lmt.c2": [(0.9, 0.4)],
                        "lmt.c4": [(0.8, 0.45)]})
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    settings = stage_config.tradeoff(experiment)
    assert settings["report"]["tradeoff_radius"] == 1.58  # the largest radius ≤ 1.58
    table = tradeoff_stage(settings, str(tmp_path / "metrics.csv"), str(tmp_path / "fig"), str(tmp_path / "tab"))
    assert table["clean_accuracy_std"].isna().all()
    assert "±" not in (tmp_path / "tab.md").read_text().split("\n\n")[0]
    for name in ("tab.csv", "tab.md", "tab.tex", "fig.png", "fig.pdf", "tab.provenance.json", "fig.provenance.json"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_the_tradeoff_radius_default_and_override() -> None:
    experiment = validate_config({"report": {"radii": [2.0, 3.0]}})["experiments"]["default"]
    assert stage_config.tradeoff_radius(experiment) == 2.0  # none ≤ 1.58: the smallest
    experiment = validate_config({"report": {"radii": [0.5, 1.0], "tradeoff_radius": 0.5}})["experiments"]["default"]
    assert stage_config.tradeoff_radius(experiment) == 0.5


def test_the_tradeoff_radius_reruns_only_the_tradeoff_job() -> None:
    base = {"methods": {"lmt": {"c": [1, 2]}}, "report": {"radii": [0.5, 1.0]}}
    one, other = (validate_config({**base, "report": {"radii": [0.5, 1.0], "tradeoff_radius": r}})["experiments"]
                  ["default"] for r in (0.5, 1.0))
    assert stage_config.tradeoff(one) != stage_config.tradeoff(other)
    assert stage_config.aggregate(one) == stage_config.aggregate(other)
    assert stage_config.accuracy_figure(one) == stage_config.accuracy_figure(other)
