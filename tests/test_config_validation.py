"""Strict configuration validation: every bad input is a ConfigError naming its key, before
anything is written; method and attack parameters are checked as strictly as the schema."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing

import pytest
import yaml

from lmt.attacks import ATTACKS, list_attacks
from lmt.config import ConfigError, load_schema, validate_config
from lmt.methods import get_method_spec, list_methods
from lmt.params import ParamError, check_params
from tests.conftest import REPO

# Bad configurations, as a user writes them (YAML: `.nan`, `.inf`), and the key each error must
# name. All of these were accepted before strict validation, or failed without naming the key.
NEWLY_REJECTED = [
    ("training: {lr: .nan}", "training.lr"),
    ("training: {lr: .inf}", "training.lr"),
    ("training: {momentum: .nan}", "training.momentum"),
    ("training: {weight_decay: .inf}", "training.weight_decay"),
    ("experiments: {proxy_wrn: {training: {lr: .nan}}}", "experiments.proxy_wrn.training.lr"),
    ("experiments: {proxy_wrn: {methods: {lmt: {c: .nan}}}}", "experiments.proxy_wrn.methods.lmt.c"),
    ("methods: {lmt: {c: .nan}}", "methods.lmt.c"),
    ("methods: {lmt: {c: .inf}}", "methods.lmt.c"),
    ("methods: {pgd_adv: {eps: .nan}}", "methods.pgd_adv.eps"),
    ("methods: {spectral_norm_reg: {lam: .inf}}", "methods.spectral_norm_reg.lam"),
    ("methods: {weight_decay: {weight_decay: .nan}}", "methods.weight_decay.weight_decay"),
    ("methods: {cw_adv: {confidence: -.inf}}", "methods.cw_adv.confidence"),
    ("report: {radii: [0.5, .inf]}", "report.radii"),
    ("attack: {attacks: {cw: {stepsize: .nan}}}", "attack.attacks.cw.stepsize"),
    ("attack: {attacks: {deepfool: {overshoot: .inf}}}", "attack.attacks.deepfool.overshoot"),
    ("attack: {attacks: {pgd: {initial_epsilon: .inf}}}", "attack.attacks.pgd.initial_epsilon"),
    # integers where a count is meant: 2.0 is not one
    ("training: {epochs: 2.0}", "training.epochs"),
    ("chain: {n_noise: 1.0}", "chain.n_noise"),
    ("data: {n_train: 100.0}", "data.n_train"),
    ("data: {n_test: 0}", "data.n_test"),
    ("certify: {n_iter: 5000.0}", "certify.n_iter"),
    ("attack: {attacks: {pgd: {steps: 3.0}}}", "attack.attacks.pgd.steps"),
    ("methods: {pgd_adv: {steps: 2.5}}", "methods.pgd_adv.steps"),
    ("methods: {pgd_adv: {eps: true}}", "methods.pgd_adv.eps"),  # a bool is not a number
    ("methods: {gloro: {eps: '0.3'}}", "methods.gloro.eps"),  # nor is a string
    # enums and patterns, unique lists
    ("training: {device: tpu}", "training.device"),
    ("training: {device: 'cuda:x'}", "training.device"),
    ("seeds: [1, 1]", "seeds"),
    ("experiments: {a: {seeds: [0, 0]}}", "experiments.a.seeds"),
    ("training: {lr_milestones: [80, 80]}", "training.lr_milestones"),
    ("training: {lr_milestones: [120, 80]}", "training.lr_milestones"),
    ("report: {radii: [0.5, 0.5]}", "report.radii"),
    ("report: {table1_attack: cww}", "report.table1_attack"),
    # ranges and relations of method parameters
    ("methods: {lmt: {c: 1.0, c_start: 2.0, warmup_epochs: 1}}", "methods.lmt.c_start"),
    ("methods: {lmt: {c: 1.0, c_start: 0.1}}", "methods.lmt.c_start"),  # no warm-up: ignored
    ("methods: {lmt: {c: 0.0, c_start: 0.0, warmup_epochs: 1}}", "methods.lmt.c_start"),
    ("methods: {gloro: {eps: 1.0, eps_start: 2.0, warmup_epochs: 1}}", "methods.gloro.eps_start"),
    ("methods: {gloro: {eps: 1.0, warmup_epochs: 1}}", "methods.gloro.warmup_epochs"),  # from what?
    ("methods: {cw_adv: {steps: 0}}", "methods.cw_adv.steps"),
    ("methods: {cw_adv: {stepsize: -0.1}}", "methods.cw_adv.stepsize"),
    ("methods: {pgd_adv: {rel_stepsize: 0}}", "methods.pgd_adv.rel_stepsize"),
    ("methods: {parseval: {beta: 1.5}}", "methods.parseval.beta"),
    # ranges of attack parameters
    ("attack: {attacks: {fmn: {gamma: 1.5}}}", "attack.attacks.fmn.gamma"),
    # randomized smoothing (certify.smoothing): finite, typed, in range, no unknown keys
    ("certify: {smoothing: {sigma: .nan}}", "certify.smoothing.sigma"),
    ("certify: {smoothing: {sigma: 0}}", "certify.smoothing.sigma"),
    ("certify: {smoothing: {sigma: -0.5}}", "certify.smoothing.sigma"),
    ("certify: {smoothing: {n: 0}}", "certify.smoothing.n"),
    ("certify: {smoothing: {n0: 10.0}}", "certify.smoothing.n0"),
    ("certify: {smoothing: {alpha: 0.5}}", "certify.smoothing.alpha"),
    ("certify: {smoothing: {alpha: 0}}", "certify.smoothing.alpha"),
    ("certify: {smoothing: {alpha: .inf}}", "certify.smoothing.alpha"),
    ("certify: {smoothing: {batch_size: true}}", "certify.smoothing.batch_size"),
    ("certify: {smoothing: {seed: -1}}", "certify.smoothing.seed"),
    ("certify: {smoothing: {sigmaa: 0.5}}", "certify.smoothing"),  # unknown key
    ("certify: {smoothing: 0.5}", "certify.smoothing"),  # neither a mapping nor null
    ("experiments: {a: {certify: {smoothing: {n: -1}}}}", "experiments.a.certify.smoothing.n"),
    # keys YAML reads as numbers or bools (these crashed with an AttributeError / TypeError)
    ("methods: {1: {}}", "methods.1"),
    ("attack: {attacks: {true: {}}}", "attack.attacks.True"),
]

# Bad configurations rejected before as well: they must stay rejected, naming the key.
ALWAYS_REJECTED = [
    ("training: {epoch: 3}", "training"),  # unknown key
    ("colour: blue", "<top level>"),  # unknown section
    ("training: {batch_size: -50}", "training.batch_size"),
    ("training: {epochs: true}", "training.epochs"),  # a bool for an int
    ("training: {lr: fast}", "training.lr"),
    ("training: {optimizer: rmsprop}", "training.optimizer"),
    ("seeds: [-1]", "seeds.0"),
    ("model: resnet1000", "model"),
    ("methods: {nonexistent: {}}", "methods.nonexistent"),
    ("methods: {lmt: {cc: 1.0}}", "methods.lmt"),  # unknown parameter
    ("attack: {attacks: {sparse_rs: {}}}", "attack.attacks.sparse_rs"),
    ("attack: {attacks: {cw: {abort_early: 'yes'}}}", "attack.attacks.cw.abort_early"),
    ("report: {radii: [-0.5]}", "report.radii.0"),
]


@pytest.mark.parametrize(("text", "key"), NEWLY_REJECTED + ALWAYS_REJECTED)
def test_bad_config_is_a_config_error_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(yaml.safe_load(text))
    assert f"'{key}" in str(caught.value), str(caught.value)


def test_every_shipped_config_validates() -> None:
    for path in sorted((REPO / "config").glob("*.yaml")):
        with open(path) as f:
            validate_config(yaml.safe_load(f))


def test_smoothing_is_off_unless_set() -> None:
    """Absent or null: off (and the certify stage reads the same settings either way); set: its
    parameters with their defaults filled in, ints for floats as floats."""
    from lmt import stage_config

    absent = validate_config({})["experiments"]["default"]
    null = validate_config({"certify": {"smoothing": None}})["experiments"]["default"]
    on = validate_config({"certify": {"smoothing": {"sigma": 1, "n": 500}}})["experiments"]["default"]
    assert stage_config.smoothing_settings(absent) is None and stage_config.smoothing_settings(null) is None
    assert stage_config.certify(absent) == stage_config.certify(null) == stage_config.certify(on)
    assert stage_config.smoothing(on)["smoothing"] == {
        "sigma": 1.0, "n0": 100, "n": 500, "alpha": 0.001, "batch_size": 1000, "seed": 0}
    with pytest.raises(KeyError, match="certify.smoothing"):
        stage_config.smoothing(absent)


def test_an_int_for_a_float_parameter_becomes_a_float() -> None:
    config = validate_config({"methods": {"lmt": {"c": 1}}})["experiments"]["default"]
    _, params = get_method_spec("lmt", config["methods"]["lmt"])
    assert params.c == 1.0 and isinstance(params.c, float)


def _parameter_classes() -> list:
    methods = [(f"method {name!r}", get_method_spec(name, {})[0].Params) for name in list_methods()]
    attacks = [(f"attack {name!r}", ATTACKS.get(name)) for name in list_attacks()]
    return [pytest.param(where, cls, id=where) for where, cls in methods + attacks]


# Values of the wrong type for a field of each type (None is right for an optional field).
_WRONG = {int: [2.0, True, "2"], float: [float("nan"), float("inf"), True, "1.0"], bool: [1, "yes", None], str: [1, None]}


@pytest.mark.parametrize(("where", "cls"), _parameter_classes())
def test_every_registered_parameter_is_checked_strictly(where: str, cls: type) -> None:
    """Each field of every registered method and attack rejects values of the wrong type (a float
    or bool for an int, NaN/inf/bool for a float, ...) naming it; the defaults pass."""
    check_params(cls, {}, where)
    for field in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        types = typing.get_args(hint) or (hint,)
        base = next(t for t in types if t is not type(None))
        for value in _WRONG[base]:
            if value is None and type(None) in types:
                continue
            with pytest.raises(ParamError) as caught:
                check_params(cls, {field.name: value}, where)
            assert caught.value.param == field.name and where in str(caught.value)


# JSON Schema bound keyword -> (a value just outside, one just inside), given the bound and a step.
_BOUNDARY = {
    "minimum": lambda bound, step: (bound - step, bound),
    "exclusiveMinimum": lambda bound, step: (bound, bound + step),
    "maximum": lambda bound, step: (bound + step, bound),
    "exclusiveMaximum": lambda bound, step: (bound, bound - step),
}


@pytest.mark.parametrize("name", list_attacks())
def test_attack_classes_enforce_the_schemas_bounds(name: str) -> None:
    """The schema documents each attack parameter's range; the class enforces the same one, so
    attacks built outside a config (benchmarks, tests) are held to it too."""
    cls, where = ATTACKS.get(name), f"attack {name!r}"
    for param, spec in load_schema()["$defs"][f"attack_{name}"]["properties"].items():
        step = 1 if spec["type"] == "integer" else 0.01
        for keyword, values in _BOUNDARY.items():
            if keyword in spec:
                outside, inside = values(spec[keyword], step)
                with pytest.raises(ParamError, match=param):
                    check_params(cls, {param: outside}, where)
                check_params(cls, {param: inside}, where)


def test_check_params_names_unknown_parameters() -> None:
    @dataclasses.dataclass(frozen=True)
    class Params:
        steps: int = 1
        scale: float | None = None

    assert check_params(Params, {"scale": None}, "toy") == Params()
    with pytest.raises(TypeError, match=r"toy has no parameter\(s\) \['stepz'\]"):
        check_params(Params, {"stepz": 2}, "toy")
    with pytest.raises(ParamError, match=r"toy: parameter 'scale' must be a finite number or null, got 'x'"):
        check_params(Params, {"scale": "x"}, "toy")


def test_bad_config_stops_the_cli_before_anything_is_written(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  tiny:\n    training: {lr: .nan}\n")
    result = subprocess.run(
        [sys.executable, "-m", "lmt", "run", "--config", str(bad)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2, result.stderr
    assert "'experiments.tiny.training.lr'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "nothing may be written"


def test_bad_config_stops_snakemake_before_anything_is_written(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods:\n  lmt: {c: 1.0, c_start: 2.0, warmup_epochs: 1}\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
         "--configfile", str(bad), "--directory", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "'methods.lmt.c_start'" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists(), "nothing may be written for a rejected config"
