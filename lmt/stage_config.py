"""What each stage reads from an experiment's settings: the one place that decides it.

Every stage function (:mod:`lmt.pipeline`, :mod:`lmt.report.stages`) receives the subset below
instead of the whole experiment, and records that subset as its provenance. The Snakemake rules
pass the same subset as their ``settings`` param, so Snakemake's ``params`` rerun trigger reruns
a job exactly when a setting it reads changes (editing ``methods.lmt.c`` reruns the ``lmt`` runs,
editing ``report.radii`` only the tables and figures that show radii); the CLI calls the same
functions. Subsets keep the experiment's key paths (``data``, ``certify``, ``report.radii``)
and add the job's own selection (method and seed, attack) where the stage needs it.

Subsets are canonical (mapping keys sorted, tuples as lists) so that their ``repr``, which
Snakemake stores and compares, depends on the values only, never on the order of keys in a
config file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lmt.report.tables import ALL_ATTACKS

StageConfig = dict[str, Any]


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively) and tuples as lists."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def _pick(experiment: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: experiment[key] for key in keys}


def train(experiment: Mapping[str, Any], method: str, seed: int | str) -> StageConfig:
    """Training one run: data, model, optimisation, that run's method parameters and seed."""
    return canonical({
        **_pick(experiment, "plugins", "data", "model", "training"),
        "method": method,
        "method_params": experiment["methods"][method],
        "seed": int(seed),
    })


