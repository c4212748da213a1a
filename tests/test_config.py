"""Configuration: defaults fill in, and every kind of bad input is rejected naming the key."""

from __future__ import annotations

import pytest
import yaml

from lmt.config import ConfigError, load_config, validate_config
from tests.conftest import REPO


def test_default_config_file_is_valid_and_complete() -> None:
    config = load_config(REPO / "config" / "config.yaml")
    assert config["model"] == "wong_kolter_mnist"
    assert set(config["methods"]) == {"standard", "lmt"}
    assert config["seeds"] == [0, 1, 2], "several seeds, so every table shows a spread"
    assert config["report"]["published"] == "mnist_wk"
    cw = config["attack"]["attacks"]["cw"]
    assert cw["steps"] == 100 and cw["binary_search_steps"] == 9, "the paper's C&W budget"


def test_the_all_methods_config_keeps_the_papers_three_methods_and_the_wrn_proxy() -> None:
    config = load_config(REPO / "config" / "embedded_all.yaml")
    assert set(config["experiments"]) == {"embedded_all", "proxy_wrn"}
    assert set(config["experiments"]["embedded_all"]["methods"]) == {"standard", "cw_adv", "lmt"}


def test_empty_config_gets_every_default() -> None:
    config = validate_config({})
    assert config["training"]["epochs"] == 20
    assert config["certify"]["n_iter"] == 5000
    assert config["report"]["radii"][3] == 1.0


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"training": {"epochs": -1}}, "training.epochs"),
        ({"training": {"epoch": 3}}, "training"),  # unknown key
        ({"attack": {"attacks": {"cw": {"steps": "many"}}}}, "attack.attacks.cw.steps"),
        ({"attack": {"attacks": {"cw": {"stepz": 10}}}}, "attack.attacks.cw"),  # unknown parameter
        ({"attack": {"attacks": {"sparse_rs": {}}}}, "attack.attacks.sparse_rs"),  # unknown attack
        ({"attack": {"attacks": {}}}, "attack.attacks"),
        ({"attack": {"steps": 100}}, "attack"),  # the walking skeleton's flat C&W keys
        ({"chain": {"n_noise": -1}}, "chain.n_noise"),
        ({"data": {"name": "imagenet"}}, "data.name"),
        ({"methods": {"nonexistent": {}}}, "methods.nonexistent"),
        ({"methods": {"lmt": {"c": -1.0}}}, "methods.lmt.c"),  # a bad value: named down to the parameter
        ({"methods": {"lmt": {"cc": 1.0}}}, "methods.lmt"),
        ({"methods": {"lmt": {"variant": "prop3"}}}, "methods.lmt.variant"),
        ({"model": "resnet1000"}, "model"),
        ({"seeds": []}, "seeds"),
        ({"report": {"published": "imagenet"}}, "report.published"),
        ({"report": {"n_perturbation_examples": 0}}, "report.n_perturbation_examples"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(config: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        validate_config(config)


def test_unknown_method_parameter_is_named() -> None:
    with pytest.raises(ConfigError, match="cc"):
        validate_config({"methods": {"lmt": {"cc": 1.0}}})


def test_tagged_method_names_are_accepted() -> None:
    config = validate_config({"methods": {"lmt.small_c": {"c": 0.1}, "lmt": {}}})
    assert set(config["methods"]) == {"lmt.small_c", "lmt"}


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_schema_defaults_match_the_default_config_file() -> None:
    """Apart from its methods, seeds, attacks (which, on how many examples) and the published
    numbers it compares with, the default file only restates defaults, so the schema is the one
    source of truth."""
    with open(REPO / "config" / "config.yaml") as f:
        raw = yaml.safe_load(f)
    default = validate_config(raw)["experiments"]["default"]
    own = {"methods": raw["methods"], "seeds": raw["seeds"], "report": {"published": raw["report"]["published"]},
           "attack": {"n_examples": raw["attack"]["n_examples"], "attacks": raw["attack"]["attacks"]}}
    assert default == validate_config(own)["experiments"]["default"]
