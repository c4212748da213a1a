"""Experiment configuration: load, fill defaults and validate against the JSON schema.

The schema (``lmt/schemas/config.schema.yaml``, linked from ``workflow/schemas/``) is the single
source of truth for keys, defaults and descriptions; the Snakefile and the CLI both call
:func:`validate_config`, so a bad key fails the same way everywhere, naming the key.

Validation is strict: every number must be finite (YAML's ``.nan``/``.inf`` are rejected
anywhere), every key a string, an integer an ``int`` (not ``2.0``, not ``true``), and method and
attack parameters, and the randomized-smoothing settings (``certify.smoothing``), are checked
against their classes (:mod:`lmt.params`), ranges and relations included.

A method parameter written as a list is a sweep (:mod:`lmt.sweeps`): each resolved experiment's
``methods`` holds one tagged run per value, and its ``sweeps`` records which runs belong to which
sweep (derived here; a config may not set it).
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lmt.params import ParamError
from lmt.registry import split_label
from lmt.sweeps import SweepError, expand_methods

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration that does not satisfy the schema or names something unknown."""


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` ("#/$defs/name") to the schema it points at."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    return _resolve(target, root)


def _fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> None:
    """Insert schema defaults into ``instance`` in place, recursing into nested objects
    (named ``properties`` and keys matching ``patternProperties``, through local ``$ref``s)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    for pattern, sub in schema.get("patternProperties", {}).items():
        for key in instance:
            if key not in schema.get("properties", {}) and re.search(pattern, key):
                _fill_defaults(instance[key], sub, root)


def _key(path: Any) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _raise_for(problems: list[tuple[str, str]]) -> None:
    """One ConfigError listing every ``(key, problem)``; nothing if there are none."""
    if problems:
        lines = [f"  - config key '{key}': {problem}" for key, problem in problems]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))


def _is_int(checker: Any, instance: Any) -> bool:
    """JSON Schema's "integer" counts 2.0 (and jsonschema would let a float through to code
    that needs an int); here only a Python int that is not a bool is one."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_int),
)


def _check_schema(config: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> None:
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    _raise_for([(prefix + _key(e.absolute_path), e.message) for e in errors])


def _bad_literals(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[str, str]]:
    """``(key, problem)`` for each value YAML lets through but no setting means: a NaN or
    infinite number (``.nan``, ``.inf``), or a mapping key that is not a string (``1:``, ``true:``)."""
    if isinstance(node, float) and not math.isfinite(node):
        return [(_key(path), f"must be a finite number, got {node!r}")]
    if isinstance(node, dict):
        problems = [
            (_key((*path, k)), f"a key must be a string, got {k!r} ({type(k).__name__}); quote it")
            for k in node if not isinstance(k, str)
        ]
        return problems + [p for k, v in node.items() for p in _bad_literals(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _bad_literals(v, (*path, i))]
    return []


_REPLACED = {"methods", "attacks"}  # selections: an experiment's own list replaces the shared one


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Key-by-key merge of mappings; lists, scalars, ``methods`` and ``attacks`` are replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in _REPLACED:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Return a validated copy of ``config`` with every default filled in.

    ``result["experiments"]`` maps each experiment's name to its complete, resolved settings
    (the top-level sections with that experiment's overrides merged in); a configuration without
    ``experiments`` is one experiment named by ``experiment``. Raises :class:`ConfigError`
    whose message names each offending key.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"the configuration must be a mapping, got {type(config).__name__}")
    _raise_for(_bad_literals(config))
    schema = load_schema()
    raw_experiments = copy.deepcopy(config.get("experiments") or {})
    top = {k: copy.deepcopy(v) for k, v in config.items() if k != "experiments"}
    _reject_derived(top)
    checked = copy.deepcopy(top)
    _fill_defaults(checked, schema)
    checked["experiments"] = raw_experiments
    _check_schema(checked, schema)
    try:
        from lmt.registry import load_plugins

        load_plugins(checked["plugins"])
    except ImportError as err:
        raise ConfigError(f"config key 'plugins': {err}") from None
    _expand_sweeps(checked)
    _check_meaning(checked)  # the shared sections first, so their errors name their own keys
    if not raw_experiments:
        raw_experiments = {checked["experiment"]: {}}
    resolved = {}
    for name, override in raw_experiments.items():
        if "experiment" in override or "experiments" in override:
            raise ConfigError(f"config key 'experiments.{name}': may not set 'experiment(s)'")
        experiment = _merge(top, override)
        experiment["experiment"] = name
        _fill_defaults(experiment, schema)
        prefix = f"experiments.{name}." if override else ""
        _reject_derived(override, f"experiments.{name}.")
        _check_schema(experiment, schema, prefix)
        _expand_sweeps(experiment, prefix)
        _check_schema(experiment, schema, prefix)  # the expanded labels and the sweep record too
        _check_meaning(experiment, prefix)
        resolved[name] = experiment
    checked["experiments"] = resolved
    return checked


DERIVED = ("sweeps",)  # keys validation writes into the resolved settings, never read from a config


def _reject_derived(section: dict[str, Any], prefix: str = "") -> None:
    for key in DERIVED:
        if key in section:
            raise ConfigError(f"config key '{prefix}{key}': is derived from the methods' list-valued parameters "
                              "(e.g. methods: {lmt: {c: [1, 2, 4, 8]}}), not set by hand")


def _expand_sweeps(config: dict[str, Any], prefix: str = "") -> None:
    """Replace each sweep in ``methods`` by its runs and record it under ``sweeps``."""
    try:
        expansion = expand_methods(config["methods"])
    except SweepError as err:
        raise ConfigError(f"config key '{prefix}methods.{err.key}': {err.problem}") from None
    config["methods"], config["sweeps"] = expansion.methods, expansion.sweeps


def _check_meaning(config: dict[str, Any], prefix: str = "") -> None:
    """What the schema cannot express: registered names, parameter classes, the lr schedule."""
    _check_registered_names(config, prefix)
    _check_schedule(config["training"], prefix)
    _check_smoothing(config["certify"].get("smoothing"), prefix)
    _check_tradeoff_radius(config["report"], prefix)


def _check_tradeoff_radius(report: dict[str, Any], prefix: str = "") -> None:
    """The trade-off figure reads certified accuracies where the tables have them: at one of
    ``report.radii``."""
    radius = report["tradeoff_radius"]
    if radius is not None and radius not in report["radii"]:
        raise ConfigError(
            f"config key '{prefix}report.tradeoff_radius': must be one of report.radii {report['radii']}, got {radius!r}"
        )


def _check_smoothing(smoothing: dict[str, Any] | None, prefix: str = "") -> None:
    """``certify.smoothing`` against :class:`lmt.smoothing.SmoothingSettings` (the schema holds
    the same declarations; this is where a relation between them would be checked)."""
    if smoothing is None:
        return
    from lmt.params import check_params
    from lmt.smoothing import SmoothingSettings

    try:
        check_params(SmoothingSettings, smoothing, "randomized smoothing")
    except (TypeError, ValueError) as err:
        raise _registry_error(f"{prefix}certify.smoothing", err) from None


def _check_registered_names(config: dict[str, Any], prefix: str = "") -> None:
    """Names the schema cannot know: models, data sets, methods, attacks and published-number
    sets come from registries (so adding one is one file plus its registration)."""
    from lmt.attacks import list_attacks
    from lmt.data import DATASETS
    from lmt.methods import get_method_spec
    from lmt.models import list_models
    from lmt.report.published import PUBLISHED_SETS

    named = [("model", config["model"], list_models()), ("data.name", config["data"]["name"], DATASETS.list())]
    if config["report"]["published"] is not None:
        named.append(("report.published", config["report"]["published"], PUBLISHED_SETS.list()))
    for key, name, registered in named:
        if name not in registered:
            raise ConfigError(f"config key '{prefix}{key}': unknown name {name!r}; registered: {registered}")
    for run_name, params in config["methods"].items():
        try:
            get_method_spec(run_name, params)
        except (KeyError, TypeError, ValueError) as err:
            raise _registry_error(f"{prefix}methods.{run_name}", err) from None
    _check_attacks(config["attack"]["attacks"], prefix)
    wanted = config["report"]["table1_attack"]
    if split_label(wanted)[0] not in list_attacks():
        raise ConfigError(
            f"config key '{prefix}report.table1_attack': unknown attack {wanted!r}; registered: {list_attacks()}"
        )


def _check_attacks(attacks: dict[str, Any], prefix: str = "") -> None:
    """Attack names come from the registry in lmt.attacks; their parameters from its classes."""
    from lmt.attacks import create_attack

    for label, params in attacks.items():
        try:
            create_attack(label, params)
        except (KeyError, TypeError, ValueError) as err:
            raise _registry_error(f"{prefix}attack.attacks.{label}", err) from None


def _registry_error(key: str, err: Exception) -> ConfigError:
    """A registry's complaint about the entry at ``key`` (unknown name or parameter, bad value)
    as a ConfigError naming the key, down to the parameter where one is at fault."""
    if isinstance(err, ParamError) and err.param:
        return ConfigError(f"config key '{key}.{err.param}': {err.problem}")
    message = err.args[0] if isinstance(err, KeyError) else err
    return ConfigError(f"config key '{key}': {message}")


def _check_schedule(training: dict[str, Any], prefix: str = "") -> None:
    """Learning-rate milestones read as a schedule: strictly increasing epochs."""
    milestones = training["lr_milestones"]
    if any(a >= b for a, b in zip(milestones, milestones[1:])):
        raise ConfigError(
            f"config key '{prefix}training.lr_milestones': must be strictly increasing, got {milestones}"
        )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML file and validate it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"configuration file not found: {path}")
    with open(path) as f:
        raw = yaml.safe_load(f)
    return validate_config(raw)
