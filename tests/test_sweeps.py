"""Sweeps: a method parameter written as a list expands to tagged runs (lmt.sweeps), recorded in
the resolved settings, valid against the schema, and every bad sweep names its key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lmt.config import ConfigError, load_schema, validate_config
from lmt.config import _check_schema as check_schema
from lmt.sweeps import label_value, run_label, sweep_runs


def _experiment(methods: dict, **sections) -> dict:
    return validate_config({"methods": methods, **sections})["experiments"]["default"]


def test_a_list_runs_once_per_value_with_a_label_safe_tag() -> None:
    experiment = _experiment({"standard": {}, "lmt": {"c": [1, 2.5], "variant": "prop2"}})
    assert experiment["methods"] == {
        "standard": {}, "lmt.c1": {"c": 1.0, "variant": "prop2"}, "lmt.c2_5": {"c": 2.5, "variant": "prop2"}}
    assert experiment["sweeps"] == {
        "lmt": {"params": {"c": [1.0, 2.5]}, "runs": {"lmt.c1": {"c": 1.0}, "lmt.c2_5": {"c": 2.5}}}}
    check_schema(experiment, load_schema())  # the resolved settings stay valid


def test_values_are_typed_as_the_parameter_so_a_sweep_equals_the_explicit_run() -> None:
    swept = _experiment({"lmt": {"c": [2]}})["methods"]
    explicit = _experiment({"lmt.c2": {"c": 2.0}})["methods"]
    assert swept == explicit == {"lmt.c2": {"c": 2.0}}
    assert type(swept["lmt.c2"]["c"]) is float


def test_two_swept_parameters_run_their_product_and_an_existing_tag_stays_in_front() -> None:
    experiment = _experiment({"lmt.big": {"c": [1, 2], "c_start": 0.5, "warmup_epochs": [5, 10]}})
    assert list(experiment["methods"]) == [
        "lmt.big-c1-warmup_epochs5", "lmt.big-c1-warmup_epochs10", "lmt.big-c2-warmup_epochs5",
        "lmt.big-c2-warmup_epochs10"]
    assert experiment["methods"]["lmt.big-c2-warmup_epochs10"] == {"c": 2.0, "c_start": 0.5, "warmup_epochs": 10.0}
    sweep = experiment["sweeps"]["lmt.big"]
    assert sweep["params"] == {"c": [1.0, 2.0], "warmup_epochs": [5.0, 10.0]}
    assert [values for _, values in sweep_runs(sweep)] == [
        {"c": 1.0, "warmup_epochs": 5.0}, {"c": 1.0, "warmup_epochs": 10.0},
        {"c": 2.0, "warmup_epochs": 5.0}, {"c": 2.0, "warmup_epochs": 10.0}]


def test_each_experiment_expands_its_own_methods() -> None:
    config = validate_config({"experiments": {"swept": {"methods": {"lmt": {"c": [1, 2]}}}, "plain": {}}})
    assert list(config["experiments"]["swept"]["methods"]) == ["lmt.c1", "lmt.c2"]
    assert config["experiments"]["plain"]["sweeps"] == {}


@pytest.mark.parametrize("value, tag", [(1, "1"), (2.0, "2"), (2.5, "2_5"), (-1, "m1"), (1e-05, "1em05"),
                                        (True, "true"), ("prop2_clipped", "prop2_clipped")])
def test_label_values(value, tag) -> None:
    assert label_value(value) == tag
    assert run_label("lmt", {"c": value}) == f"lmt.c{tag}"


@pytest.mark.parametrize("config, key, problem", [
    ({"methods": {"lmt": {"c": []}}}, "methods.lmt.c", "empty list"),
    ({"methods": {"lmt": {"c": [1, 1.0]}}}, "methods.lmt.c", "duplicate value"),
    ({"methods": {"lmt": {"c": [1, "x"]}}}, "methods.lmt.c", "value 2 of the sweep must be a finite number"),
    ({"methods": {"lmt": {"c": [1, 2]}, "lmt.c2": {"c": 2.0}}}, "methods.lmt", "'lmt.c2' is also configured by methods.lmt.c2"),
    ({"methods": {"lmt.c2": {"c": 2.0}, "lmt": {"c": [2]}}}, "methods.lmt", "'lmt.c2' is also configured by methods.lmt.c2"),
    ({"methods": {"lmt": {"c": [0.5, 2], "c_start": 1.0, "warmup_epochs": 1}}}, "methods.lmt.c0_5.c_start", "≤ c"),
    ({"methods": {"lmt": {"cc": [1, 2]}}}, "methods.lmt", "no parameter"),
    ({"experiments": {"e": {"methods": {"lmt": {"c": []}}}}}, "experiments.e.methods.lmt.c", "empty list"),
    ({"sweeps": {"lmt": {}}}, "sweeps", "derived"),
    ({"report": {"tradeoff_radius": 3.0}}, "report.tradeoff_radius", "one of report.radii"),
])
def test_bad_sweeps_name_their_key(config, key, problem) -> None:
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert f"config key '{key}" in str(err.value) and problem in str(err.value)


def test_a_list_typed_parameter_cannot_be_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmt.methods import METHODS, Method, register_method
    from lmt.params import CheckedParams, param

    monkeypatch.setattr(METHODS, "_entries", METHODS.entries())  # the toy method is gone afterwards

    @register_method("sweep_test_listed")
    class Listed(Method):
        @dataclass(frozen=True)
        class Params(CheckedParams):
            widths: tuple[int, ...] = param((1,), "Widths.")

    with pytest.raises(ConfigError, match=r"'methods\.sweep_test_listed\.widths'.*list-typed"):
        validate_config({"methods": {"sweep_test_listed": {"widths": [1, 2]}}})


def test_rewriting_copy_pasted_runs_as_a_sweep_reruns_nothing() -> None:
    """The training jobs' settings (Snakemake's rerun trigger) are the same, value by value."""
    from lmt import stage_config

    pasted = _experiment({"lmt.c2": {"c": 2.0}, "lmt.c4": {"c": 4.0}})
    swept = _experiment({"lmt": {"c": [2, 4]}})
    for label in ("lmt.c2", "lmt.c4"):
        assert repr(stage_config.train(swept, label, 0)) == repr(stage_config.train(pasted, label, 0))