def _evaluation(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """What every stage that evaluates a trained model reads: plugins, test data, device."""
    return {**_pick(experiment, "plugins", "data"), "device": experiment["training"]["device"]}


def certify(experiment: Mapping[str, Any]) -> StageConfig:
    """Certified bound and radii: the ``certify`` section, without ``smoothing`` (its own stage,
    so that a smoothing setting reruns only the smoothing jobs)."""
    section = {key: value for key, value in experiment["certify"].items() if key != "smoothing"}
    return canonical({**_evaluation(experiment), "certify": section})


def smoothing_settings(experiment: Mapping[str, Any]) -> dict[str, Any] | None:
    """``certify.smoothing`` with its defaults filled in, or None where smoothing is off."""
    values = experiment["certify"].get("smoothing")
    if values is None:
        return None
    from lmt.params import check_params
    from lmt.smoothing import SmoothingSettings

    return dataclasses.asdict(check_params(SmoothingSettings, values, "randomized smoothing"))


def smoothing(experiment: Mapping[str, Any]) -> StageConfig:
    """Randomized smoothing (on only): its settings, defaults filled in, so that writing a
    default explicitly changes nothing."""
    settings = smoothing_settings(experiment)
    if settings is None:
        raise KeyError(f"experiment {experiment.get('experiment')!r} does not configure certify.smoothing")
    return canonical({**_evaluation(experiment), "smoothing": settings})


def attack(experiment: Mapping[str, Any], label: str) -> StageConfig:
    """One configured attack: the settings every attack shares and that attack's budget (its
    parameters as configured; the stage records the budget with its defaults filled in)."""
    spec = experiment["attack"]
    if label not in spec["attacks"]:
        raise KeyError(f"attack {label!r} is not configured; configured: {list(spec['attacks'])}")
    shared = {key: value for key, value in spec.items() if key != "attacks"}
    return canonical({**_evaluation(experiment), "attack": {**shared, "name": label, "budget": spec["attacks"][label]}})


def gradient_bounds(experiment: Mapping[str, Any]) -> StageConfig:
    """(B) and (C) of the inequality chain: the ``chain`` section, on the attacked examples
    (``attack.n_examples``: only they enter the per-example table)."""
    chain = {**experiment["chain"], "n_examples": experiment["attack"]["n_examples"]}
    return canonical({**_evaluation(experiment), "chain": chain})


def _report(experiment: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {"report": {key: experiment["report"][key] for key in keys}}


def table1_attack(experiment: Mapping[str, Any]) -> str:
    """The attack of Table 1: ``report.table1_attack`` if the experiment runs it, else the
    smallest distance over all attacks."""
    wanted = experiment["report"]["table1_attack"]
    return wanted if wanted in experiment["attack"]["attacks"] else ALL_ATTACKS


def aggregate(experiment: Mapping[str, Any]) -> StageConfig:
    """Summary, attack table and Table 1: the radii and Table 1's attack (resolved); with
    randomized smoothing on, its σ and α (the summary's note states the guarantee)."""
    subset: dict[str, Any] = {
        "report": {"radii": experiment["report"]["radii"], "table1_attack": table1_attack(experiment)}}
    smoothed = smoothing_settings(experiment)
    if smoothed is not None:
        subset["smoothing"] = {key: smoothed[key] for key in ("sigma", "alpha")}
    return canonical(subset)


def inequality_chain(experiment: Mapping[str, Any]) -> StageConfig:
    """The chain-ratio table reads no setting: it follows its input files only."""
    return {}


def published_comparison(experiment: Mapping[str, Any]) -> StageConfig:
    """Published numbers beside ours: which published set, and the network (a published number
    of a named network is compared on that network only)."""
    return canonical({**_pick(experiment, "model"), **_report(experiment, "published")})


def accuracy_figure(experiment: Mapping[str, Any]) -> StageConfig:
    """Accuracy against radius: the radii (the x range) and the experiment's name (the title)."""
    return canonical({**_pick(experiment, "experiment"), **_report(experiment, "radii")})


def chain_figure(experiment: Mapping[str, Any]) -> StageConfig:
    """Fig. 4: the published set (its quoted medians) and the experiment's name."""
    return canonical({**_pick(experiment, "experiment"), **_report(experiment, "published")})


def titled_figure(experiment: Mapping[str, Any]) -> StageConfig:
    """A figure drawn from its input files alone, titled with the experiment's name."""
    return canonical(_pick(experiment, "experiment"))


def gap(experiment: Mapping[str, Any]) -> StageConfig:
    """The certificate–attack gap table and figure: the experiment's name (the figure's title)
    and, with randomized smoothing on, its σ and α (the note under the table's probabilistic
    columns states them)."""
    subset: dict[str, Any] = _pick(experiment, "experiment")
    smoothed = smoothing_settings(experiment)
    if smoothed is not None:
        subset["smoothing"] = {key: smoothed[key] for key in ("sigma", "alpha")}
    return canonical(subset)


def perturbation_figure(experiment: Mapping[str, Any]) -> StageConfig:
    """Fig. 5: the test images (plugins, data), how many per method, the experiment's name."""
    return canonical({
        **_pick(experiment, "plugins", "data", "experiment"),
        **_report(experiment, "n_perturbation_examples"),
    })


def tradeoff_radius(experiment: Mapping[str, Any]) -> float:
    """``report.tradeoff_radius``, or where it is null the largest of ``report.radii`` ≤ 1.58
    (the paper's MNIST radius), else the smallest radius."""
    report = experiment["report"]
    if report.get("tradeoff_radius") is not None:
        return report["tradeoff_radius"]
    below = [r for r in report["radii"] if r <= 1.58]
    return max(below) if below else min(report["radii"])


def tradeoff(experiment: Mapping[str, Any]) -> StageConfig:
    """The trade-off table and figure: the sweeps (which runs, which values), the radii of the
    table, the figure's radius (resolved) and the experiment's name (the title)."""
    if not experiment.get("sweeps"):
        raise KeyError(f"experiment {experiment.get('experiment')!r} has no sweep (no list-valued method parameter)")
    return canonical({
        **_pick(experiment, "experiment", "sweeps"),
        "report": {"radii": experiment["report"]["radii"], "tradeoff_radius": tradeoff_radius(experiment)},
    })
